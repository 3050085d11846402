"""Storage preset: the Thinkube homelab.

- The home folder is not a volume: packages installed with ``pip install --user`` live in the
  image's home and stay visible; anything else saved there is lost with the pod (Lab says so).
- ``~/thinkube/notebooks``: each user's own folder of one shared ReadWriteMany claim.
- ``~/thinkube/datasets`` and ``~/thinkube/models``: shared by everyone, kept.
- ``~/thinkube/examples-repo``: the examples repository, read only (kept current by the
  ``jupyter-tk-examples-sync`` CronJob in share/kubernetes/examples-sync.yaml).
- ``~/scratch``: fast space deleted with the pod, at most 20 GiB.

The claims are in share/kubernetes/storage/thinkube-seaweedfs.yaml. Load it after the
Kubernetes config (z2jh: in hub.extraConfig) and change what your site needs after it::

    load_subconfig(".../share/jupyter-tk/jupyterhub/storage/thinkube.py")
    c.StorageLayout.folders[-1]["size_limit"] = "50Gi"
"""

c = get_config()  # provided by JupyterHub when it loads this file

c.StorageLayout.home_dir = "/home/jovyan"  # the user's home in Jupyter Docker Stacks images
c.StorageLayout.folders = [
    {
        "path": "thinkube/notebooks",
        "tier": "persistent",
        "claim": "thinkube-notebooks",
        "per_user": True,
    },
    {"path": "thinkube/datasets", "tier": "shared", "claim": "thinkube-datasets"},
    {"path": "thinkube/models", "tier": "shared", "claim": "thinkube-models"},
    {"path": "thinkube/examples-repo", "tier": "read-only", "claim": "thinkube-examples"},
    {"path": "scratch", "tier": "ephemeral", "size_limit": "20Gi"},
]

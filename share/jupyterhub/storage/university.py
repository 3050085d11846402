"""Storage preset: a university GPU cluster.

- The home folder is an ``emptyDir``: fast, private to the pod, deleted with it.
- ``~/Persist``: each user's own subdirectory of one ReadWriteMany claim, kept.
- ``~/Shared``: the team's ReadWriteMany claim, kept.
- ``~/Save``: a link to ``~/Persist`` (the name students are told to save under).

The claims are in share/kubernetes/storage/university-nfs.yaml. Load it after the Kubernetes
config (z2jh: in hub.extraConfig) and change what your site needs after it::

    load_subconfig(".../share/jupyter-tk/jupyterhub/storage/university.py")
    c.StorageLayout.folders[0]["size_limit"] = "50Gi"
"""

c = get_config()  # provided by JupyterHub when it loads this file

c.StorageLayout.home_dir = "/home/jovyan"  # the user's home in Jupyter Docker Stacks images
c.StorageLayout.folders = [
    {"path": ".", "tier": "ephemeral", "size_limit": "20Gi"},
    {"path": "Persist", "tier": "persistent", "claim": "jupyter-persist", "per_user": True},
    {"path": "Shared", "tier": "shared", "claim": "jupyter-shared"},
]
c.StorageLayout.links = {"Save": "Persist"}

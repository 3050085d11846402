"""JupyterHub on Kubernetes with the jupyter-tk live resource picker.

Run it as it is, in the hub pod (in-cluster service account) or anywhere ``$KUBECONFIG`` points
at a cluster::

    jupyterhub -f share/jupyterhub/kubernetes_config.py                 # from a clone
    jupyterhub -f $PREFIX/share/jupyter-tk/jupyterhub/kubernetes_config.py   # from a pip install

or load it from your own config and override anything after it::

    c = get_config()
    load_subconfig("/path/to/share/jupyterhub/kubernetes_config.py")
    c.KubernetesInventory.node_selector = "node-role.kubernetes.io/notebooks=true"

The hub's service account needs the RBAC in ``share/kubernetes/rbac.yaml`` (list/watch nodes and
pods in all namespaces for the inventory; pods, events, PVCs, secrets and services in the
notebook namespace for KubeSpawner).

Environment (all optional):

- ``KUBECONFIG``: cluster credentials when not running in a pod.
- ``JUPYTER_TK_POLICY``: the group policy file (see ``share/policy.example.yaml``).
- ``JUPYTER_TK_CATALOG``: the image catalog, an http(s) URL (e.g. thinkube-control's
  ``/api/v1/images/jupyter``) or a JSON file (see ``share/catalog.example.json``).
- ``JUPYTER_TK_NAMESPACE``: namespace of the notebook pods (default: the hub pod's own
  namespace, else ``default``).
- ``JUPYTER_TK_HUB_CONNECT_IP``: address notebook pods use to reach the hub's API (in a pod,
  set it to the hub Service name, e.g. ``hub``; default: the hub's own bind address).
"""

import os

from jupyter_tk.hub.auth import configure_oidc
from jupyter_tk.hub.culling import configure_culling
from jupyter_tk.hub.setup import setup_hub

c = get_config()  # provided by JupyterHub when it loads this file

# -- spawner -------------------------------------------------------------------------------------

# tk-kubernetes (KubeSpawner with the jupyter-tk form: presets and custom sizes within the group
# policy, images from the catalog, a live node/GPU picker, every submission validated), its live
# inventory (one watch of nodes and pods for every user, served at /hub/api/tk/resources) and the
# scope custom:jupyter-tk:resources that every user gets to read it.
setup_hub(c, backend="kubernetes")
# The policy comes from $JUPYTER_TK_POLICY (a YAML/JSON file) and the image catalog from
# $JUPYTER_TK_CATALOG (a URL or a file): both are the defaults of c.Policy.policy_file and
# c.ImageCatalog.source. Without a policy nobody may start a server (the form says why).
if os.environ.get("JUPYTER_TK_NAMESPACE"):
    c.KubeSpawner.namespace = os.environ["JUPYTER_TK_NAMESPACE"]

# Notebook pods must reach the hub API; in a cluster the hub listens on all interfaces.
if os.environ.get("JUPYTER_TK_HUB_CONNECT_IP"):
    c.JupyterHub.hub_ip = "0.0.0.0"
    c.JupyterHub.hub_connect_ip = os.environ["JUPYTER_TK_HUB_CONNECT_IP"]

# The inventory reads $KUBECONFIG, else the in-cluster service account. Its traits
# (node_selector, stale_after_seconds, resync_seconds, ...) can be set on c.KubernetesInventory.

# -- sign-in: Keycloak or Authentik with groups (JUPYTER_TK_OIDC_*, see docs/sign-in.md) ----------
# The provider's groups become hub groups at every login and feed the policy; members of
# jupyter_admin (JUPYTER_TK_OIDC_ADMIN_GROUPS) are admins. Without JUPYTER_TK_OIDC_PROVIDER this
# does nothing and the authenticator is yours to configure.
configure_oidc(c)

# -- idle culling: a server without work stops after an hour, a GPU left unused after 30 minutes
# (JUPYTER_TK_IDLE_TIMEOUT, JUPYTER_TK_GPU_IDLE_TIMEOUT, ...; see docs/idle-culling.md) ---------
configure_culling(c)

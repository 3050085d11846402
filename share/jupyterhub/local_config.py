"""A complete JupyterHub on this machine: the jupyter-tk picker, local servers, GPU panel, examples.

Run it as it is::

    jupyterhub -f share/jupyterhub/local_config.py                # from a clone
    jupyterhub -f $PREFIX/share/jupyter-tk/jupyterhub/local_config.py   # from a pip install

($PREFIX is `python3 -c 'import sys; print(sys.prefix)'`), or load it from your own config and
override anything after it::

    c = get_config()
    load_subconfig("/path/to/share/jupyterhub/local_config.py")
    c.LocalInventory.gpu_replicas = 2

Environment (all optional):

- ``JUPYTER_TK_PORT``: port of the hub on 127.0.0.1 (default 8000). The proxy's API uses the port
  after it and the hub's internal API the port 81 above it (8001 and 8081 by default).
- ``JUPYTER_TK_PASSWORD``: the password every user logs in with (8 characters or more). Without it
  one is generated on first start, kept in the state folder and printed.
- ``JUPYTER_TK_ADMIN_PASSWORD``: the password of the ``admin`` user (32 characters or more);
  generated and kept like the other when not set.
- ``JUPYTER_TK_STATE_DIR``: where the database, cookie secret and passwords live
  (default ``~/.local/share/jupyter-tk/hub``).
- ``JUPYTER_TK_POLICY`` / ``JUPYTER_TK_CATALOG``: a policy file / image catalog replacing the
  defaults below (same formats as on Kubernetes).
"""

import os
import secrets
import sys
from pathlib import Path

import psutil

from jupyter_tk.hub.auth import configure_oidc
from jupyter_tk.hub.culling import configure_culling
from jupyter_tk.hub.local.authenticator import ThrottledSharedPasswordAuthenticator
from jupyter_tk.hub.setup import setup_hub

c = get_config()  # provided by JupyterHub when it loads this file

HERE = Path(__file__).resolve().parent
ADMIN_USER = "admin"
_MIN_PASSWORD = 8
_MIN_ADMIN_PASSWORD = 32

# -- where state lives ---------------------------------------------------------------------------

state_dir = Path(
    os.environ.get("JUPYTER_TK_STATE_DIR") or Path.home() / ".local/share/jupyter-tk/hub"
).expanduser()
state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
c.JupyterHub.db_url = f"sqlite:///{state_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state_dir / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(state_dir / "jupyterhub-proxy.pid")

# -- network: this machine only ------------------------------------------------------------------

port = int(os.environ.get("JUPYTER_TK_PORT") or 8000)
c.JupyterHub.bind_url = f"http://127.0.0.1:{port}/"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 1}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{port + 81}"

# -- login: one shared password, any user name ---------------------------------------------------


def _password(env_name: str, file_name: str, length: int) -> str:
    """The password from the environment, else the one kept in the state folder (made once)."""
    given = os.environ.get(env_name)
    if given:
        return given
    path = state_dir / file_name
    if path.exists():
        return path.read_text().strip()
    generated = secrets.token_urlsafe(length)[:length]
    # Created private from the start: never readable by other users, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(generated + "\n")
    return generated


user_password = _password("JUPYTER_TK_PASSWORD", "password", 12)
admin_password = _password("JUPYTER_TK_ADMIN_PASSWORD", "admin-password", _MIN_ADMIN_PASSWORD)
# The shared password, with a growing wait after failed logins (per user name and per address).
c.JupyterHub.authenticator_class = ThrottledSharedPasswordAuthenticator
c.SharedPasswordAuthenticator.user_password = user_password
c.SharedPasswordAuthenticator.admin_password = admin_password
c.Authenticator.admin_users = {ADMIN_USER}
c.Authenticator.allow_all = True
# User names become folder names (~/jupyter-tk/<name>): keep them simple. JupyterHub applies the
# pattern with re.match, which only anchors the start: \Z makes it hold for the whole name.
c.Authenticator.username_pattern = r"[a-z0-9][a-z0-9._-]{0,31}\Z"

# -- or: single sign-on through Keycloak or Authentik (JUPYTER_TK_OIDC_*, see docs/sign-in.md) --
# Replaces the shared password; the provider's groups feed the policy, jupyter_admin is admin.
single_sign_on = configure_oidc(c)

# -- spawner: local processes with their own GPUs, cores and memory ------------------------------

# tk-local, its inventory of this machine at /hub/api/tk/resources, and the scope to read it.
setup_hub(c, backend="local")
c.Spawner.default_url = "/lab"
# Generous on a busy machine: the first start of JupyterLab imports a lot.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.TkLocalSpawner.examples_source = str(HERE.parent / "examples")

# -- idle culling: a server without work stops after an hour, a GPU left unused after 30 minutes
# (JUPYTER_TK_IDLE_TIMEOUT, JUPYTER_TK_GPU_IDLE_TIMEOUT, ...; see docs/idle-culling.md) -------
configure_culling(c)

# -- policy and catalog: everyone may use this whole machine -------------------------------------

cores = len(os.sched_getaffinity(0))
memory_mib = psutil.virtual_memory().total // 2**20
c.Policy.presets = [
    {
        "slug": "small",
        "display_name": "Small",
        "description": "For work without a GPU.",
        "cpu": 1,
        "memory": "2Gi",
    },
    {
        "slug": "gpu-1",
        "display_name": "1 GPU",
        "description": "One whole GPU of its own, for the GPU examples.",
        "cpu": 2,
        "memory": "8Gi",
        "gpu": {"resource": "nvidia.com/gpu", "count": 1},
    },
]
c.Policy.rules = [
    {
        "groups": ["*"],
        "max": {"cpu": cores, "memory": f"{memory_mib}Mi", "gpus": 16},
        "images": ["*"],
        # Nothing is pulled on one machine: only the environments listed below can run.
        "custom_images": {"allowed": False},
        "nodes": ["*"],
    }
]
# Locally a catalog entry names an environment, not something to pull: both run this Python's
# jupyterhub-singleuser (see TkLocalSpawner.image_commands) and differ in the examples they offer.
c.ImageCatalog.images = [
    {
        "name": "tk-jupyter-ml-cpu",
        "image": "tk-jupyter-ml-cpu",
        "display_name": "Python on this machine (CPU examples)",
        "description": "JupyterLab in the environment the hub runs in, with the CPU examples.",
        "default": True,
        "gpu_required": False,
    },
    {
        "name": "tk-jupyter-ml-gpu",
        "image": "tk-jupyter-ml-gpu",
        "display_name": "Python on this machine (GPU examples)",
        "description": "The same environment with the GPU examples; pick a GPU to run them.",
        "default": False,
        "gpu_required": False,
    },
]

# -- tell the person at the keyboard how to get in -----------------------------------------------

if single_sign_on:
    login = f"your account at {os.environ['JUPYTER_TK_OIDC_ISSUER']}"
elif os.environ.get("JUPYTER_TK_PASSWORD"):
    login = "any user name and the password in $JUPYTER_TK_PASSWORD"
else:
    login = f"any user name and the password {user_password}"
if single_sign_on:
    admin_login = "every member of the provider's admin groups (JUPYTER_TK_OIDC_ADMIN_GROUPS)"
elif os.environ.get("JUPYTER_TK_ADMIN_PASSWORD"):
    admin_login = f"user name '{ADMIN_USER}' with the password in $JUPYTER_TK_ADMIN_PASSWORD"
else:
    admin_login = f"user name '{ADMIN_USER}' with the password in {state_dir / 'admin-password'}"
print(
    "\n"
    f"  jupyter-tk: JupyterHub on this machine at http://127.0.0.1:{port}/\n"
    f"  Log in with {login}.\n"
    f"  Administrator: {admin_login}.\n"
    f"  State (database, cookie secret, passwords): {state_dir}\n",
    file=sys.stderr,
    flush=True,
)

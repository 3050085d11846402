"""share/jupyterhub/local_config.py loaded the way JupyterHub loads it (traitlets' file loader).

Starting a real hub from it is covered by test_local_hub.py; here: where things go, the login it
sets up, and that it works from a clone and from the installed share layout alike.
"""

import shutil
import stat
from pathlib import Path

import pytest
from traitlets.config.loader import PyFileConfigLoader

from tests.support.local_hub import LOCAL_CONFIG

REPO_EXAMPLES = LOCAL_CONFIG.parents[1] / "examples"


@pytest.fixture
def env(tmp_path, monkeypatch):
    for name in ("JUPYTER_TK_PASSWORD", "JUPYTER_TK_ADMIN_PASSWORD", "JUPYTER_TK_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_TK_STATE_DIR", str(tmp_path / "state"))
    return monkeypatch


def load(path: Path):
    loader = PyFileConfigLoader(path.name, path=str(path.parent))
    return loader.load_config()


def test_defaults_bind_to_this_machine_and_keep_state_in_the_state_folder(env, tmp_path, capfd):
    c = load(LOCAL_CONFIG)
    state = tmp_path / "state"
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000/"
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"
    assert c.JupyterHub.hub_bind_url == "http://127.0.0.1:8081"
    assert c.JupyterHub.db_url == f"sqlite:///{state / 'jupyterhub.sqlite'}"
    assert c.JupyterHub.cookie_secret_file == str(state / "jupyterhub_cookie_secret")
    assert c.JupyterHub.spawner_class == "tk-local"
    assert c.TkLocalSpawner.examples_source == str(REPO_EXAMPLES)
    # The person starting it is told where to go and how to log in
    printed = capfd.readouterr().err
    assert "http://127.0.0.1:8000/" in printed
    assert f"the password {c.SharedPasswordAuthenticator.user_password}" in printed


def test_a_generated_password_is_private_and_the_same_after_a_restart(env, tmp_path):
    first = load(LOCAL_CONFIG)
    second = load(LOCAL_CONFIG)
    password = first.SharedPasswordAuthenticator.user_password
    assert len(password) >= 8
    assert second.SharedPasswordAuthenticator.user_password == password
    admin = first.SharedPasswordAuthenticator.admin_password
    assert len(admin) >= 32 and admin != password
    for name in ("password", "admin-password"):
        mode = stat.S_IMODE((tmp_path / "state" / name).stat().st_mode)
        assert mode == 0o600


def test_environment_overrides_port_and_passwords(env, tmp_path, capfd):
    env.setenv("JUPYTER_TK_PORT", "18123")
    env.setenv("JUPYTER_TK_PASSWORD", "a-shared-secret")
    c = load(LOCAL_CONFIG)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:18123/"
    assert c.JupyterHub.hub_bind_url == "http://127.0.0.1:18204"
    assert c.SharedPasswordAuthenticator.user_password == "a-shared-secret"
    assert not (tmp_path / "state" / "password").exists()
    # A password given in the environment is not echoed to the terminal
    assert "a-shared-secret" not in capfd.readouterr().err


def test_it_runs_from_the_installed_share_layout(env, tmp_path):
    # Given the layout a wheel installs: <prefix>/share/jupyter-tk/{jupyterhub,examples}
    share = tmp_path / "prefix" / "share" / "jupyter-tk"
    (share / "jupyterhub").mkdir(parents=True)
    shutil.copy(LOCAL_CONFIG, share / "jupyterhub" / "local_config.py")
    shutil.copytree(REPO_EXAMPLES, share / "examples")
    c = load(share / "jupyterhub" / "local_config.py")
    assert c.TkLocalSpawner.examples_source == str(share / "examples")


def test_it_can_be_loaded_from_another_config_and_overridden(env, tmp_path):
    outer = tmp_path / "my_config.py"
    outer.write_text(
        "c = get_config()\n"
        f"load_subconfig({str(LOCAL_CONFIG)!r})\n"
        "c.LocalInventory.gpu_replicas = 2\n"
        "c.JupyterHub.bind_url = 'http://127.0.0.1:9000/'\n"
    )
    c = load(outer)
    assert c.LocalInventory.gpu_replicas == 2
    assert c.JupyterHub.bind_url == "http://127.0.0.1:9000/"
    assert c.JupyterHub.spawner_class == "tk-local"

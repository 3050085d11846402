"""The local hub run by an ordinary Unix user (``nobody``) from a pip-installed jupyter-tk.

The other local hub tests run as root, as CI does, where spawned servers need
``--ServerApp.allow_root``. Here the hub runs as ``nobody`` from a virtualenv made with the
system Python (the project's own Python may sit in root's private home), with jupyter-tk
installed non-editable, the way a workstation user installs it, and ``local_config.py`` taken
from that install. Everything ``nobody`` needs (the virtualenv, the fake NVML library and its
config, the hub's home and state folders) lives in a fresh world-readable temp folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.fakes.nvml import LIBRARY_NAME, build_fake_nvml, fake_gpu
from tests.support.local_hub import REPO, LocalHub, custom_form

GPU = "nvidia.com/gpu"
SYSTEM_PYTHON = Path("/usr/bin/python3")
USER = "nobody"
# Seconds the virtualenv's pip install may take (a cold pip cache downloads JupyterLab);
# under pytest-timeout's 300 s per test, so a slow install fails with pip's own output.
_INSTALL_TIMEOUT = 240


def _nobody() -> pwd.struct_passwd:
    """The ``nobody`` account, or a skip saying why this machine cannot run these tests."""
    if os.geteuid() != 0:
        pytest.skip("starting a hub as user nobody needs root")
    try:
        account = pwd.getpwnam(USER)
    except KeyError:
        pytest.skip("this machine has no user nobody")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    probe = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import venv, ensurepip"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"{SYSTEM_PYTHON} cannot make virtualenvs (venv/ensurepip missing)")
    return account


@pytest.fixture(scope="module")
def account():
    return _nobody()


@pytest.fixture(scope="module")
def world(account):
    """A fresh folder every user can read; removed afterwards."""
    # Under /tmp rather than $TMPDIR, which may lie inside a folder only root can enter.
    folder = Path(tempfile.mkdtemp(prefix="tk-nonroot-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _run(command: list[str], *, env: dict[str, str] | None = None, timeout: float) -> None:
    """Run a setup step; fail the test with the end of its output if it fails or hangs."""
    try:
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        # Even with text=True the partial output arrives as bytes.
        output = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        output = (output or "")[-4000:]
        pytest.fail(f"{' '.join(command)} took over {timeout}s:\n{output}")
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-4000:]}")


@pytest.fixture(scope="module")
def venv(world):
    """A virtualenv of the system Python with jupyter-tk[hub] and JupyterLab, not editable."""
    venv = world / "venv"
    _run([str(SYSTEM_PYTHON), "-m", "venv", str(venv)], timeout=120)
    env = {
        key: value
        for key, value in os.environ.items()
        # Nothing of the Python running pytest may leak into the new environment's install;
        # bytecode is written now because nobody cannot write it into the venv later.
        if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")
    }
    # The front ends are already built (.ci/setup) and get packaged as they are.
    env.update(SKIP_JUPYTER_BUILDER="1", PIP_PROGRESS_BAR="off", PIP_NO_INPUT="1")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, f"{REPO}[hub]", "jupyterlab"], env=env, timeout=_INSTALL_TIMEOUT)
    # Whatever the umask was: the hub's user reads and runs everything in it.
    _run(["chmod", "-R", "a+rX", str(venv)], timeout=120)
    return venv


class NobodyHub(LocalHub):
    """`LocalHub` started as user nobody with the virtualenv's Python and installed config."""

    def __init__(self, workdir: Path, *, venv: Path, account: pwd.struct_passwd) -> None:
        installed_config = venv / "share" / "jupyter-tk" / "jupyterhub" / "local_config.py"
        super().__init__(
            workdir,
            gpus=[fake_gpu(0), fake_gpu(1)],
            load_local_config=False,
            extra_config=(
                f"load_subconfig({str(installed_config)!r})\n"
                "c.Spawner.env_keep.append('FAKE_NVML_CONFIG')\n"
                "c.LocalInventory.refresh_interval = 1.0\n"
            ),
        )
        self.venv = venv
        self.account = account
        # The fake library is copied out of the repo, which may sit where nobody cannot read.
        self.nvml_library_dir = self.workdir / "nvml-lib"
        self.nvml_library_dir.mkdir()
        shutil.copy2(build_fake_nvml() / LIBRARY_NAME, self.nvml_library_dir / LIBRARY_NAME)
        self.state_dir = self.workdir / "state"
        self.state_dir.mkdir()
        # Modes set explicitly, whatever the umask (the NVML config is written private).
        for readable, mode in (
            (self.workdir, 0o755),
            (self.nvml_library_dir, 0o755),
            (self.nvml_library_dir / LIBRARY_NAME, 0o755),
            (self.nvml_config_path, 0o644),
            (self.config_path, 0o644),
        ):
            readable.chmod(mode)
        for owned, mode in ((self.home, 0o755), (self.state_dir, 0o700)):
            os.chown(owned, account.pw_uid, account.pw_gid)
            owned.chmod(mode)

    def env(self) -> dict[str, str]:
        # A clean environment like a login of nobody's: nothing points into root's folders.
        env = {key: os.environ[key] for key in ("LANG", "LC_ALL", "TZ") if key in os.environ}
        env.update(
            PATH=f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            USER=self.account.pw_name,
            LOGNAME=self.account.pw_name,
            SHELL="/bin/sh",
            HOME=str(self.home),
            LD_LIBRARY_PATH=str(self.nvml_library_dir),
            FAKE_NVML_CONFIG=self.nvml_env["FAKE_NVML_CONFIG"],
            JUPYTER_TK_STATE_DIR=str(self.state_dir),
            JUPYTER_TK_PORT=str(self.port),
            JUPYTER_TK_PASSWORD=self.password,
        )
        return env

    def _spawn(self, command: list[str], **kwargs) -> subprocess.Popen:
        # HubProcess starts `sys.executable -m jupyterhub ...`: the venv's Python as nobody instead
        # (setpriv execs, so the child's pid is the hub's own).
        assert command[0] == sys.executable
        as_nobody = [
            "setpriv",
            f"--reuid={self.account.pw_uid}",
            f"--regid={self.account.pw_gid}",
            "--clear-groups",
        ]
        return super()._spawn(
            [*as_nobody, str(self.venv / "bin" / "python"), *command[1:]], **kwargs
        )


@pytest.fixture(scope="module")
def hub(world, venv, account):
    hub = NobodyHub(world / "hub", venv=venv, account=account)
    # NobodyHub.env() passes on the fake NVML by hand: it must know every variable it needs.
    assert set(hub.nvml_env) == {"LD_LIBRARY_PATH", "FAKE_NVML_CONFIG"}
    hub.start()
    # Everything the hub starts (proxy, servers), to end by pid whatever happens.
    started: list[psutil.Process] = []
    try:
        yield hub
    finally:
        if hub.process is not None:
            started = psutil.Process(hub.process.pid).children(recursive=True)
        hub.stop()
        for process in started:
            if process.is_running():
                process.kill()


def gpu_kind(resources: dict) -> dict:
    node = resources["nodes"][0]
    return next(g for g in node["gpus"] if g["resource"] == GPU)


def server_process(hub: NobodyHub, user: str) -> psutil.Process:
    for child in psutil.Process(hub.process.pid).children():
        try:
            if child.environ().get("JUPYTERHUB_USER") == user:
                return child
        except psutil.Error:
            continue
    raise AssertionError(f"no server process for {user}")


def test_the_hub_runs_as_nobody_from_the_installed_package(hub, account, venv):
    process = psutil.Process(hub.process.pid)
    assert process.uids().effective == account.pw_uid
    assert process.cmdline()[0] == str(venv / "bin" / "python")
    assert f"JupyterHub on this machine at http://127.0.0.1:{hub.port}/" in hub.log_path.read_text()


def test_an_ordinary_users_hub_spawns_a_server_with_its_own_gpu(hub, account, venv):
    ursula = hub.login("ursula")
    assert gpu_kind(ursula.resources())["free"] == 2

    # Given a user who asks for 1 CPU and one GPU through the form
    response = ursula.submit_form(custom_form("1", "1Gi", GPU, "1"))
    assert response.status_code == 302, response.text[-2000:]
    ursula.wait_ready()
    try:
        # Then the server runs as the hub's user, without the root-only flag
        server = server_process(hub, "ursula")
        assert set(server.uids()) == {account.pw_uid}
        assert not any("allow_root" in arg for arg in server.cmdline())
        assert any(arg.startswith(str(venv / "bin")) for arg in server.cmdline())
        assert server.cwd() == str(hub.home / "jupyter-tk" / "ursula")
        # CPU is time-shared by default: the server runs on the hub's cores, not pinned
        assert server.cpu_affinity() == psutil.Process(hub.process.pid).cpu_affinity()

        # And the picker counts its GPU as taken
        kind = gpu_kind(ursula.resources())
        assert kind["free"] == 1
        (uuid,) = [d["uuid"] for d in kind["devices"] if d["taken_by"] == ["ursula"]]
        assert server.environ()["CUDA_VISIBLE_DEVICES"] == uuid

        # And the server's own GPU API, through the proxy, lists exactly that GPU
        assert ursula.open_lab().status_code == 200
        gpus = ursula.server_api("gpus").json()
        assert gpus["available"] is True
        assert [d["uuid"] for d in gpus["devices"]] == [uuid]
    finally:
        ursula.stop_server()

    # When it stops, its GPU and CPU share are free again and its process is gone
    resources = ursula.resources()
    assert gpu_kind(resources)["free"] == 2
    assert resources["nodes"][0]["requested"]["cpu"] == 0
    assert not server.is_running()

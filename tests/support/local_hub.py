"""A real JupyterHub started from ``share/jupyterhub/local_config.py`` (on `hub_process.py`).

Used by the local hub tests, the browser test and ``benchmarks/local_spawn.py``. The hub runs as
a subprocess with the fake NVML library on ``LD_LIBRARY_PATH``; spawned servers inherit it (and
``FAKE_NVML_CONFIG``, added to ``Spawner.env_keep`` by a config that loads local_config.py with
``load_subconfig`` exactly as an operator would).
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.nvml import fake_config, fake_gpu, fake_mig_gpu, nvml_env
from tests.support.hub_process import HubProcess, HubUser

REPO = Path(__file__).resolve().parents[2]
LOCAL_CONFIG = REPO / "share" / "jupyterhub" / "local_config.py"
PASSWORD = "local-hub-test-password"
ADMIN_PASSWORD = "local-hub-test-admin-password-of-32-characters"


def default_gpus() -> list[dict]:
    """Two whole A100s and one MIG-enabled A100 with two 1g.10gb instances."""
    return [fake_gpu(0), fake_gpu(1), fake_mig_gpu(2, instances=2)]


class LocalHub(HubProcess):
    """Starts and stops `jupyterhub -f <config>` where the config loads local_config.py."""

    password = PASSWORD

    def __init__(
        self,
        workdir: Path,
        *,
        gpus: list[dict] | None = None,
        extra_config: str = "",
        port: int | None = None,
        load_local_config: bool = True,
        cores: int | None = None,
        real_nvml: bool = False,
    ) -> None:
        """`cores`: the hub runs on only this many of this machine's cores (its CPU affinity),
        which its inventory and the shipped policy then see as the whole machine. `real_nvml`:
        the machine's own driver and GPUs instead of the fake library (tests/gpu)."""
        super().__init__(workdir, port=port)
        # Spawned servers write their runtime files here, not into the real home.
        self.home = self.workdir / "home"
        self.home.mkdir(exist_ok=True)
        self.nvml_config_path = self.workdir / "nvml.json"
        self.nvml_env = (
            {}
            if real_nvml
            else nvml_env(fake_config(gpus or default_gpus()), self.nvml_config_path)
        )
        base = (
            f"load_subconfig({str(LOCAL_CONFIG)!r})\n"
            "# The fake NVML's config must reach the spawned servers too.\n"
            "c.Spawner.env_keep.append('FAKE_NVML_CONFIG')\n"
            "c.LocalInventory.refresh_interval = 1.0\n"
            if load_local_config
            else ""
        )
        affinity = (
            f"import os\nos.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:{cores}])\n"
            if cores
            else ""
        )
        self.config_path.write_text("c = get_config()\n" + affinity + base + extra_config)

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(self.nvml_env)
        env.pop("CUDA_VISIBLE_DEVICES", None)
        env.update(
            JUPYTER_TK_STATE_DIR=str(self.workdir / "state"),
            JUPYTER_TK_PORT=str(self.port),
            JUPYTER_TK_PASSWORD=PASSWORD,
            JUPYTER_TK_ADMIN_PASSWORD=ADMIN_PASSWORD,
            HOME=str(self.home),
        )
        return env

    def login_admin(self) -> HubUser:
        """The ``admin`` user of local_config.py, logged in with its own password."""
        return self.login("admin", password=ADMIN_PASSWORD)


def custom_form(cpu: str, memory: str, gpu_resource: str = "", gpu_count: str = "0") -> dict:
    """The form fields of a free ("custom") choice on this machine."""
    return {
        "profile": "custom",
        "image": "tk-jupyter-ml-gpu",
        "custom_image": "",
        "node": "",
        "cpu": cpu,
        "memory": memory,
        "gpu_resource": gpu_resource,
        "gpu_count": gpu_count,
    }

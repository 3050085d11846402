"""Fixtures for the single-user server extension: a real jupyter_server with auth on."""

import pytest

from tests.fakes.nvml import FakeNvml, fake_gpu, load_fake_nvml_in_process


@pytest.fixture
def jp_asyncio_loop(_function_scoped_runner):
    """Run pytest-jupyter's server on the loop pytest-asyncio runs these async tests on.

    With asyncio_mode=auto, pytest-asyncio (not pytest-jupyter) runs async tests, each on its
    own loop; pytest-jupyter's autouse fixture would otherwise start the HTTP server on a second
    loop nobody runs, and close a loop pytest-asyncio still owns.
    """
    return _function_scoped_runner.get_loop()


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {
            # jupyter_server_terminals (installed beside JupyterLab) fails to load under
            # `filterwarnings = error` (its TermSocket has no auth decorator) and logs a traceback
            # on every server start; these tests do not use terminals.
            "jpserver_extensions": {"jupyter_tk": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
        }
    }


@pytest.fixture
async def server(jp_serverapp):
    """The server once its extensions have started (pytest-jupyter never runs its IOLoop, where
    the start hooks run: the GPU sampler gets the kernel manager, the examples sync begins)."""
    await jp_serverapp.extension_manager.start_all_extensions()
    return jp_serverapp


@pytest.fixture
def fake_nvml_devices():
    """The GPUs the fake library shows when a test starts (a module overrides this to differ)."""
    return [fake_gpu(0), fake_gpu(1)]


@pytest.fixture
def fake_nvml(tmp_path, monkeypatch, fake_nvml_devices):
    """The fake libnvidia-ml.so.1, loaded into this process, driven through its own config file.

    pynvml loads its library once per process, so every test shares the loaded library; each
    gets its own config file and call counter, and sees every fake GPU (no CUDA_VISIBLE_DEVICES).
    """
    load_fake_nvml_in_process()
    nvml = FakeNvml(tmp_path / "nvml")
    nvml.set(fake_nvml_devices)
    monkeypatch.setenv("FAKE_NVML_CONFIG", str(nvml.config_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return nvml

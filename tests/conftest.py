"""Shared pytest configuration; nothing here needs the hub extra (server tests run without it)."""

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """The simulated Kubernetes API ("small" cluster) as a child process, one per test module."""
    from tests.support.kube_hub import SimulatedApiProcess

    with SimulatedApiProcess(tmp_path_factory.mktemp("sim")) as api:
        yield api

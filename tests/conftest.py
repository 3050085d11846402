"""Shared pytest configuration."""

import pytest

from tests.hub.kube_hub import SimulatedApiProcess

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """The simulated Kubernetes API ("small" cluster) as a child process, one per test module."""
    with SimulatedApiProcess(tmp_path_factory.mktemp("sim")) as api:
        yield api

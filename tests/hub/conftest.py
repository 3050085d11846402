"""Fixtures shared by the hub tests."""

import pytest

from tests.fakes.clusters import make_cluster
from tests.fakes.kubernetes import SimulatedKubernetes


@pytest.fixture
async def api():
    """The simulated Kubernetes API with the "small" cluster, served from this process."""
    server = SimulatedKubernetes(make_cluster("small"))
    await server.start()
    yield server
    await server.stop()

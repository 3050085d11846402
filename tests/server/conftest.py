"""Fixtures for the single-user server extension: a real jupyter_server with auth on."""

import pytest


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_tk": True},
            "allow_unauthenticated_access": False,
        }
    }

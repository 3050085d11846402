"""``GET jupyter-tk/api/storage`` on a real jupyter_server: the tiers the spawner passed in
``$JUPYTER_TK_STORAGE``, as paths relative to the server's root."""

from __future__ import annotations

import json

import pytest

from jupyter_tk.server.storage import StorageConfigError, storage_folders


@pytest.fixture
def jp_asyncio_loop(_function_scoped_runner):
    # As in tests/server: the server runs on the loop pytest-asyncio runs the test on.
    return _function_scoped_runner.get_loop()


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_tk": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
        }
    }


async def get_storage(jp_fetch) -> dict:
    response = await jp_fetch("jupyter-tk", "api", "storage")
    assert response.code == 200
    return json.loads(response.body)


async def test_tiers_relative_to_the_server_root(jp_fetch, jp_root_dir, monkeypatch):
    root = str(jp_root_dir)
    tiers = {
        root: "ephemeral",
        f"{root}/thinkube/notebooks": "persistent",
        f"{root}/thinkube/examples-repo": "read-only",
        "/elsewhere/datasets": "shared",  # not below the root: Lab cannot show it
    }
    monkeypatch.setenv("JUPYTER_TK_STORAGE", json.dumps(tiers))
    assert await get_storage(jp_fetch) == {
        "folders": [
            {"path": "", "tier": "ephemeral"},
            {"path": "thinkube/examples-repo", "tier": "read-only"},
            {"path": "thinkube/notebooks", "tier": "persistent"},
        ],
        "error": None,
    }


async def test_no_layout_means_no_folders(jp_fetch, monkeypatch):
    monkeypatch.delenv("JUPYTER_TK_STORAGE", raising=False)
    assert await get_storage(jp_fetch) == {"folders": [], "error": None}


async def test_a_malformed_variable_shows_nothing_and_says_why(jp_fetch, monkeypatch):
    monkeypatch.setenv("JUPYTER_TK_STORAGE", '{"/home/jovyan": "forever"}')
    body = await get_storage(jp_fetch)
    assert body["folders"] == [] and "forever" in body["error"]


def test_the_root_takes_the_tier_of_the_innermost_folder_around_it(tmp_path):
    root = tmp_path / "home" / "jovyan" / "work"
    root.mkdir(parents=True)
    tiers = {str(tmp_path / "home"): "shared", str(tmp_path / "home" / "jovyan"): "ephemeral"}
    assert storage_folders(str(root), {"JUPYTER_TK_STORAGE": json.dumps(tiers)}) == [
        {"path": "", "tier": "ephemeral"}
    ]


@pytest.mark.parametrize("text", ["[1]", "not json", '{"relative": "shared"}'])
def test_malformed_values_are_refused(text, tmp_path):
    with pytest.raises(StorageConfigError):
        storage_folders(str(tmp_path), {"JUPYTER_TK_STORAGE": text})

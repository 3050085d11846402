"""REST endpoints of examples copying, through a real jupyter_server with auth on."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest
from jupyter_server.auth.authorizer import AllowAllAuthorizer

from tests.support.contract import DenyJupyterTk

from .test_examples_engine import IMAGE, V1, write_tree

ENDPOINTS = [
    ("GET", "jupyter-tk/api/examples"),
    ("POST", "jupyter-tk/api/examples/copy"),
    ("POST", "jupyter-tk/api/examples/reset"),
]


@pytest.fixture
def examples_source(tmp_path):
    folder = tmp_path / "examples-repo"
    write_tree(
        folder,
        {
            "common/intro.ipynb": V1,
            "common/data/notes.md": b"# notes\n",
            "ml-gpu/train.ipynb": b"gpu v1",
            "ml-cpu/other.ipynb": b"not for this image",
        },
    )
    return folder


@pytest.fixture
def sync_on_start():
    return False


@pytest.fixture
def authorizer():
    return AllowAllAuthorizer


@pytest.fixture
def jp_server_config(jp_server_config, jp_root_dir, examples_source, sync_on_start, authorizer):
    return {
        "ServerApp": {**jp_server_config["ServerApp"], "authorizer_class": authorizer},
        "ExamplesSync": {
            "source_dir": str(examples_source),
            "destination_dir": str(jp_root_dir / "examples"),
            "image_name": IMAGE,
            "sync_on_start": sync_on_start,
        },
    }


async def fetch_json(jp_fetch, method, path, body=None, **kwargs):
    response = await jp_fetch(
        *path.split("/"), method=method, body=body, raise_error=False, **kwargs
    )
    return response.code, json.loads(response.body or b"null")


async def test_list_follows_the_contract(server, jp_fetch):
    code, document = await fetch_json(jp_fetch, "GET", "jupyter-tk/api/examples")
    assert code == 200
    assert {"image", "source", "destination", "categories", "items"} <= set(document)
    assert document["image"] == IMAGE
    assert document["categories"] == ["common", "ml-gpu"]
    assert document["source_exists"] is True
    assert set(document["sync"]) >= {"running", "error", "finished_at", "copied"}
    assert document["items"] == [
        {
            "id": "common/data/notes.md",
            "category": "common",
            "path": f"examples/{IMAGE}/common/data/notes.md",
            "status": "new",
            "size": 8,
            "error": None,
        },
        {
            "id": "common/intro.ipynb",
            "category": "common",
            "path": f"examples/{IMAGE}/common/intro.ipynb",
            "status": "new",
            "size": len(V1),
            "error": None,
        },
        {
            "id": "ml-gpu/train.ipynb",
            "category": "ml-gpu",
            "path": f"examples/{IMAGE}/ml-gpu/train.ipynb",
            "status": "new",
            "size": 6,
            "error": None,
        },
    ]


async def test_copy_by_id_then_open_the_copy_through_the_contents_api(server, jp_fetch):
    body = json.dumps({"ids": ["ml-gpu/train.ipynb"]})
    code, response = await fetch_json(jp_fetch, "POST", "jupyter-tk/api/examples/copy", body)
    assert code == 200
    assert response == {
        "results": [
            {
                "id": "ml-gpu/train.ipynb",
                "status": "unchanged",
                "action": "copied",
                "message": None,
                "backup": None,
            }
        ]
    }
    _, document = await fetch_json(jp_fetch, "GET", "jupyter-tk/api/examples")
    item = next(i for i in document["items"] if i["id"] == "ml-gpu/train.ipynb")
    assert item["status"] == "unchanged"
    opened = await jp_fetch("api", "contents", *item["path"].split("/"), params={"type": "file"})
    assert json.loads(opened.body)["content"] == "gpu v1"


async def test_copy_all_then_reset_keeps_the_users_version(server, jp_fetch, jp_root_dir):
    code, response = await fetch_json(
        jp_fetch, "POST", "jupyter-tk/api/examples/copy", json.dumps({"all": True})
    )
    assert code == 200
    assert [r["action"] for r in response["results"]] == ["copied"] * 3
    copy = jp_root_dir / "examples" / IMAGE / "common" / "intro.ipynb"
    copy.write_bytes(b"my edit")
    _, document = await fetch_json(jp_fetch, "GET", "jupyter-tk/api/examples")
    assert {i["id"]: i["status"] for i in document["items"]}["common/intro.ipynb"] == "modified"
    body = json.dumps({"ids": ["common/intro.ipynb"]})
    code, response = await fetch_json(jp_fetch, "POST", "jupyter-tk/api/examples/reset", body)
    assert code == 200
    [result] = response["results"]
    assert (result["status"], result["action"]) == ("unchanged", "updated")
    assert copy.read_bytes() == V1
    assert (jp_root_dir / result["backup"]).read_bytes() == b"my edit"


TOO_MANY = json.dumps({"ids": [f"common/{i}.ipynb" for i in range(10_001)]})
HUGE = json.dumps({"ids": ["common/" + "x" * (2 << 20)]})


BAD_REQUESTS = {
    "invalid JSON": ("copy", "{not json", "not valid JSON"),
    "not UTF-8": ("copy", b"\xff\xfe", "not valid JSON"),
    "a list": ("copy", "[]", "must be"),
    "empty object": ("copy", "{}", "must be"),
    "ids not a list": ("copy", '{"ids": "common/intro.ipynb"}', "non-empty list"),
    "ids empty": ("copy", '{"ids": []}', "non-empty list"),
    "id a number": ("copy", '{"ids": [3]}', "not an example id"),
    "id null": ("copy", '{"ids": [null]}', "not an example id"),
    "id twice": ("copy", '{"ids": ["common/intro.ipynb", "common/intro.ipynb"]}', "twice"),
    "ids and all": ("copy", '{"ids": ["common/intro.ipynb"], "all": true}', "not both"),
    "all false": ("copy", '{"all": false}', "must be true"),
    "all 1": ("copy", '{"all": 1}', "must be true"),
    "a path field": ("copy", '{"paths": ["/etc/passwd"]}', "unknown field"),
    "traversal": ("copy", '{"ids": ["common/../../../etc/passwd"]}', "unknown example id"),
    "absolute": ("copy", '{"ids": ["/etc/passwd"]}', "unknown example id"),
    "NUL": ("copy", '{"ids": ["common/intro.ipynb\\u0000"]}', "NUL"),
    "other image's": ("copy", '{"ids": ["ml-cpu/other.ipynb"]}', "unknown example id"),
    "too many ids": ("copy", TOO_MANY, "more than 10000"),
    "huge body": ("copy", HUGE, "over 1048576 bytes"),
    "deeply nested": ("copy", '{"ids": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON"),
    "reset all": ("reset", '{"all": true}', "unknown field"),
    "reset unknown": ("reset", '{"ids": ["common/intro.ipynb", "nope"]}', "unknown example id"),
}


@pytest.mark.parametrize(("endpoint", "body", "message"), BAD_REQUESTS.values(), ids=BAD_REQUESTS)
async def test_bad_requests_get_400_and_write_nothing(
    jp_fetch, jp_root_dir, endpoint, body, message
):
    code, response = await fetch_json(jp_fetch, "POST", f"jupyter-tk/api/examples/{endpoint}", body)
    assert code == 400
    assert message in response["message"]
    assert not (jp_root_dir / "examples").exists()


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_requests_without_a_token_are_forbidden(server, jp_fetch, jp_root_dir, method, path):
    body = json.dumps({"all": True}) if method == "POST" else None
    code, _ = await fetch_json(jp_fetch, method, path, body, headers={"Authorization": ""})
    assert code == 403
    assert not (jp_root_dir / "examples").exists()


async def test_missing_source_is_shown_and_copy_answers_409(server, jp_fetch, examples_source):
    shutil.rmtree(examples_source)
    code, document = await fetch_json(jp_fetch, "GET", "jupyter-tk/api/examples")
    assert code == 200
    assert document["source_exists"] is False and document["items"] == []
    assert "does not exist" in document["error"]
    code, response = await fetch_json(
        jp_fetch, "POST", "jupyter-tk/api/examples/copy", json.dumps({"all": True})
    )
    assert code == 409 and "does not exist" in response["message"]


@pytest.mark.parametrize("authorizer", [DenyJupyterTk])
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_users_not_authorized_for_jupyter_tk_are_forbidden(
    server, jp_fetch, jp_root_dir, method, path
):
    body = json.dumps({"all": True}) if method == "POST" else None
    code, _ = await fetch_json(jp_fetch, method, path, body)
    assert code == 403
    assert not (jp_root_dir / "examples").exists()


@pytest.mark.parametrize("sync_on_start", [True])
async def test_start_up_sync_runs_in_the_background(server, jp_fetch, jp_root_dir):
    for _ in range(200):
        _, document = await fetch_json(jp_fetch, "GET", "jupyter-tk/api/examples")
        if document["sync"]["finished_at"] is not None:
            break
        await asyncio.sleep(0.05)
    assert document["sync"]["error"] is None
    assert document["sync"]["copied"] == 3
    assert {item["status"] for item in document["items"]} == {"unchanged"}
    assert (jp_root_dir / "examples" / IMAGE / "common" / "intro.ipynb").read_bytes() == V1

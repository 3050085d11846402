"""Image catalog: item validation, file and static sources, and a real HTTP source on 127.0.0.1."""

import asyncio
import json
import logging

import pytest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from jupyter_tk.hub.catalog import (
    CatalogError,
    CatalogImage,
    CatalogState,
    ImageCatalog,
    parse_catalog,
)

ITEMS = [
    {
        "name": "tk-jupyter-scipy",
        "image": "quay.io/jupyter/scipy-notebook:2024-05-27",
        "display_name": "SciPy",
        "description": "NumPy, pandas",
        "default": True,
    },
    {
        "name": "tk-jupyter-ml-gpu",
        "image": "nvcr.io/nvidia/pytorch:24.05-py3",
        "metadata": {"gpu_required": True},
    },
]
SCIPY = CatalogImage(
    name="tk-jupyter-scipy",
    image="quay.io/jupyter/scipy-notebook:2024-05-27",
    display_name="SciPy",
    description="NumPy, pandas",
    default=True,
    gpu_required=False,
)
ML_GPU = CatalogImage(
    name="tk-jupyter-ml-gpu",
    image="nvcr.io/nvidia/pytorch:24.05-py3",
    display_name="tk-jupyter-ml-gpu",
    description="",
    default=False,
    gpu_required=True,
)


# -- items ---------------------------------------------------------------------------------------


def test_parses_the_thinkube_control_shape():
    images, skipped = parse_catalog(ITEMS)
    assert images == (SCIPY, ML_GPU)
    assert skipped == ()
    assert parse_catalog({"images": ITEMS}) == (images, ())


@pytest.mark.parametrize(
    ("item", "field", "value"),
    [
        ({"gpu_required": True}, "gpu_required", True),
        ({"metadata": {"gpu_required": True}}, "gpu_required", True),
        # The top-level field wins over metadata.
        ({"gpu_required": False, "metadata": {"gpu_required": True}}, "gpu_required", False),
        ({"gpu_required": None, "metadata": {"gpu_required": True}}, "gpu_required", True),
        ({"metadata": None}, "gpu_required", False),
        ({"metadata": "junk"}, "gpu_required", False),
        ({"description": None}, "description", ""),
        ({"display_name": ""}, "display_name", "img"),
        ({"display_name": "Nice <b>name</b>"}, "display_name", "Nice <b>name</b>"),
        ({"default": None}, "default", False),
        ({"id": 7, "created_at": "2024-01-01", "extra": [1]}, "name", "img"),  # extra keys ignored
    ],
)
def test_item_fields(item, field, value):
    images, skipped = parse_catalog([{"name": "img", "image": "quay.io/x/img:1", **item}])
    assert skipped == ()
    assert getattr(images[0], field) == value


def test_registry_prefix_builds_missing_images():
    items = [{"name": "tk-jupyter-base"}, {"name": "other", "image": "quay.io/o/other:2"}]
    images, skipped = parse_catalog(items, registry_prefix="registry.example.com:5000/library/")
    assert [i.image for i in images] == [
        "registry.example.com:5000/library/tk-jupyter-base:latest",
        "quay.io/o/other:2",
    ]
    assert skipped == ()


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ("just-a-string", "expected an object, got str"),
        ({"image": "quay.io/x/y"}, "'name' is missing"),
        ({"name": 3, "image": "quay.io/x/y"}, "'name' is missing or not a string"),
        ({"name": "Bad Name", "image": "quay.io/x/y"}, "is not a slug"),
        ({"name": "../etc", "image": "quay.io/x/y"}, "is not a slug"),
        ({"name": "n\u00e4me", "image": "quay.io/x/y"}, "is not a slug"),
        ({"name": "x" * 129, "image": "quay.io/x/y"}, "is not a slug"),
        ({"name": "img"}, "has no 'image' and no registry_prefix"),
        ({"name": "img", "image": "Quay.io/X/y"}, "must be lowercase"),
        ({"name": "img", "image": "quay.io/x/y:tag with space"}, "whitespace"),
        ({"name": "img", "image": ["quay.io/x/y"]}, "'image' is not a string"),
        ({"name": "img", "image": "quay.io/x/y", "default": "yes"}, "'default' must be true"),
        ({"name": "img", "image": "quay.io/x/y", "gpu_required": 1}, "'gpu_required' must be"),
        (
            {"name": "img", "image": "quay.io/x/y", "metadata": {"gpu_required": "true"}},
            "'gpu_required' must be",
        ),
        ({"name": "img", "image": "quay.io/x/y", "description": 5}, "'description' is not"),
    ],
)
def test_bad_items_are_skipped_with_a_reason(item, reason):
    images, skipped = parse_catalog([ITEMS[0], item, ITEMS[1]])
    assert images == (SCIPY, ML_GPU)
    assert len(skipped) == 1
    assert skipped[0].startswith("item 1: ")
    assert reason in skipped[0]


def test_duplicate_names_first_wins():
    second = {**ITEMS[0], "image": "quay.io/other/image:1"}
    images, skipped = parse_catalog([ITEMS[0], second])
    assert images == (SCIPY,)
    assert skipped == ("item 1: the name 'tk-jupyter-scipy' is used by an earlier item",)


@pytest.mark.parametrize("data", [{"items": []}, "[]", 5, None, {"images": {"name": "x"}}])
def test_a_catalog_that_is_not_a_list_is_an_error(data):
    with pytest.raises(ValueError, match="must be a JSON list"):
        parse_catalog(data)


def test_state_helpers():
    state = CatalogState(images=(ML_GPU, SCIPY))
    assert state.image("tk-jupyter-scipy") is SCIPY
    assert state.image("nope") is None
    assert state.default_image is SCIPY
    assert CatalogState(images=(ML_GPU,)).default_image is ML_GPU
    assert CatalogState(images=()).default_image is None


# -- static and file sources -----------------------------------------------------------------------


async def test_static_images_from_config():
    catalog = ImageCatalog(source="", images=[*ITEMS, {"name": "broken"}])
    state = await catalog.get()
    assert state.images == (SCIPY, ML_GPU)
    assert state.error is None and state.stale is False
    assert state.fetched_at is not None
    assert len(state.skipped) == 1


async def test_no_source_and_no_images_is_an_empty_catalog(monkeypatch):
    monkeypatch.delenv("JUPYTER_TK_CATALOG", raising=False)
    state = await ImageCatalog().get()
    assert state.images == ()
    assert state.error is None


@pytest.mark.parametrize("as_url", [False, True])
async def test_file_source(tmp_path, as_url):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"images": ITEMS}))
    source = path.as_uri() if as_url else str(path)
    state = await ImageCatalog(source=source).get()
    assert state.images == (SCIPY, ML_GPU)


async def test_source_defaults_to_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(ITEMS[:1]))
    monkeypatch.setenv("JUPYTER_TK_CATALOG", str(path))
    assert (await ImageCatalog().get()).images == (SCIPY,)


async def test_file_changes_are_seen_after_the_ttl(tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(ITEMS[:1]))
    catalog = ImageCatalog(source=str(path), ttl_seconds=0.05)
    assert (await catalog.get()).images == (SCIPY,)
    path.write_text(json.dumps(ITEMS))
    assert (await catalog.get()).images == (SCIPY,)  # still cached
    await asyncio.sleep(0.1)
    assert (await catalog.get()).images == (SCIPY, ML_GPU)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "cannot read the file: No such file or directory"),
        ("[{", "not valid JSON"),
        (b"\xff[]", "not valid JSON"),
        ('{"name": "x"}', "must be a JSON list"),
        ("[]" + " " * 2000, "larger than 1000 bytes"),
    ],
)
async def test_file_source_errors(tmp_path, content, error):
    path = tmp_path / "catalog.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    state = await ImageCatalog(source=str(path), max_response_bytes=1000).get()
    assert state.images == ()
    assert state.error.startswith(f"{path}: ")
    assert error in state.error


async def test_unsupported_scheme():
    state = await ImageCatalog(source="ftp://example.com/catalog.json").get()
    assert "unsupported URL scheme 'ftp'" in state.error


# -- a real HTTP source ----------------------------------------------------------------------------


class CatalogSource:
    """A catalog endpoint on 127.0.0.1 whose answers the test controls; counts requests."""

    def __init__(self):
        self.body = json.dumps(ITEMS)
        self.status = 200
        self.delay = 0.0
        self.requests = []
        source = self

        class Handler(RequestHandler):
            async def get(self):
                source.requests.append(dict(self.request.headers))
                if source.delay:
                    await asyncio.sleep(source.delay)
                self.set_status(source.status)
                self.set_header("Content-Type", "application/json")
                self.finish(source.body)

        class Redirect(RequestHandler):
            def get(self):
                source.requests.append(dict(self.request.headers))
                self.redirect(source.redirect_to, status=307)

        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/api/v1/images/jupyter"
        self.redirect_url = f"http://127.0.0.1:{self.port}/old"
        self.redirect_to = self.url
        routes = [(r"/api/v1/images/jupyter", Handler), (r"/old", Redirect)]
        self.server = HTTPServer(Application(routes))
        self.server.add_sockets(sockets)

    async def stop(self):
        self.server.stop()
        await self.server.close_all_connections()


@pytest.fixture
async def source():
    source = CatalogSource()
    yield source
    await source.stop()


@pytest.fixture
def catalog_log(caplog):
    caplog.set_level(logging.INFO, logger="test-catalog")
    return logging.getLogger("test-catalog")


async def test_http_source(source, catalog_log):
    state = await ImageCatalog(source=source.url, log=catalog_log).get()
    assert state.images == (SCIPY, ML_GPU)
    assert (state.error, state.stale) == (None, False)
    assert source.requests[0]["Accept"] == "application/json"
    assert "Authorization" not in source.requests[0]


async def test_bearer_token_from_trait_and_environment(source, monkeypatch):
    await ImageCatalog(source=source.url, auth_token="s3cret").get()
    monkeypatch.setenv("JUPYTER_TK_CATALOG_TOKEN", "from-env")
    await ImageCatalog(source=source.url).get()
    assert [r["Authorization"] for r in source.requests] == ["Bearer s3cret", "Bearer from-env"]


async def test_cached_for_ttl_seconds(source):
    catalog = ImageCatalog(source=source.url, ttl_seconds=0.3)
    for _ in range(5):
        assert (await catalog.get()).images == (SCIPY, ML_GPU)
    assert len(source.requests) == 1
    await asyncio.sleep(0.35)
    await catalog.get()
    await catalog.get()
    assert len(source.requests) == 2


async def test_concurrent_gets_share_one_fetch(source):
    source.delay = 0.2
    catalog = ImageCatalog(source=source.url)
    states = await asyncio.gather(*(catalog.get() for _ in range(20)))
    assert len(source.requests) == 1
    assert all(state.images == (SCIPY, ML_GPU) for state in states)


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(source):
    source.delay = 0.2
    catalog = ImageCatalog(source=source.url)
    impatient = asyncio.ensure_future(catalog.get())
    patient = asyncio.ensure_future(catalog.get())
    await asyncio.sleep(0.05)
    impatient.cancel()
    assert (await patient).images == (SCIPY, ML_GPU)
    assert len(source.requests) == 1


async def test_source_down_serves_the_last_good_list_as_stale(source, catalog_log, caplog):
    catalog = ImageCatalog(source=source.url, ttl_seconds=0.05, retry_seconds=0.2, log=catalog_log)
    good = await catalog.get()
    await asyncio.sleep(0.1)

    source.status, source.body = 503, '{"detail": "down for maintenance"}'
    state = await catalog.get()
    assert state.images == good.images
    assert state.stale is True
    assert state.fetched_at == good.fetched_at
    assert state.error == f"{source.url}: HTTP 503 (Service Unavailable)"
    assert "keeping the last good list" in caplog.text

    # Within retry_seconds the failing source is left alone.
    for _ in range(3):
        assert (await catalog.get()).stale is True
    assert len(source.requests) == 2

    source.status, source.body = 200, json.dumps(ITEMS[:1])
    await asyncio.sleep(0.25)
    state = await catalog.get()
    assert (state.images, state.stale, state.error) == ((SCIPY,), False, None)
    assert state.fetched_at > good.fetched_at


async def test_server_gone_serves_the_last_good_list(source):
    catalog = ImageCatalog(source=source.url, ttl_seconds=0, retry_seconds=0)
    good = await catalog.get()
    await source.stop()
    state = await catalog.get()
    assert state.images == good.images
    assert state.stale is True
    assert "cannot connect" in state.error or "no response" in state.error


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, "oops", "HTTP 500"),
        (401, '{"detail": "no token"}', "HTTP 401"),
        (200, "<html>login</html>", "not valid JSON"),
        (200, '{"detail": "x"}', "must be a JSON list"),
        (200, json.dumps(ITEMS * 100), "response larger than 4000 bytes"),
    ],
)
async def test_bad_answers_without_a_good_list(source, status, body, error):
    source.status, source.body = status, body
    state = await ImageCatalog(source=source.url, max_response_bytes=4000).get()
    assert state.images == ()
    assert state.fetched_at is None
    assert state.stale is False
    assert error in state.error


async def test_timeout(source):
    source.delay = 1.0
    state = await ImageCatalog(source=source.url, timeout_seconds=0.2).get()
    assert state.images == ()
    assert "no response (Timeout" in state.error


async def test_fail_fast_raises_only_when_there_never_was_a_good_list(source):
    source.status = 500
    catalog = ImageCatalog(source=source.url, fail_fast=True, retry_seconds=0, ttl_seconds=0)
    with pytest.raises(CatalogError, match=r"the image catalog is unavailable: .*HTTP 500"):
        await catalog.get()

    source.status = 200
    assert (await catalog.get()).images == (SCIPY, ML_GPU)
    source.status = 500
    state = await catalog.get()
    assert state.stale is True
    assert state.images == (SCIPY, ML_GPU)


async def test_connection_refused_without_fail_fast_is_empty_with_error():
    source = CatalogSource()
    url = source.url
    await source.stop()
    state = await ImageCatalog(source=url).get()
    assert state.images == ()
    assert state.error.startswith(url)


async def test_skipped_items_are_logged_once(source, catalog_log, caplog):
    source.body = json.dumps([*ITEMS, {"name": "Bad Name", "image": "x"}])
    catalog = ImageCatalog(source=source.url, ttl_seconds=0, log=catalog_log)
    for _ in range(3):
        state = await catalog.get()
    assert len(source.requests) == 3
    assert len(state.skipped) == 1
    warnings = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1
    assert "'Bad Name' is not a slug" in warnings[0].getMessage()


async def test_registry_prefix_over_http(source):
    source.body = json.dumps([{"name": "tk-jupyter-base", "display_name": "Base"}])
    catalog = ImageCatalog(source=source.url, registry_prefix="registry.thinkube.com/library")
    state = await catalog.get()
    assert state.images[0].image == "registry.thinkube.com/library/tk-jupyter-base:latest"
    assert state.images[0].display_name == "Base"


async def test_redirects_on_the_same_host_are_followed_with_the_token(source):
    state = await ImageCatalog(source=source.redirect_url, auth_token="s3cret").get()
    assert state.images == (SCIPY, ML_GPU)
    assert [r["Authorization"] for r in source.requests] == ["Bearer s3cret"] * 2


async def test_the_token_is_not_sent_to_another_host(source):
    # Same server, other host name: a redirect elsewhere must not carry the token.
    source.redirect_to = f"http://localhost:{source.port}/api/v1/images/jupyter"
    state = await ImageCatalog(source=source.redirect_url, auth_token="s3cret").get()
    assert state.images == ()
    assert "redirected to another host" in state.error
    assert len(source.requests) == 1

    state = await ImageCatalog(source=source.redirect_url).get()  # no token: fine to follow
    assert state.images == (SCIPY, ML_GPU)


async def test_redirect_loops_end(source):
    source.redirect_to = source.redirect_url
    state = await ImageCatalog(source=source.redirect_url).get()
    assert "more than 5 redirects" in state.error
    assert len(source.requests) == 6


async def test_errors_never_show_credentials_from_the_url(source):
    source.status = 500
    host = f"127.0.0.1:{source.port}"
    url = f"http://user:pa55@{host}/api/v1/images/jupyter?token=t0ken#frag"
    state = await ImageCatalog(source=url).get()
    assert state.error.startswith(f"http://{host}/api/v1/images/jupyter: HTTP 500")
    assert "pa55" not in state.error and "t0ken" not in state.error
    # The credentials themselves were used (basic auth from the URL, the query string).
    assert source.requests[0]["Authorization"].startswith("Basic ")

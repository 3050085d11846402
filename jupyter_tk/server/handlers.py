"""REST handlers under ``<base_url>/jupyter-tk/api``; thin: logic is in gpu.py, examples.py."""

import json

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from jupyter_tk.server.examples.sync import (
    ExamplesRequestError,
    ExamplesUnavailableError,
    read_request,
)
from jupyter_tk.server.storage import StorageConfigError, storage_folders

NAMESPACE = "jupyter-tk"
AUTH_RESOURCE = "jupyter-tk"

# GPU handlers (owned by gpu work) and examples handlers (owned by examples work) go below.


class GpusHandler(APIHandler):
    """GET the latest GPU snapshot (shared by all clients; never blocks on NVML)."""

    auth_resource = AUTH_RESOURCE

    @tornado.web.authenticated
    @authorized
    async def get(self):
        snapshot = await self.settings["jupyter_tk_gpu"].latest()
        self.set_header("Content-Type", "application/json")
        self.finish(snapshot.body)


class GpuHistoryHandler(APIHandler):
    """GET the recent per-device history of GPU utilization and memory."""

    auth_resource = AUTH_RESOURCE

    @tornado.web.authenticated
    @authorized
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(self.settings["jupyter_tk_gpu"].history_body())


class ExamplesHandler(APIHandler):
    """GET the examples for this image, each with its status, and the start-up sync's state."""

    auth_resource = AUTH_RESOURCE

    @tornado.web.authenticated
    @authorized
    async def get(self):
        self.finish(json.dumps(await self.settings["jupyter_tk_examples"].list_async()))


class ExamplesChangeHandler(APIHandler):
    """Shared by copy and reset: bad requests -> 400, copying impossible now -> 409."""

    auth_resource = AUTH_RESOURCE

    async def change(self, *, allow_all: bool):
        examples = self.settings["jupyter_tk_examples"]
        try:
            ids = read_request(self.request.body, allow_all=allow_all)
            if allow_all:
                result = await examples.copy_async(ids)
            else:
                result = await examples.reset_async(ids)
        except (ExamplesRequestError, ExamplesUnavailableError) as error:
            # Written here, not raised as HTTPError: its message would be %-formatted.
            self.set_status(400 if isinstance(error, ExamplesRequestError) else 409)
            self.finish(json.dumps({"message": str(error), "reason": None}))
            return
        self.finish(json.dumps(result))


class ExamplesCopyHandler(ExamplesChangeHandler):
    """POST {"ids": [...]} or {"all": true}: copy new examples, refresh unedited ones."""

    @tornado.web.authenticated
    @authorized
    async def post(self):
        await self.change(allow_all=True)


class ExamplesResetHandler(ExamplesChangeHandler):
    """POST {"ids": [...]}: restore originals, keeping each edited copy beside it."""

    @tornado.web.authenticated
    @authorized
    async def post(self):
        await self.change(allow_all=False)


class ActivityHandler(APIHandler):
    """GET what counts as work here and the hub's GPU idle notice (Lab warns before a stop)."""

    auth_resource = AUTH_RESOURCE

    @tornado.web.authenticated
    @authorized
    def get(self):
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(self.settings["jupyter_tk_activity"].as_dict()))


class StorageHandler(APIHandler):
    """GET the tiers of this server's folders (from the spawner; empty on one machine)."""

    auth_resource = AUTH_RESOURCE

    @tornado.web.authenticated
    @authorized
    def get(self):
        try:
            folders = storage_folders(self.settings["server_root_dir"])
            error = None
        except StorageConfigError as problem:
            self.log.error("jupyter-tk storage tiers not shown: %s", problem)
            folders, error = [], str(problem)
        self.finish(json.dumps({"folders": folders, "error": error}))


def setup_route_handlers(web_app):
    base_url = web_app.settings["base_url"]
    routes = [
        (r"api/gpus", GpusHandler),
        (r"api/gpus/history", GpuHistoryHandler),
        (r"api/examples", ExamplesHandler),
        (r"api/examples/copy", ExamplesCopyHandler),
        (r"api/examples/reset", ExamplesResetHandler),
        (r"api/activity", ActivityHandler),
        (r"api/storage", StorageHandler),
    ]
    web_app.add_handlers(
        ".*$", [(url_path_join(base_url, NAMESPACE, path), handler) for path, handler in routes]
    )

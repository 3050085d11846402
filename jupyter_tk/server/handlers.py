"""REST handlers under ``<base_url>/jupyter-tk/api``: thin, logic lives in gpu.py and examples.py."""

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

NAMESPACE = "jupyter-tk"
AUTH_RESOURCE = "jupyter-tk"

# GPU handlers (owned by gpu work) and examples handlers (owned by examples work) go below.


def setup_route_handlers(web_app):
    base_url = web_app.settings["base_url"]
    routes = [
        # (r"api/gpus", GpusHandler), ...
    ]
    web_app.add_handlers(
        ".*$", [(url_path_join(base_url, NAMESPACE, path), handler) for path, handler in routes]
    )

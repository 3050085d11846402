"""The spawn form: Jinja2 rendering (autoescaped, overridable templates) and form parsing.

Templates live in ``jupyter_tk/hub/templates/tk_spawn/``; an operator overrides any of them by
putting a file of the same name (e.g. ``tk_spawn/nodes.html``) in one of the spawner's
``form_template_paths``, searched first. The front end built from ``hub_plugin/`` (``tk-spawn.js``
and ``tk-spawn.css`` in ``jupyter_tk/hub/static/``) is inlined into the form, so it needs no
route of its own and follows the hub's ``base_url`` by construction.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape

from .validation import parse_form

__all__ = ["STATIC_DIR", "FormAssets", "parse_form", "render_template"]

STATIC_DIR = Path(__file__).parent / "static"
FORM_TEMPLATE = "tk_spawn/form.html"
UNAVAILABLE_TEMPLATE = "tk_spawn/unavailable.html"

log = logging.getLogger(__name__)


@lru_cache(maxsize=16)
def _environment(template_paths: tuple[str, ...]) -> Environment:
    # One environment per set of paths: Jinja caches compiled templates inside it.
    loader = ChoiceLoader(
        [FileSystemLoader(list(template_paths)), PackageLoader("jupyter_tk.hub", "templates")]
    )
    env = Environment(
        loader=loader,
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # `tojson` would sort keys; keep the operator's order of presets and images as written.
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}
    return env


def render_template(name: str, namespace: dict, template_paths: Sequence[str] = ()) -> str:
    """Render ``name`` with ``namespace``, operator paths first, then the built-in templates."""
    template = _environment(tuple(template_paths)).get_template(name)
    return template.render(**namespace)


class FormAssets:
    """The built front end, read once and again only when the files change on disk."""

    def __init__(self, static_dir: Path = STATIC_DIR) -> None:
        self.static_dir = static_dir
        self._cache: dict[str, tuple[float, str]] = {}
        self._warned = False

    def _read(self, name: str) -> str:
        path = self.static_dir / name
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            if not self._warned:
                self._warned = True
                log.warning(
                    "%s is missing: the spawn form works without live updates. Build the front "
                    "end with `npm run build:hub` (or reinstall the package) to enable them.",
                    path,
                )
            return ""
        cached = self._cache.get(name)
        if cached is None or cached[0] != mtime:
            text = path.read_text(encoding="utf-8")
            if name.endswith(".js"):
                # Inlined in a <script>: a literal "</script" would end the element early.
                text = text.replace("</script", "<\\/script")
            else:
                text = text.replace("</style", "<\\/style")
            cached = self._cache[name] = (mtime, text)
        return cached[1]

    @property
    def script(self) -> str:
        return self._read("tk-spawn.js")

    @property
    def style(self) -> str:
        return self._read("tk-spawn.css")

"""The spawn form: Jinja2 rendering (autoescaped, overridable templates) and form parsing.

:func:`parse_form` (pure) reads form data — a POSTed form, or the query of a
``/hub/spawn?image=…`` deep link, both dicts of lists of strings — into ``user_options`` of the
contract shape; :mod:`.validation` then checks them like options from any other path.

Templates live in ``jupyter_tk/hub/templates/tk_spawn/``; an operator overrides any of them by
putting a file of the same name (e.g. ``tk_spawn/nodes.html``) in one of the spawner's
``form_template_paths``, searched first. The front end built from ``hub_plugin/`` (``tk-spawn.js``
and ``tk-spawn.css`` in ``jupyter_tk/hub/static/``) is inlined into the form, so it needs no
route of its own and follows the hub's ``base_url`` by construction.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape

from jupyter_tk.hub.policy_document import CUSTOM_PROFILE
from jupyter_tk.hub.validation import InvalidOptions

__all__ = [
    "FORM_FIELDS",
    "STATIC_DIR",
    "FormAssets",
    "parse_form",
    "render_template",
    "submitted_choice",
]

STATIC_DIR = Path(__file__).parent / "static"
FORM_TEMPLATE = "tk_spawn/form.html"
UNAVAILABLE_TEMPLATE = "tk_spawn/unavailable.html"

log = logging.getLogger(__name__)

#: The form's field names (see docs/user-options.md).
FORM_FIELDS = (
    "profile",
    "image",
    "custom_image",
    "node",
    "cpu",
    "memory",
    "gpu_resource",
    "gpu_count",
)
# Longer inputs are never legitimate (an image reference is at most ~1 KiB, names far less).
_MAX_FIELD_LENGTH = 1024


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


def _single(form_data: Mapping[str, Any], name: str) -> str | None:
    values = form_data.get(name)
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list | tuple) or len(values) != 1 or not isinstance(values[0], str):
        raise InvalidOptions(f"The field {name!r} must be sent exactly once.")
    value = values[0].strip()
    if len(value) > _MAX_FIELD_LENGTH:
        raise InvalidOptions(f"The field {name!r} is longer than {_MAX_FIELD_LENGTH} characters.")
    return value


def parse_form(form_data: Mapping[str, Any]) -> dict:
    """Form data (``{"cpu": ["2"], ...}``) -> ``user_options`` of the contract shape.

    Only keys that were sent appear, so a deep link with just ``image`` leaves the rest to
    the defaults. Numbers stay strings here: :func:`validate_user_options` parses them the same
    way for every path. Raises InvalidOptions for a field sent twice or absurdly long.
    """
    if not isinstance(form_data, Mapping):
        raise InvalidOptions("The form data could not be read.")
    fields = {name: _single(form_data, name) for name in FORM_FIELDS}
    options: dict[str, Any] = {}
    resource_fields = ("cpu", "memory", "gpu_resource", "gpu_count")
    if fields["profile"] is not None:
        options["profile"] = fields["profile"]
    elif any(fields[name] is not None for name in resource_fields):
        # A deep link such as ?cpu=4&memory=8Gi asks for a free choice.
        options["profile"] = CUSTOM_PROFILE
    if fields["image"]:
        options["image"] = fields["image"]
    elif fields["custom_image"]:
        options["image"] = fields["custom_image"]
    elif fields["image"] is not None:
        # The "custom image" choice with its text field left empty.
        raise InvalidOptions("Type the custom image to use, or pick one from the list.")
    if fields["node"] is not None:
        options["node"] = fields["node"] or None
    if (options.get("profile") or CUSTOM_PROFILE) == CUSTOM_PROFILE:
        # With a preset the resource fields are ignored (the preset says what is requested).
        if fields["cpu"]:
            options["cpu"] = fields["cpu"]
        if fields["memory"]:
            options["memory"] = fields["memory"]
        resource, count = fields["gpu_resource"], fields["gpu_count"]
        if resource is not None or count is not None:
            if not resource or count in ("", "0"):
                options["gpu"] = None
            else:
                options["gpu"] = {"resource": resource, "count": count or "1"}
    return options


def submitted_choice(form_data: Any) -> dict:
    """What a refused form asked for, read leniently (first values, nothing checked), to
    show the form again as the user left it."""
    if not isinstance(form_data, Mapping):
        return {}

    def first(name: str) -> str:
        values = form_data.get(name)
        if isinstance(values, list | tuple) and values and isinstance(values[0], str):
            # Trimmed as parse_form trims them, so the form shows what was read.
            return values[0][:_MAX_FIELD_LENGTH].strip()
        return ""

    return {
        "profile": first("profile"),
        "image": first("image") or first("custom_image"),
        "node": first("node"),
        "cpu": first("cpu"),
        "memory": first("memory"),
        "gpu": {"resource": first("gpu_resource"), "count": first("gpu_count")},
    }

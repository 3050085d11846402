"""The image catalog: which notebook images users can pick, from a URL, a file or config.

The source speaks the thinkube-control shape (``/api/v1/images/jupyter``): a JSON list, or an
object with an ``images`` list, of items such as::

    {"name": "tk-jupyter-ml-gpu", "image": "registry.example.com/library/tk-jupyter-ml-gpu:latest",
     "display_name": "ML (GPU)", "description": "PyTorch, CUDA", "default": false,
     "metadata": {"gpu_required": true}}

Bad items are skipped with a logged reason, never the whole list. The list is cached for
``ttl_seconds``; when the source fails, the last good list is served with ``stale`` and
``error`` set so the form can say so.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from traitlets import Bool, Float, Int, List, Unicode, default
from traitlets.config import LoggingConfigurable

from jupyter_tk.hub.catalog_source import CatalogLoadError, describe_source, read_catalog_source
from jupyter_tk.hub.image_reference import parse_image_reference

__all__ = ["CatalogError", "CatalogImage", "CatalogState", "ImageCatalog", "parse_catalog"]

# Catalog names are used in form values, policy globs and example folders: keep them plain.
_NAME_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*", re.ASCII)
_NAME_LENGTH_MAX = 128


class CatalogError(Exception):
    """The catalog could not be loaded and ``fail_fast`` forbids going on without it."""


@dataclass(frozen=True)
class CatalogImage:
    """One image users may pick; ``image`` is the full reference the pod will pull."""

    name: str
    image: str
    display_name: str
    description: str = ""
    default: bool = False
    gpu_required: bool = False


@dataclass(frozen=True)
class CatalogState:
    """What :meth:`ImageCatalog.get` returns.

    ``error`` says why the last fetch failed (None when it worked); ``stale`` is true when
    ``images`` come from an earlier successful fetch. ``fetched_at`` is the epoch time of the
    fetch that produced ``images`` (None when there never was one). ``skipped`` lists the reasons
    items of the source were left out.
    """

    images: tuple[CatalogImage, ...]
    error: str | None = None
    fetched_at: float | None = None
    stale: bool = False
    skipped: tuple[str, ...] = field(default=())

    def image(self, name: str) -> CatalogImage | None:
        """The catalog image called ``name``, or None."""
        return next((image for image in self.images if image.name == name), None)

    @property
    def default_image(self) -> CatalogImage | None:
        """The image marked ``default`` (the first one when several are), else the first image."""
        marked = next((image for image in self.images if image.default), None)
        return marked or (self.images[0] if self.images else None)


def parse_catalog(
    data: Any, *, registry_prefix: str = ""
) -> tuple[tuple[CatalogImage, ...], tuple[str, ...]]:
    """Turn decoded catalog JSON into images, plus the reasons items were skipped.

    Raises ValueError only when ``data`` is not a list (or ``{"images": [...]}``) at all.
    """
    if isinstance(data, Mapping) and "images" in data:
        data = data["images"]
    if not isinstance(data, list):
        raise ValueError(
            "the catalog must be a JSON list of images, or an object with an 'images' list"
        )
    images: list[CatalogImage] = []
    skipped: list[str] = []
    names: set[str] = set()
    for index, item in enumerate(data):
        try:
            image = _parse_item(item, registry_prefix)
        except ValueError as e:
            skipped.append(f"item {index}: {e}")
            continue
        if image.name in names:
            skipped.append(f"item {index}: the name {image.name!r} is used by an earlier item")
            continue
        names.add(image.name)
        images.append(image)
    return tuple(images), tuple(skipped)


def _parse_item(item: Any, registry_prefix: str) -> CatalogImage:
    if not isinstance(item, Mapping):
        raise ValueError(f"expected an object, got {type(item).__name__}")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("'name' is missing or not a string")
    if len(name) > _NAME_LENGTH_MAX or not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"name {name[:60]!r} is not a slug (lowercase letters and digits separated by "
            f"'.', '_' or '-', at most {_NAME_LENGTH_MAX} characters)"
        )
    reference = item.get("image")
    if reference is None or reference == "":
        if not registry_prefix:
            raise ValueError(f"{name!r} has no 'image' and no registry_prefix is configured")
        reference = f"{registry_prefix.rstrip('/')}/{name}:latest"
    if not isinstance(reference, str):
        raise ValueError(f"{name!r}: 'image' is not a string")
    try:
        parse_image_reference(reference)
    except ValueError as e:
        raise ValueError(f"{name!r}: {e}") from e

    metadata = item.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    gpu_required = item.get("gpu_required")
    if gpu_required is None:
        gpu_required = metadata.get("gpu_required")
    return CatalogImage(
        name=name,
        image=reference,
        display_name=_optional_text(item, "display_name", name),
        description=_optional_text(item, "description", ""),
        default=_optional_bool(item.get("default"), name, "default"),
        gpu_required=_optional_bool(gpu_required, name, "gpu_required"),
    )


def _optional_text(item: Mapping, key: str, fallback: str) -> str:
    value = item.get(key)
    if value is None or value == "":
        return fallback
    if not isinstance(value, str):
        raise ValueError(f"{item['name']!r}: {key!r} is not a string")
    return value


def _optional_bool(value: Any, name: str, key: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValueError(f"{name!r}: {key!r} must be true or false, got {value!r}")
    return value


class ImageCatalog(LoggingConfigurable):
    """The hub's image catalog; ``await catalog.get()`` is cheap within ``ttl_seconds``."""

    source = Unicode(
        config=True,
        help="""Where the catalog comes from: an http(s) URL or a file path (or file:// URL).

        Defaults to $JUPYTER_TK_CATALOG. When empty, the static `images` list is the catalog.
        Example: http://thinkube-control.thinkube-control.svc/api/v1/images/jupyter
        """,
    )

    @default("source")
    def _default_source(self) -> str:
        return os.environ.get("JUPYTER_TK_CATALOG", "")

    images = List(
        config=True,
        help="""Static catalog used when `source` is empty; items as the source serves them.

        Example: [{"name": "tk-jupyter-scipy", "image": "quay.io/jupyter/scipy-notebook:2024-05-27",
        "display_name": "SciPy", "default": true}]
        """,
    )

    registry_prefix = Unicode(
        config=True,
        help="""Registry and path for items without `image`: they become <prefix>/<name>:latest.

        Example: registry.thinkube.com/library
        """,
    )

    ttl_seconds = Float(
        60.0,
        config=True,
        help="Seconds a fetched catalog is served from cache before the source is asked again. "
        "Example: 60",
    )

    retry_seconds = Float(
        10.0,
        config=True,
        help="Seconds to wait after a failed fetch before asking the source again (the last "
        "good list is served meanwhile). Example: 10",
    )

    timeout_seconds = Float(
        10.0,
        config=True,
        help="Seconds one HTTP fetch of the catalog may take (connect and response). Example: 10",
    )

    fail_fast = Bool(
        False,
        config=True,
        help="""Raise CatalogError from get() when no good catalog was ever loaded.

        When false (the default) the form renders with an empty catalog and the error. A catalog
        that loaded once is always served, stale if need be, whatever this says.
        """,
    )

    auth_token = Unicode(
        config=True,
        help="""Bearer token sent to an http(s) catalog source. Defaults to
        $JUPYTER_TK_CATALOG_TOKEN. Example: an API token of thinkube-control.""",
    )

    @default("auth_token")
    def _default_auth_token(self) -> str:
        return os.environ.get("JUPYTER_TK_CATALOG_TOKEN", "")

    max_response_bytes = Int(
        4 * 1024 * 1024,
        config=True,
        help="Largest catalog accepted from a URL or file, in bytes. Example: 4194304 (4 MiB)",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._good: tuple[tuple[CatalogImage, ...], tuple[str, ...]] | None = None
        self._fetched_at: float | None = None
        self._error: str | None = None
        self._next_fetch_at = 0.0  # monotonic
        self._inflight: asyncio.Future[None] | None = None
        self._logged_skips: frozenset[str] = frozenset()

    async def get(self) -> CatalogState:
        """The catalog now: cached, refreshed after ``ttl_seconds``, last good list on failure.

        Concurrent calls share one fetch. Raises CatalogError only with ``fail_fast`` when no
        catalog ever loaded.
        """
        if time.monotonic() >= self._next_fetch_at:
            if self._inflight is None:
                self._inflight = asyncio.ensure_future(self._refresh())
            inflight = self._inflight
            # shield: one caller giving up (a closed page) must not cancel the others' fetch.
            await asyncio.shield(inflight)
        return self._state()

    def _state(self) -> CatalogState:
        if self._good is None:
            if self.fail_fast:
                raise CatalogError(f"the image catalog is unavailable: {self._error}")
            return CatalogState(images=(), error=self._error)
        images, skipped = self._good
        return CatalogState(
            images=images,
            error=self._error,
            fetched_at=self._fetched_at,
            stale=self._error is not None,
            skipped=skipped,
        )

    async def _refresh(self) -> None:
        try:
            try:
                data = await self._load()
                images, skipped = parse_catalog(data, registry_prefix=self.registry_prefix)
            except (CatalogLoadError, ValueError) as e:
                self._error = f"{self._describe_source()}: {e}"
                self._next_fetch_at = time.monotonic() + self.retry_seconds
                self.log.warning("Image catalog failed, %s", self._describe_fetch_failure())
                return
            self._good = (images, skipped)
            self._fetched_at = time.time()
            self._error = None
            self._next_fetch_at = time.monotonic() + self.ttl_seconds
            self._log_skipped(skipped)
        finally:
            self._inflight = None

    def _describe_fetch_failure(self) -> str:
        kept = "keeping the last good list" if self._good else "no good list yet"
        return f"{kept}: {self._error}"

    def _describe_source(self) -> str:
        # The error reaches the form: never show credentials a URL may carry.
        return describe_source(self.source.strip()) or "c.ImageCatalog.images"

    def _log_skipped(self, skipped: Sequence[str]) -> None:
        # A bad item shows up on every fetch; say so once, not every ttl_seconds.
        new = frozenset(skipped)
        for reason in sorted(new - self._logged_skips):
            self.log.warning("Image catalog item skipped, %s", reason)
        self._logged_skips = new

    async def _load(self) -> Any:
        source = self.source.strip()
        if not source:
            return list(self.images)
        raw = await read_catalog_source(
            source,
            timeout_seconds=self.timeout_seconds,
            max_bytes=self.max_response_bytes,
            auth_token=self.auth_token.strip(),
        )
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CatalogLoadError(f"not valid JSON: {e}") from e

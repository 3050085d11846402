"""Reading a catalog source's raw bytes: an http(s) URL, a ``file://`` URL or a path.

Bounded in size and time, and never blocking the event loop: files are read in a thread,
URLs with tornado's AsyncHTTPClient. Redirects are followed by hand so a bearer token is never
sent to a host other than the one configured.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote, urljoin, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

__all__ = ["CatalogLoadError", "describe_source", "read_catalog_source"]

# Enough for a trailing-slash or http->https hop or two; more is a loop or a misconfiguration.
MAX_REDIRECTS = 5
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# tornado reports "no response" (timeout, refused, closed) as status 599.
_NO_RESPONSE = 599


class CatalogLoadError(Exception):
    """A catalog source could not be read; the message says why, for the form and the log."""


async def read_catalog_source(
    source: str, *, timeout_seconds: float, max_bytes: int, auth_token: str = ""
) -> bytes:
    """The raw bytes of ``source`` (at most ``max_bytes``); raises CatalogLoadError."""
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return await _fetch_url(source, timeout_seconds, max_bytes, auth_token)
    if scheme == "file":
        return await asyncio.to_thread(_read_file, unquote(parts.path), max_bytes)
    if scheme and len(scheme) > 1:  # a one-letter "scheme" is a Windows drive
        raise CatalogLoadError(f"unsupported URL scheme {scheme!r} (use http, https or a path)")
    return await asyncio.to_thread(_read_file, source, max_bytes)


def describe_source(source: str) -> str:
    """``source`` as it may be shown to users: no user:password, query or fragment of a URL."""
    parts = urlsplit(source)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return source
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is not a number: the fetch reports it
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _read_file(path: str, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise CatalogLoadError(f"cannot read the file: {e.strerror or e}") from e
    if len(raw) > max_bytes:
        raise CatalogLoadError(f"larger than {max_bytes} bytes")
    return raw


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.hostname, parts.port


async def _fetch_url(url: str, timeout_seconds: float, max_bytes: int, auth_token: str) -> bytes:
    origin = _origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        headers = {"Accept": "application/json"}
        if auth_token:
            headers["Authorization"] = f"Bearer {auth_token}"
        try:
            return await _fetch_once(url, headers, timeout_seconds, max_bytes)
        except HTTPClientError as e:
            location = e.response.headers.get("Location") if e.response else None
            if e.code not in _REDIRECT_CODES or not location:
                what = f"HTTP {e.code}" if e.code != _NO_RESPONSE else "no response"
                raise CatalogLoadError(f"{what} ({e.message})") from e
            url = urljoin(url, location)
            if urlsplit(url).scheme.lower() not in ("http", "https"):
                raise CatalogLoadError(f"redirected to a non-HTTP URL {url[:100]!r}") from e
            if auth_token and _origin(url) != origin:
                raise CatalogLoadError(
                    f"redirected to another host ({url[:100]}); the token is not sent there"
                ) from e
        except OSError as e:
            raise CatalogLoadError(f"cannot connect: {e.strerror or e}") from e
    raise CatalogLoadError(f"more than {MAX_REDIRECTS} redirects")


async def _fetch_once(
    url: str, headers: dict[str, str], timeout_seconds: float, max_bytes: int
) -> bytes:
    chunks: list[bytes] = []
    received = 0

    def collect(chunk: bytes) -> None:
        # Raising here would only make tornado log an "Uncaught exception" and report a closed
        # connection, so an oversized body is dropped instead; request_timeout bounds the rest.
        nonlocal received
        received += len(chunk)
        if received <= max_bytes:
            chunks.append(chunk)

    request = HTTPRequest(
        url,
        headers=headers,
        connect_timeout=timeout_seconds,
        request_timeout=timeout_seconds,
        streaming_callback=collect,
        follow_redirects=False,
    )
    await AsyncHTTPClient().fetch(request)
    if received > max_bytes:
        raise CatalogLoadError(f"response larger than {max_bytes} bytes")
    return b"".join(chunks)

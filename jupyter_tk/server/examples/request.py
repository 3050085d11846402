"""Checks copy and reset requests before anything is touched: shapes first, then known ids."""

from __future__ import annotations

import json

# Request limits: far above what the panel sends, low enough to refuse abuse cheaply.
MAX_BODY_BYTES = 1 << 20
MAX_IDS = 10_000
MAX_ID_CHARS = 4096


class ExamplesRequestError(ValueError):
    """The request is wrong (shape or unknown ids): HTTP 400, nothing was written."""


class ExamplesUnavailableError(RuntimeError):
    """Copying cannot happen now (no source, unsafe destination, lock busy): HTTP 409."""


def read_request(body: bytes, *, allow_all: bool) -> list[str] | None:
    """Parse a copy/reset body into ids (None means ``{"all": true}``); raise on any bad shape."""
    if len(body) > MAX_BODY_BYTES:
        raise ExamplesRequestError(f"the request body is over {MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ExamplesRequestError(f"the request body is not valid JSON: {error}") from None
    wanted = '{"ids": [...]} or {"all": true}' if allow_all else '{"ids": [...]}'
    if not isinstance(document, dict):
        raise ExamplesRequestError(f"the request body must be {wanted}")
    unknown = sorted(set(document) - ({"ids", "all"} if allow_all else {"ids"}))
    if unknown:
        raise ExamplesRequestError(f"unknown field {json.dumps(unknown[0])}; send {wanted}")
    if "ids" in document and "all" in document:
        raise ExamplesRequestError('send either "ids" or "all", not both')
    if "all" in document:
        if document["all"] is not True:
            raise ExamplesRequestError('"all" must be true')
        return None
    if "ids" not in document:
        raise ExamplesRequestError(f"the request body must be {wanted}")
    return check_ids(document["ids"])


def check_ids(ids) -> list[str]:
    if not isinstance(ids, list) or not ids:
        raise ExamplesRequestError('"ids" must be a non-empty list of example ids')
    if len(ids) > MAX_IDS:
        raise ExamplesRequestError(f'"ids" has {len(ids)} entries, more than {MAX_IDS}')
    for item_id in ids:
        if not isinstance(item_id, str) or not item_id or len(item_id) > MAX_ID_CHARS:
            raise ExamplesRequestError(f"not an example id: {json.dumps(item_id)[:200]}")
        if "\x00" in item_id:
            raise ExamplesRequestError("an example id contains a NUL character")
    if len(set(ids)) != len(ids):
        raise ExamplesRequestError('"ids" lists the same id twice')
    return ids


def check_known(ids: list[str], known: dict) -> None:
    unknown = [item_id for item_id in ids if item_id not in known]
    if unknown:
        shown = ", ".join(json.dumps(item_id)[:200] for item_id in unknown[:3])
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise ExamplesRequestError(f"unknown example id(s): {shown}{more}; nothing was copied")

"""Container image references, parsed with the docker/distribution grammar.

The grammar (github.com/distribution/reference, ``regexp.go``)::

    reference       := name [ ":" tag ] [ "@" digest ]
    name            := [domain "/"] path-component ["/" path-component]*
    domain          := host [":" port-number]
    host            := domain-name | "[" IPv6 "]"
    domain-name     := domain-component ["." domain-component]*
    domain-component:= /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    path-component  := alpha-numeric [separator alpha-numeric]*
    alpha-numeric   := /[a-z0-9]+/
    separator       := /[_.]|__|[-]+/
    tag             := /[\\w][\\w.-]{0,127}/
    digest          := algorithm ":" hex      (hex at least 32 characters)

plus docker's normalisation: the first component is a registry only when it contains ``.`` or
``:``, is ``localhost``, or has uppercase letters; otherwise the registry is ``docker.io``, and a
single-component Docker Hub name gets ``library/`` in front. ``index.docker.io`` is ``docker.io``.

Everything is ASCII: Python's ``\\w`` would accept any unicode letter, so every pattern uses
``re.ASCII`` and the whole input is checked for non-ASCII characters first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DOCKER_HUB", "ImageReference", "normalize_registry", "parse_image_reference"]

DOCKER_HUB = "docker.io"
# docker's own limit on "registry/repository" (NameTotalLengthMax).
NAME_TOTAL_LENGTH_MAX = 255
# A cheap bound checked before any pattern runs: name (255) + tag (129) + a long digest fit easily.
REFERENCE_LENGTH_MAX = 1024

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_REGISTRY_RE = re.compile(rf"(?P<host>{_HOST})(?::(?P<port>[0-9]+))?", re.ASCII)
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*", re.ASCII)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(
    r"(?P<algorithm>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*)"
    r":(?P<hex>[0-9a-fA-F]{32,})",
    re.ASCII,
)
# A bare 64-hex name looks like an image ID, which docker refuses as a repository name.
_IMAGE_ID_RE = re.compile(r"[a-f0-9]{64}", re.ASCII)
# Registered algorithms have a fixed length and lowercase hex (opencontainers/go-digest).
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_PORT_MAX = 65535
_SHOWN_LENGTH_MAX = 80


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference; ``str(ref)`` is its fully qualified form.

    ``registry`` is a host with an optional port (``docker.io``, ``localhost:5000``),
    ``repository`` the path inside it (``library/ubuntu``), ``tag`` and ``digest`` are ``None``
    when absent (no ``latest`` is implied here: the container runtime does that).
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def normalize_registry(registry: str) -> str:
    """Return the form of a registry host used for comparisons (``Docker.IO`` -> ``docker.io``).

    Raises ValueError when ``registry`` is not a host with an optional port.
    """
    if not isinstance(registry, str):
        raise ValueError(f"registry must be a string, not {type(registry).__name__}")
    _check_text(registry, "registry")
    _check_registry(registry)
    lowered = registry.lower()
    return DOCKER_HUB if lowered == "index.docker.io" else lowered


def parse_image_reference(reference: str) -> ImageReference:
    """Parse ``reference`` (``nvcr.io/nvidia/pytorch:24.05-py3``, ``ubuntu``, ``x@sha256:…``).

    Raises ValueError with a message that says what is wrong; nothing else.
    """
    if not isinstance(reference, str):
        raise ValueError(f"image reference must be a string, not {type(reference).__name__}")
    if not reference:
        raise ValueError("image reference is empty")
    _check_text(reference, "image reference")
    if len(reference) > REFERENCE_LENGTH_MAX:
        raise ValueError(f"image reference is longer than {REFERENCE_LENGTH_MAX} characters")

    remainder, at, digest = reference.partition("@")
    if at:
        _check_digest(digest)
    else:
        digest = None

    # The tag is after the last ":" only when no "/" follows it ("host:5000/x" has no tag).
    name, tag = remainder, None
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise ValueError(
                f"invalid tag {_show(tag)}: a tag is 1 to 128 letters, digits, '_', '.' or '-' "
                "and does not start with '.' or '-'"
            )
    if not name:
        raise ValueError("image reference has no repository name")
    if _IMAGE_ID_RE.fullmatch(name):
        raise ValueError(
            f"invalid repository name {_show(name)}: "
            "a 64-character hexadecimal string is an image ID"
        )

    registry, repository = _split_registry(name)
    if registry is not None:
        _check_registry(registry)
        if registry.lower() == "index.docker.io":
            registry = DOCKER_HUB
    else:
        registry = DOCKER_HUB
    _check_repository(repository)
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"

    full_name = f"{registry}/{repository}"
    if len(full_name) > NAME_TOTAL_LENGTH_MAX:
        raise ValueError(
            f"image name {_show(full_name)} is longer than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    return ImageReference(registry=registry, repository=repository, tag=tag, digest=digest)


def _show(text: str) -> str:
    """Quote ``text`` for an error message, shortened: references are echoed back to users."""
    return repr(text if len(text) <= _SHOWN_LENGTH_MAX else text[:_SHOWN_LENGTH_MAX] + "…")


def _check_text(text: str, what: str) -> None:
    if not text.isascii():
        raise ValueError(f"{what} {_show(text)} contains non-ASCII characters")
    if any(char.isspace() or not char.isprintable() for char in text):
        raise ValueError(f"{what} {_show(text)} contains whitespace or control characters")


def _split_registry(name: str) -> tuple[str | None, str]:
    first, slash, rest = name.partition("/")
    if not slash:
        return None, name
    looks_like_registry = "." in first or ":" in first or first == "localhost"
    if looks_like_registry or first != first.lower():
        return first, rest
    return None, name


def _check_registry(registry: str) -> None:
    match = _REGISTRY_RE.fullmatch(registry)
    if match is None:
        raise ValueError(
            f"invalid registry {_show(registry)}: expected a host name (letters, digits, "
            "'-' and '.'), or an [IPv6] address, with an optional :port"
        )
    port = match.group("port")
    if port is not None and not 0 < int(port) <= _PORT_MAX:
        raise ValueError(f"invalid registry {_show(registry)}: port {port} is out of range")


def _check_repository(repository: str) -> None:
    if repository.startswith("/") or repository.endswith("/") or "//" in repository:
        raise ValueError(f"invalid repository {_show(repository)}: empty path component")
    if repository != repository.lower():
        raise ValueError(
            f"invalid repository {_show(repository)}: the repository must be lowercase"
        )
    for component in repository.split("/"):
        if not _PATH_COMPONENT_RE.fullmatch(component):
            raise ValueError(
                f"invalid repository {_show(repository)}: path component {_show(component)} "
                "must be lowercase letters and digits separated by '.', '_', '__' or dashes"
            )


def _check_digest(digest: str) -> None:
    match = _DIGEST_RE.fullmatch(digest)
    if match is None:
        raise ValueError(
            f"invalid digest {_show(digest)}: expected 'algorithm:hex' with at least 32 hex "
            "digits, e.g. sha256:<64 hex digits>"
        )
    algorithm, hex_digits = match.group("algorithm"), match.group("hex")
    expected = _DIGEST_HEX_LENGTH.get(algorithm)
    if expected is not None and (len(hex_digits) != expected or hex_digits != hex_digits.lower()):
        raise ValueError(
            f"invalid digest {_show(digest)}: "
            f"{algorithm} needs exactly {expected} lowercase hex digits"
        )

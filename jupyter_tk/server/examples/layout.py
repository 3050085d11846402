"""Where examples come from and go to: image name, categories, folders, and ITEM paths."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from dataclasses import dataclass

from jupyter_tk.server.examples.fs import lstat_at, open_root
from jupyter_tk.server.examples.request import ExamplesUnavailableError
from jupyter_tk.server.examples.scan import open_dest_folder

# Image and category names become folder names: one plain path component each.
FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def repository_name(image: str) -> str:
    """``registry:5000/library/tk-jupyter-ml-gpu:latest@sha256:…`` -> ``tk-jupyter-ml-gpu``."""
    without_digest = image.strip().split("@", 1)[0]
    last_component = without_digest.rsplit("/", 1)[-1]  # a registry port sits before a "/"
    return last_component.split(":", 1)[0]


def inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class Layout:
    image: str
    source: str  # resolved source folder
    destination: str  # resolved destination folder; the image folder goes inside
    path_base: str  # how ITEM.path starts: relative to the server root, or absolute

    @property
    def image_path(self) -> str:
        return os.path.join(self.destination, self.image)

    def item_path(self, parts: tuple[str, ...]) -> str:
        return "/".join((self.path_base, *parts)) if self.path_base else "/".join(parts)

    @contextlib.contextmanager
    def open_source(self):
        fd = open_root(self.source)
        try:
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def open_image(self):
        """(image folder fd or None, problem), creating nothing."""
        try:
            root_fd = open_root(self.destination)
        except FileNotFoundError:
            yield None, None
            return
        try:
            image_fd, problem = open_dest_folder(root_fd, self.image, self.image)
            try:
                yield image_fd, problem
            finally:
                if image_fd is not None:
                    os.close(image_fd)
        finally:
            os.close(root_fd)


def resolve_layout(*, image: str, source_dir: str, destination_dir: str, root_dir: str) -> Layout:
    """Check the configuration and resolve its folders; raise ExamplesUnavailableError."""
    if not FOLDER_NAME.fullmatch(image):
        raise ExamplesUnavailableError(
            f"the image name {json.dumps(image)} cannot be a folder name "
            "(set ExamplesSync.image_name)"
        )
    # The configured folders themselves are trusted (operator settings) and resolved here;
    # everything below <destination>/<image> is walked without following any symlink.
    source = os.path.realpath(os.path.expanduser(source_dir))
    destination = os.path.realpath(os.path.expanduser(destination_dir))
    if not os.path.isdir(source):
        raise ExamplesUnavailableError(f"the examples folder {source_dir} does not exist")
    if inside(destination, source) or inside(source, destination):
        raise ExamplesUnavailableError(
            f"the examples folder {source} and the destination {destination} overlap"
        )
    return Layout(image, source, destination, _path_base(image, destination_dir, root_dir))


def _path_base(image: str, destination_dir: str, root_dir: str) -> str:
    """ITEM.path prefix: relative to the server root when the copies are inside it."""
    plain = os.path.join(os.path.abspath(os.path.expanduser(destination_dir)), image)
    root = os.path.expanduser(root_dir)
    for folder, top in (
        (plain, os.path.abspath(root)),
        (os.path.realpath(plain), os.path.realpath(root)),
    ):
        if inside(folder, top):
            relative = os.path.relpath(folder, top)
            return "" if relative == "." else relative.replace(os.sep, "/")
    return plain


def choose_categories(image: str, configured: dict[str, list[str]], source_fd: int) -> list[str]:
    """The configured folders for this image, else ``common`` + its longest matching suffix."""
    chosen = configured.get(image, configured.get("*"))
    if chosen is not None:
        bad = [name for name in chosen if not FOLDER_NAME.fullmatch(name)]
        if bad:
            raise ExamplesUnavailableError(
                f"category {json.dumps(bad[0])} is not a folder name (ExamplesSync.categories)"
            )
        return list(dict.fromkeys(chosen))
    words = image.split("-")
    for start in range(len(words)):
        candidate = "-".join(words[start:])
        st = lstat_at(source_fd, candidate)
        if candidate != "common" and st is not None and stat.S_ISDIR(st.st_mode):
            return ["common", candidate]
    return ["common"]

"""Filesystem primitives for examples copying that cannot be led astray by symlinks.

Every path below a trusted root is walked one component at a time with directory file
descriptors and ``O_NOFOLLOW``, so a symbolic link anywhere below the root (planted in the
examples repository or in the user's folder) is refused instead of followed, and nothing can
swap a component between a check and its use. Files are written to a hidden temporary name in
their final folder, made durable, then moved into place; a crash leaves at most a temporary file
that :func:`remove_stale_temps` deletes on the next run. POSIX only (Linux and macOS).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

# Temporary files are hidden (leading dot: JupyterLab does not list them) and have a shape no
# example or user file has, so cleaning them up can never remove anything else.
TEMP_PREFIX = ".jupyter-tk-tmp-"
TEMP_NAME = re.compile(r"\.jupyter-tk-tmp-[0-9a-f]{16}")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted in the source must not hang; it is rejected after fstat.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY_CHUNK = 1 << 20


class UnsafePathError(Exception):
    """A path component is a symbolic link or not what it must be; nothing was followed."""


class ChangedError(Exception):
    """A destination file changed while it was being replaced; it was left alone."""


class Fingerprint(NamedTuple):
    """What a file looks like without reading it: equal fingerprints mean "not re-hashed"."""

    size: int
    mtime_ns: int
    inode: int


def fingerprint(st: os.stat_result) -> Fingerprint:
    return Fingerprint(st.st_size, st.st_mtime_ns, st.st_ino)


def describe_kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    return "a special file"


def open_root(path: str) -> int:
    """Open a configured root folder. Its own components are trusted (operator configuration)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_subdir(parent_fd: int, name: str, *, create: bool = False, shown_as: str = "") -> int:
    """Open ``name`` inside ``parent_fd`` as a real folder, refusing symlinks and non-folders.

    Raises FileNotFoundError when it is missing and ``create`` is false, UnsafePathError when
    it exists but is not a real folder.
    """
    shown = shown_as or name
    _one_component(name, shown)
    for _attempt in range(2):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o777, dir_fd=parent_fd)
        except OSError as error:
            if error.errno in (errno.ENOTDIR, errno.ELOOP):
                mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
                raise UnsafePathError(
                    f"{shown} is {describe_kind(mode)}, not a folder; refusing to use it"
                ) from None
            raise
    # A concurrent remove right after our mkdir: report it rather than loop.
    raise FileNotFoundError(errno.ENOENT, "folder vanished while being created", shown)


def _one_component(name: str, shown: str) -> None:
    """Defence in depth: callers pass listed names, but never let one climb or descend."""
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise UnsafePathError(f"{shown!r} is not a single file or folder name")


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_regular(dir_fd: int, name: str, shown_as: str) -> tuple[int, os.stat_result]:
    """Open a regular file for reading without following a symlink; return (fd, fstat)."""
    _one_component(name, shown_as)
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafePathError(f"{shown_as} is a symbolic link; not followed") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafePathError(f"{shown_as} is {describe_kind(st.st_mode)}, not a file")
    return fd, st


_BUFFERS = threading.local()


def thread_buffer() -> tuple[bytearray, memoryview]:
    """One reusable copy buffer per thread (allocating 1 MiB per file costs real time)."""
    if not hasattr(_BUFFERS, "view"):
        _BUFFERS.buffer = bytearray(_COPY_CHUNK)
        _BUFFERS.view = memoryview(_BUFFERS.buffer)
    return _BUFFERS.buffer, _BUFFERS.view


class TempCopy(NamedTuple):
    """A finished temporary copy waiting to be moved into place."""

    temp_name: str
    digest: str
    fingerprint: Fingerprint


def new_temp_name() -> str:
    return TEMP_PREFIX + secrets.token_hex(8)


def copy_to_temp(
    src_dir_fd: int,
    src_name: str,
    dst_dir_fd: int,
    *,
    shown_as: str,
    max_bytes: int,
    fsync: bool,
    on_chunk: Callable[[memoryview], None] | None = None,
) -> TempCopy:
    """Copy a source file into a new hidden temp file of the destination folder, hashing it.

    ``on_chunk`` sees every chunk copied (the buffer is reused: copy what must be kept).

    The copy belongs to the running user and is readable and writable by them whatever the
    source's mode (the examples clone is often read-only); only the executable bit is carried
    over. On any error the temp file is removed before the error propagates.
    """
    src_fd, src_st = open_regular(src_dir_fd, src_name, shown_as)
    temp_name = new_temp_name()
    dst_fd = -1
    try:
        if src_st.st_size > max_bytes:
            raise ValueError(f"{shown_as} is {format_bytes(src_st.st_size)}, over the limit")
        # 0o666 lets the umask decide group/other bits, as for any file the user creates.
        dst_fd = os.open(temp_name, _CREATE_FLAGS, 0o666, dir_fd=dst_dir_fd)
        created = stat.S_IMODE(os.fstat(dst_fd).st_mode)
        mode = created | stat.S_IRUSR | stat.S_IWUSR
        if src_st.st_mode & stat.S_IXUSR:
            mode |= (mode & 0o444) >> 2
        if mode != created:
            os.fchmod(dst_fd, mode)
        digest = hashlib.sha256()
        buffer, view = thread_buffer()
        written = 0
        # Stops at the size seen at open (saves the end-of-file read); a file that grew since
        # has a new fingerprint, so the next scan finds it changed and copies it again.
        while written < src_st.st_size and (count := os.readv(src_fd, [buffer])):
            chunk = view[:count]
            digest.update(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
            while chunk:
                chunk = chunk[os.write(dst_fd, chunk) :]
            written += count
            if written > max_bytes:
                raise ValueError(f"{shown_as} grew over the limit while being copied")
        if fsync:
            os.fsync(dst_fd)
        result = TempCopy(temp_name, digest.hexdigest(), fingerprint(os.fstat(dst_fd)))
    except BaseException:
        if dst_fd >= 0:
            os.close(dst_fd)
            dst_fd = -1
            with contextlib.suppress(OSError):
                os.unlink(temp_name, dir_fd=dst_dir_fd)
        raise
    finally:
        os.close(src_fd)
        if dst_fd >= 0:
            os.close(dst_fd)
    return result


def place_new(dir_fd: int, temp_name: str, name: str) -> None:
    """Move a temp file to ``name`` only if nothing is there (a user file is never clobbered)."""
    try:
        os.link(temp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        raise ChangedError(f"{name} appeared while it was being copied; left alone") from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # Filesystems without hard links: check then rename (tiny race, same as cp).
        if lstat_at(dir_fd, name) is not None:
            raise ChangedError(f"{name} appeared while it was being copied; left alone") from None
        os.replace(temp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return
    os.unlink(temp_name, dir_fd=dir_fd)


def same_file_still(dir_fd: int, name: str, expected: Fingerprint) -> None:
    """Raise ChangedError unless ``name`` still is the regular file we classified."""
    st = lstat_at(dir_fd, name)
    if st is None or not stat.S_ISREG(st.st_mode) or fingerprint(st) != expected:
        raise ChangedError(f"{name} changed while it was being updated; left alone")


def place_replacing(dir_fd: int, temp_name: str, name: str, expected: Fingerprint) -> None:
    """Replace ``name`` with a temp file if it still is the regular file we classified."""
    same_file_still(dir_fd, name, expected)
    os.replace(temp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def move_aside(dir_fd: int, name: str, when: float) -> str:
    """Give ``name`` a unique ``<stem>.mine-YYYYmmdd-HHMMSS[-N]<ext>`` name; return the new name.

    Uses link+unlink so an existing backup is never overwritten, even for two resets in one
    second; the inode moves with the name, so a program still writing to it loses nothing.
    """
    stem, ext = os.path.splitext(name)
    if not stem:  # ".bashrc": splitext puts everything in the stem already
        stem, ext = name, ""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    for counter in range(1, 1000):
        suffix = "" if counter == 1 else f"-{counter}"
        backup = f"{stem}.mine-{stamp}{suffix}{ext}"
        try:
            os.link(name, backup, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if lstat_at(dir_fd, backup) is not None:
                continue
            os.rename(name, backup, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return backup
        os.unlink(name, dir_fd=dir_fd)
        return backup
    raise FileExistsError(errno.EEXIST, "no free backup name", name)


def remove_stale_temps(dir_fd: int) -> int:
    """Delete temp files a crashed run left in this folder; return how many."""
    removed = 0
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=dir_fd)
                    removed += 1
    return removed


def write_atomically(dir_fd: int, name: str, data: bytes) -> None:
    """Write small data (the manifest) with temp file, fsync, rename, fsync of the folder."""
    temp_name = new_temp_name()
    fd = os.open(temp_name, _CREATE_FLAGS, 0o666, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp_name, dir_fd=dir_fd)
        raise
    os.close(fd)
    try:
        os.replace(temp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


def _load_syncfs():
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    return function


_SYNCFS = _load_syncfs()


def can_sync_filesystem() -> bool:
    """Whether one ``syncfs`` can make a whole batch durable instead of one fsync per file."""
    return _SYNCFS is not None


def sync_filesystem(fd: int) -> None:
    """Flush every dirty page of the filesystem holding ``fd`` (Linux ``syncfs``)."""
    if _SYNCFS is None:
        raise OSError(errno.ENOSYS, "syncfs is not available")
    if _SYNCFS(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class FolderLock:
    """An exclusive ``flock`` on a file in a folder: excludes other threads and processes.

    The lock file is opened through the folder's descriptor without following symlinks and is
    never truncated or removed, so a planted link cannot make the lock touch another file.
    """

    def __init__(self, dir_fd: int, name: str, *, timeout: float, poll_interval: float = 0.05):
        self._dir_fd = dir_fd
        self._name = name
        self._timeout = timeout
        self._poll_interval = poll_interval
        self._fd = -1

    def __enter__(self) -> FolderLock:
        try:
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(self._name, flags, 0o600, dir_fd=self._dir_fd)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise UnsafePathError(f"lock file {self._name} is a symbolic link") from None
            raise
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise TimeoutError(
                        f"another examples sync held the lock for over {self._timeout:g} s"
                    ) from None
                time.sleep(self._poll_interval)
                continue
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return self

    def __exit__(self, *exc_info) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)  # closing the descriptor releases the flock


def format_bytes(count: float) -> str:
    """``1536`` -> ``"1.5 KiB"``: sizes in messages people read."""
    value = float(count)
    units = ("bytes", "KiB", "MiB", "GiB", "TiB")
    power = 0
    while abs(value) >= 1024 and power < len(units) - 1:
        value /= 1024
        power += 1
    return f"{value:.0f} bytes" if power == 0 else f"{value:.1f} {units[power]}"

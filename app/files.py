"""Files: paths under the data root, reading inputs, atomic writes, flushing to disk, folder walks."""
from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator

from .errors import DecodeError, InvalidRequest, NotFound, PathOutsideRoot, WriteError

MAX_PATH_BYTES = 4096
TEMP_PREFIX = ".imgsrv-tmp-"


def resolve(root: str, path: str, field: str) -> str:
    """The real absolute path of ``path`` (relative to ``root``, or absolute inside it).

    Symlinks are followed before the check, so one that leads out of the root is refused
    (403) like ``..`` or an absolute path elsewhere. Junk (empty, NUL bytes, backslashes,
    over-long) is a 422. ``root`` must itself be a real path.
    """
    if not isinstance(path, str) or not path.strip():
        raise InvalidRequest("the path is empty", field)
    if "\x00" in path:
        raise InvalidRequest("the path contains a NUL byte", field)
    if "\\" in path:
        raise InvalidRequest("the path contains a backslash; use / to separate folders", field)
    if len(os.fsencode(path)) > MAX_PATH_BYTES:
        raise InvalidRequest(f"the path is longer than {MAX_PATH_BYTES} bytes", field)
    try:
        real = os.path.realpath(os.path.join(root, path))
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"the path cannot be resolved: {exc}", field) from None
    if os.path.commonpath([root, real]) != root:
        raise PathOutsideRoot(f"the path {path!r} leads outside the data root", field)
    return real


def read_input(path: str) -> bytes:
    """The whole file; refuses what is not a regular file before opening it (no FIFO hangs)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound("the input file does not exist") from None
    except OSError as exc:
        raise NotFound(f"the input file cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise NotFound("the input is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise DecodeError("the input is not a regular file")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise NotFound(f"the input file cannot be read: {exc.strerror}") from None


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` at ``path`` so that a reader sees the old file or the whole new one.

    The bytes go to a temporary file in the same folder, are flushed to disk, and the file
    is renamed over ``path``. On any failure the temporary file is removed and whatever was
    at ``path`` before stays as it was. Missing folders are created.
    """
    write_all([(path, data)])


def write_all(files: list[tuple[str, bytes]], sync: bool = True) -> None:
    """Write several files all or nothing (the tiles of one image).

    Every file is first written whole to a temporary file beside its destination (and
    flushed to disk with ``sync``); only when all succeeded are they renamed into place. If
    any write fails, every temporary file is removed and no destination is touched.

    Without ``sync`` the rename still makes each file appear whole to every reader and
    survives the death of any process; only a crash of the machine itself could lose it.
    Jobs write that way and make a whole batch durable at once (``FileSystemSync``)
    before they record it.
    """
    staged: list[tuple[str, str]] = []
    try:
        for path, data in files:
            staged.append((_stage(path, data, sync), path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException as exc:
        for tmp, _path in staged:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise WriteError(f"the output could not be written: {_reason(exc)}") from None
        raise


def _reason(exc: OSError) -> str:
    return "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))


def _stage(path: str, data: bytes, sync: bool = True) -> str:
    """Write ``data`` to a temporary file in ``path``'s folder (flushed to disk with ``sync``); its name."""
    folder = os.path.dirname(path) or "."
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"the output folder cannot be made: {_reason(exc)}") from None
    if os.path.isdir(path):
        raise WriteError("the output path is a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    except OSError as exc:
        raise WriteError(f"cannot write in the output folder: {_reason(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if sync:
                os.fdatasync(f.fileno())  # the data is on disk before the rename makes it visible
        os.chmod(tmp, 0o644 & ~_umask())
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return tmp


_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_syncfs = getattr(_libc, "syncfs", None)


class FileSystemSync:
    """Flushes to disk everything written to the file systems of some folders: file data, and
    the renames that put files in place. One ``syncfs`` per file system (Linux; ``sync``
    elsewhere) costs about what one ``fdatasync`` does, so a batch of outputs becomes durable
    for the price of one file.

    It keeps one descriptor per file system for its whole life: Linux (5.8 and later) reports
    a write-back error to ``syncfs`` only if it happened after that descriptor was opened, so
    ``watch`` the output folder before the first write. Older kernels flush but report no
    write-back errors to ``syncfs`` at all. Close it when done.
    """

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}  # st_dev -> an open folder on that file system

    def watch(self, folder: str) -> None:
        """Open the file system of ``folder``, or of its nearest existing parent, now."""
        while folder and not os.path.isdir(folder):
            parent = os.path.dirname(folder)
            if parent == folder:
                return
            folder = parent
        if folder:
            self._fd(folder)

    def sync(self, folders: Iterable[str]) -> None:
        """Flush the file systems holding ``folders``; WriteError when the kernel reports a
        write-back error. A folder gone since holds nothing of ours: it is passed over."""
        done: set[int] = set()
        for folder in folders:
            fd = self._fd(folder)
            if fd is None or fd in done:
                continue
            done.add(fd)
            if fd < 0 or _syncfs is None:
                os.sync()
            elif _syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise WriteError(f"flushing the outputs in {folder} to disk failed: {os.strerror(err)}")

    def _fd(self, folder: str) -> int | None:
        """The descriptor of ``folder``'s file system, None when it does not exist, -1 when it
        cannot be opened (then ``sync`` flushes every file system instead)."""
        try:
            dev = os.stat(folder).st_dev
        except FileNotFoundError:
            return None
        except OSError:
            return -1
        if dev not in self._fds:
            try:
                self._fds[dev] = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                return -1
        return self._fds[dev]

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def clean_temp_files(folders: list[str], recursive: bool = True) -> int:
    """Remove temporary files left by writers that died mid-write; returns how many."""
    removed = 0
    for folder in folders:
        for dirpath, dirs, files in os.walk(folder):
            for name in files:
                if name.startswith(TEMP_PREFIX):
                    try:
                        os.unlink(os.path.join(dirpath, name))
                        removed += 1
                    except OSError:
                        pass
            if not recursive:
                dirs.clear()
    return removed


def walk_files(folder: str, pattern: str = "*", recursive: bool = False) -> Iterator[str]:
    """Files under ``folder`` matching ``pattern`` (relative paths), lazily, in a stable order."""
    import fnmatch

    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(folder, rel)) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            name = os.path.join(rel, entry.name) if rel else entry.name
            if entry.name.startswith(".") or entry.name.startswith(TEMP_PREFIX):
                continue
            if entry.is_dir(follow_symlinks=False):
                if recursive:
                    subdirs.append(name)
            elif fnmatch.fnmatchcase(entry.name, pattern) and entry.is_file():
                yield name
        stack.extend(reversed(subdirs))

"""Files: paths under the data root, reading inputs, atomic writes, flushing to disk, folder walks."""
from __future__ import annotations

import ctypes
import errno
import os
import secrets
import stat
import sys
from collections.abc import Iterable, Iterator

from .errors import DecodeError, InvalidRequest, NotFound, OutputExists, PathOutsideRoot, TooLarge, WriteError
from .tasks import Overwrite, WriteRule

MAX_PATH_BYTES = 4096
TEMP_PREFIX = ".imgsrv-tmp-"


def resolve(root: str, path: str, field: str, within: str | None = None, sealed: str | None = None) -> str:
    """The real absolute path of ``path`` (relative to ``root``, or absolute inside it).

    Symlinks are followed before the check, so one that leads out of ``within`` (default:
    ``root``) is refused (403) like ``..`` or an absolute path elsewhere, and so is anything
    inside ``sealed`` (imgsrv's state folder). Junk (empty, NUL bytes, backslashes,
    over-long) is a 422. ``root``, ``within`` and ``sealed`` must be real paths.
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
    bound = within or root
    if os.path.commonpath([bound, real]) != bound:
        where = "the output root" if bound != root else "the data root"
        raise PathOutsideRoot(f"the path {path!r} leads outside {where}", field)
    if sealed is not None and os.path.commonpath([sealed, real]) == sealed:
        raise PathOutsideRoot(f"the path {path!r} is inside imgsrv's state folder, which is never an input "
                              "or an output", field)
    return real


REPLACE_ANY = WriteRule(Overwrite.ALWAYS)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LinkOnPath(OSError):
    """A symbolic link where ``open_folder`` expected a folder."""


def _open_component(fd: int, part: str) -> int:
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            try:
                if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise LinkOnPath(errno.ELOOP, f"{part} is a symbolic link") from None
            except FileNotFoundError:
                pass
        raise


def open_folder(path: str, create: bool = False) -> int:
    """A descriptor of the folder ``path`` (absolute, a real path), opened from ``/`` one
    component at a time without following a symbolic link: a link swapped in anywhere on the
    way after the path was checked is refused (LinkOnPath), never followed. Missing folders
    are made with ``create``."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        for part in (p for p in path.split("/") if p):
            try:
                nxt = _open_component(fd, part)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                nxt = _open_component(fd, part)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _absolute(path: str) -> str:
    """``path`` as an absolute path (the planner's paths are already; a relative one is taken
    from the current folder's real path)."""
    return path if os.path.isabs(path) else os.path.join(os.path.realpath(os.getcwd()), path)


def read_input(path: str, max_bytes: int | None = None) -> bytes:
    """The whole file (see read_input_file)."""
    return read_input_file(path, max_bytes)[0]


def read_input_file(path: str, max_bytes: int | None = None) -> tuple[bytes, os.stat_result]:
    """The whole file and its status, opened without following a link on the way (the
    planner resolved every link: one found now was swapped in since). What is not a regular
    file is refused before it is opened (no FIFO hangs), and so is a file over ``max_bytes``
    (TooLarge) before it is read."""
    folder, name = os.path.split(_absolute(path))
    try:
        fd = open_folder(folder)
    except FileNotFoundError:
        raise NotFound("the input file does not exist") from None
    except LinkOnPath:
        raise NotFound("a folder on the input's path was replaced by a link since the request was checked") from None
    except OSError as exc:
        raise NotFound(f"the input file cannot be read: {_reason(exc)}") from None
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            raise NotFound("the input file does not exist") from None
        except OSError as exc:
            raise NotFound(f"the input file cannot be read: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise NotFound("the input is a folder, not a file")
        if stat.S_ISLNK(st.st_mode):
            raise NotFound("the input was replaced by a link since the request was checked")
        if not stat.S_ISREG(st.st_mode):
            raise DecodeError("the input is not a regular file")
        try:
            f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            raise NotFound(f"the input file cannot be read: {_reason(exc)}") from None
        with os.fdopen(f, "rb") as stream:
            opened = os.fstat(stream.fileno())
            if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(opened.st_mode):
                raise NotFound("the input changed while it was opened")
            if max_bytes is not None and opened.st_size > max_bytes:
                raise TooLarge(f"the file is {opened.st_size} bytes, more than IMGSRV_MAX_INPUT_BYTES ({max_bytes})")
            try:
                return stream.read(), opened
            except OSError as exc:
                raise NotFound(f"the input file cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, rule: WriteRule | None = None, tag: str = "") -> os.stat_result:
    """Write ``data`` at ``path`` so that a reader sees the old file or the whole new one.

    The bytes go to a temporary file in the same folder, are flushed to disk, and the file
    is renamed over ``path``. On any failure the temporary file is removed and whatever was
    at ``path`` before stays as it was. Missing folders are created. ``rule`` says whether a
    file already there may be replaced (default: any; the planner gives every task its rule).
    ``tag`` marks the temporary file's name (see write_all).
    """
    return write_all([(path, data)], rule=rule, tag=tag)[0]


def write_all(files: list[tuple[str, bytes]], sync: bool = True, rule: WriteRule | None = None,
              keep: os.stat_result | None = None, tag: str = "") -> list[os.stat_result]:
    """Write several files all or nothing (the tiles of one image); the status of each as written.

    Every file is first written whole to a temporary file in its destination's folder (and
    flushed to disk with ``sync``). Each folder is opened without following links (see
    ``open_folder``), and the temporary file and the rename stay inside the folder opened: a
    link swapped in meanwhile makes the write fail, never lead elsewhere. Only when every
    file is staged, and every file already at a destination may be replaced (``rule``; never
    ``keep``, the input itself through a hard link), are they renamed into place; a file that
    appears at a free destination meanwhile is not replaced either. If anything fails, every
    temporary file is removed and no destination is touched. ``tag`` marks the temporary
    files' names (a job's, so that it removes only its own when it resumes).

    Without ``sync`` the rename still makes each file appear whole to every reader and
    survives the death of any process; only a crash of the machine itself could lose it.
    Jobs write that way and make a whole batch durable at once (``FileSystemSync``)
    before they record it.
    """
    rule = rule or REPLACE_ANY
    staged: list[tuple[int, str, str]] = []  # (folder fd, temporary name, name)
    folders: dict[str, int] = {}
    stats: list[os.stat_result] = []
    try:
        for path, data in files:
            folder, name = os.path.split(_absolute(path))
            if folder not in folders:
                folders[folder] = _open_output_folder(folder)
            staged.append((folders[folder], _stage(folders[folder], data, sync, tag), name))
        found = [_check_target(fd, name, i, rule, keep, data)
                 for i, ((fd, _tmp, name), (_path, data)) in enumerate(zip(staged, files))]
        for (fd, tmp, name), target in zip(staged, found):
            if target is _FREE:
                _rename_no_replace(fd, tmp, name)
            elif target is _REPLACE:
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            else:  # _SAME: the same bytes are there already; they stay, untouched
                os.unlink(tmp, dir_fd=fd)
            # as it is now, in place: its inode and change time are part of imgsrv's record of it
            stats.append(os.stat(name, dir_fd=fd, follow_symlinks=False))
    except BaseException as exc:
        for fd, tmp, _name in staged[len(stats):]:
            try:
                os.unlink(tmp, dir_fd=fd)
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise WriteError(f"the output could not be written: {_reason(exc)}") from None
        raise
    finally:
        for fd in folders.values():
            os.close(fd)
    return stats


def _open_output_folder(folder: str) -> int:
    try:
        return open_folder(folder, create=True)
    except LinkOnPath:
        raise WriteError("a folder on the output's path was replaced by a link since the request was "
                         "checked") from None
    except OSError as exc:
        raise WriteError(f"the output folder cannot be made: {_reason(exc)}") from None


# what _check_target finds at a destination
_FREE, _REPLACE, _SAME = object(), object(), object()


def _check_target(fd: int, name: str, index: int, rule: WriteRule, keep: os.stat_result | None,
                  data: bytes) -> object:
    """What is at ``name``: _FREE (nothing), _REPLACE (a file the rule lets go), or _SAME (a
    file holding ``data`` already: it stays, writing it again would change no byte). A file the
    rule protects is OutputExists."""
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return _FREE
    if stat.S_ISDIR(st.st_mode):
        raise WriteError("the output path is a folder")
    if keep is not None and (st.st_dev, st.st_ino) == (keep.st_dev, keep.st_ino):
        raise WriteError("the output is the input file itself (a link to it)")
    if rule.may_replace(index, st):
        return _REPLACE
    if stat.S_ISREG(st.st_mode) and st.st_size == len(data) and _holds(fd, name, data):
        return _SAME  # imgsrv's own output not yet recorded (a job stopped by a crash), or the same bytes
    raise OutputExists(f"{name} already exists and imgsrv did not write it, or it changed since "
                       f"(options.overwrite is {rule.overwrite}; 'always' replaces it)")


def _holds(fd: int, name: str, data: bytes) -> bool:
    try:
        f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except OSError:
        return False
    with os.fdopen(f, "rb") as stream:
        return stream.read(len(data) + 1) == data


_RENAME_NOREPLACE = 1


def _rename_no_replace(fd: int, tmp: str, name: str) -> None:
    """Rename ``tmp`` to ``name`` in folder ``fd`` unless something is at ``name`` by now."""
    if _renameat2 is not None:
        if _renameat2(fd, os.fsencode(tmp), fd, os.fsencode(name), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise OutputExists(f"{name} appeared while it was being written; it is left as it is")
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err))
    try:  # a file system without renameat2's flag: a hard link is made only where nothing is
        os.link(tmp, name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
    except FileExistsError:
        raise OutputExists(f"{name} appeared while it was being written; it is left as it is") from None
    os.unlink(tmp, dir_fd=fd)


def _reason(exc: OSError) -> str:
    return "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))


def _stage(fd: int, data: bytes, sync: bool = True, tag: str = "") -> str:
    """Write ``data`` to a new temporary file in folder ``fd`` (flushed to disk with ``sync``); its name."""
    for _attempt in range(100):
        tmp = f"{TEMP_PREFIX}{tag}{secrets.token_hex(6)}"
        try:
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                          dir_fd=fd)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise WriteError(f"cannot write in the output folder: {_reason(exc)}") from None
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise WriteError("cannot find a free temporary name in the output folder")
    try:
        with os.fdopen(out, "wb") as f:
            f.write(data)
            f.flush()
            if sync:
                os.fdatasync(f.fileno())  # the data is on disk before the rename makes it visible
        return tmp
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=fd)
        except OSError:
            pass
        raise


_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_syncfs = getattr(_libc, "syncfs", None)
_renameat2 = getattr(_libc, "renameat2", None)  # glibc 2.28 and later
if _renameat2 is not None:
    _renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)


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


def clean_temp_files(folders: Iterable[str], tag: str) -> int:
    """Remove the temporary files marked ``tag`` (see write_all) that a writer killed mid-write
    left in ``folders`` (not below them); returns how many. Each folder is opened as the
    writer opened it, without following a link on its path (open_folder)."""
    removed = 0
    prefix = TEMP_PREFIX + tag
    for folder in folders:
        try:
            fd = open_folder(folder)
        except OSError:  # gone, or a link on its path (LinkOnPath)
            continue
        try:
            with os.scandir(fd) as entries:
                stale = [e.name for e in entries if e.name.startswith(prefix) and e.is_file(follow_symlinks=False)]
            for name in stale:
                try:
                    os.unlink(name, dir_fd=fd)
                    removed += 1
                except OSError:
                    pass
        except OSError:
            continue
        finally:
            os.close(fd)
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
            if entry.name.startswith("."):  # hidden files, the state folder, temporary files (TEMP_PREFIX)
                continue
            if entry.is_dir(follow_symlinks=False):
                if recursive:
                    subdirs.append(name)
            elif fnmatch.fnmatchcase(entry.name, pattern) and entry.is_file():
                yield name
        stack.extend(reversed(subdirs))

"""Paths under the data root, output naming, atomic writes and reading inputs."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from app.errors import DecodeError, InvalidRequest, NotFound, OutputExists, PathOutsideRoot, WriteError
from app import files as storage
from app.api.errors import STATUS_OF_REFUSAL
from app.files import TEMP_PREFIX, FileSystemSync, atomic_write, read_input, resolve, write_all
from app.plan import output_names
from app.tasks import Overwrite, Owned, WriteRule
from tests import images

FIELD = "images[3].input"


@pytest.fixture()
def outside(tmp_path) -> str:
    """A folder next to the data root, with a file in it."""
    folder = os.path.realpath(tmp_path / "outside")
    os.makedirs(folder)
    Path(folder, "secret.jpg").write_bytes(images.jpeg_bytes())
    return folder


# ---------------------------------------------------------------- resolve: accepted


def test_relative_path_inside_the_root(root):
    images.jpeg(Path(root, "in"), "a.jpg")
    assert resolve(root, "in/a.jpg", FIELD) == os.path.join(root, "in", "a.jpg")


def test_relative_path_that_does_not_exist_yet_is_fine(root):
    assert resolve(root, "out/new/b.png", FIELD) == os.path.join(root, "out", "new", "b.png")


def test_absolute_path_inside_the_root(root):
    path = os.path.join(root, "x", "a.jpg")
    assert resolve(root, path, FIELD) == path


def test_dot_dot_that_stays_inside_is_fine(root):
    os.makedirs(os.path.join(root, "a", "b"))
    assert resolve(root, "a/b/../c.jpg", FIELD) == os.path.join(root, "a", "c.jpg")


def test_symlink_staying_inside_the_root_is_fine(root):
    images.jpeg(Path(root, "real"), "a.jpg")
    os.symlink(os.path.join(root, "real"), os.path.join(root, "alias"))
    os.symlink("real/a.jpg", os.path.join(root, "link.jpg"))
    assert resolve(root, "alias/a.jpg", FIELD) == os.path.join(root, "real", "a.jpg")
    assert resolve(root, "link.jpg", FIELD) == os.path.join(root, "real", "a.jpg")


# ---------------------------------------------------------------- resolve: outside the root (403)


def assert_outside(root, path):
    with pytest.raises(PathOutsideRoot) as exc:
        resolve(root, path, FIELD)
    assert exc.value.field == FIELD
    assert STATUS_OF_REFUSAL[exc.value.code] == 403
    return exc.value


def test_dot_dot_escaping_the_root(root, outside):
    assert_outside(root, "../outside/secret.jpg")
    assert_outside(root, "a/../../outside/secret.jpg")
    assert_outside(root, "..")


def test_absolute_path_elsewhere(root, outside):
    assert_outside(root, os.path.join(outside, "secret.jpg"))
    assert_outside(root, "/etc/passwd")


def test_sibling_folder_sharing_the_roots_name_as_prefix(root):
    sibling = root + "-other"
    os.makedirs(sibling)
    assert_outside(root, os.path.join(sibling, "a.jpg"))
    assert_outside(root, "../" + os.path.basename(sibling) + "/a.jpg")


def test_symlinked_file_leading_out(root, outside):
    os.symlink(os.path.join(outside, "secret.jpg"), os.path.join(root, "innocent.jpg"))
    assert_outside(root, "innocent.jpg")


def test_symlinked_folder_leading_out(root, outside):
    os.symlink(outside, os.path.join(root, "photos"))
    assert_outside(root, "photos/secret.jpg")
    assert_outside(root, "photos/not-there-yet.jpg")  # an output that would be created outside
    assert_outside(root, os.path.join(root, "photos", "secret.jpg"))


def test_dangling_symlink_pointing_out(root, outside):
    os.symlink(os.path.join(outside, "new.jpg"), os.path.join(root, "out.jpg"))
    assert_outside(root, "out.jpg")


# ---------------------------------------------------------------- resolve: junk (422)


@pytest.mark.parametrize("path", ["", "   ", "a\x00b.jpg", "in\\a.jpg", "..\\..\\etc\\passwd",
                                  "a/" * 2100 + "x.jpg"],
                         ids=["empty", "blank", "nul", "backslash", "backslash-dotdot", "over-long"])
def test_junk_paths_are_invalid_requests(root, path):
    with pytest.raises(InvalidRequest) as exc:
        resolve(root, path, FIELD)
    assert exc.value.field == FIELD
    assert STATUS_OF_REFUSAL[exc.value.code] == 422


def test_non_string_path_is_an_invalid_request(root):
    with pytest.raises(InvalidRequest) as exc:
        resolve(root, None, "images[0].output")  # type: ignore[arg-type]
    assert exc.value.field == "images[0].output"


# ---------------------------------------------------------------- output_names


def test_output_name_without_fan_out_is_the_output():
    assert output_names("out/a.jpg", ()) == ["out/a.jpg"]


def test_output_names_for_quadrants():
    assert output_names("testoutput/cyclo1_processed.jpg", (4,)) == [
        f"testoutput/cyclo1_processed_{i}.jpg" for i in range(4)]


def test_output_names_for_nested_splits_are_row_major():
    names = output_names("o/cyclo1_processed.jpg", (4, 4))
    assert len(names) == 16
    assert names[0] == "o/cyclo1_processed_0_0.jpg"
    assert names[3] == "o/cyclo1_processed_0_3.jpg"
    assert names[4] == "o/cyclo1_processed_1_0.jpg"
    assert names[-1] == "o/cyclo1_processed_3_3.jpg"
    assert len(output_names("a.png", (2, 3, 2))) == 12 and output_names("a.png", (2, 3, 2))[-1] == "a_1_2_1.png"


def test_output_names_keep_dots_in_the_stem_and_the_folder():
    assert output_names("/d.v1/my.photo.PNG", (2,)) == ["/d.v1/my.photo_0.PNG", "/d.v1/my.photo_1.PNG"]


# ---------------------------------------------------------------- atomic_write


def temp_files(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]


def test_atomic_write_writes_and_creates_folders(root):
    path = os.path.join(root, "a", "b", "c", "out.jpg")
    data = images.jpeg_bytes()
    atomic_write(path, data)
    assert Path(path).read_bytes() == data
    assert temp_files(os.path.dirname(path)) == []
    # permissions of a normal new file (a temp file would be 0600, unreadable by a web server)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o644 & ~umask


def test_atomic_write_replaces_an_existing_file(root):
    path = os.path.join(root, "out.png")
    Path(path).write_bytes(b"old")
    atomic_write(path, b"new content")
    assert Path(path).read_bytes() == b"new content"
    assert temp_files(root) == []


def test_atomic_write_with_a_bare_relative_file_name(root, monkeypatch):
    monkeypatch.chdir(root)
    atomic_write("out.jpg", b"data")
    assert Path(root, "out.jpg").read_bytes() == b"data"


def test_atomic_write_where_the_parent_is_a_file(root):
    blocker = Path(root, "out")
    blocker.write_bytes(b"i am a file")
    with pytest.raises(WriteError) as exc:
        atomic_write(os.path.join(root, "out", "sub", "x.jpg"), b"data")
    assert exc.value.code == "write_error"
    assert blocker.read_bytes() == b"i am a file"
    assert temp_files(root) == []


def test_atomic_write_onto_a_folder_is_refused_and_the_folder_kept(root):
    os.makedirs(os.path.join(root, "out.jpg", "inner"))
    with pytest.raises(WriteError):
        atomic_write(os.path.join(root, "out.jpg"), b"data")
    assert os.path.isdir(os.path.join(root, "out.jpg", "inner"))
    assert temp_files(root) == []


def test_atomic_write_failing_mid_write_keeps_the_old_file(root):
    """The write hits the file-size limit (EFBIG, like a full disk) after the temp file is
    created: the old output must stay whole and no temporary file may remain."""
    path = os.path.join(root, "out.jpg")
    old = images.jpeg_bytes("chelsea.jpg")
    Path(path).write_bytes(old)
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from app.errors import WriteError
        from app.files import atomic_write
        try:
            atomic_write({path!r}, b"x" * 1_000_000)
        except WriteError as exc:
            print("WriteError:", exc.message)
            sys.exit(0)
        sys.exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("WriteError:")
    assert Path(path).read_bytes() == old
    assert temp_files(root) == []


def test_atomic_write_with_unwritable_data_keeps_the_old_file(root):
    path = os.path.join(root, "out.jpg")
    Path(path).write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(path, "not bytes")  # type: ignore[arg-type]
    assert Path(path).read_bytes() == b"old"
    assert temp_files(root) == []


def test_write_all_flushes_each_file_unless_told_not_to(root, monkeypatch):
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd))[1])
    tiles = [(os.path.join(root, f"t{i}.jpg"), f"tile {i}".encode()) for i in range(3)]
    write_all(tiles)
    assert len(synced) == 3
    synced.clear()
    Path(tiles[0][0]).write_bytes(b"old")
    write_all(tiles, sync=False)  # what jobs do: one syncfs per batch instead
    assert synced == []
    assert [Path(p).read_bytes() for p, _ in tiles] == [d for _, d in tiles]
    assert temp_files(root) == []


def test_file_system_sync_flushes_each_file_system_once_with_a_descriptor_opened_early(root, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(storage, "_syncfs", lambda fd: calls.append(fd) or 0)
    sync = FileSystemSync()
    sync.watch(os.path.join(root, "out", "not", "made", "yet"))  # the nearest existing parent: root
    [early] = sync._fds.values()
    for name in ("a", "b"):
        os.makedirs(os.path.join(root, "out", name))
    sync.sync([os.path.join(root, "out", "a"), os.path.join(root, "out", "b"), os.path.join(root, "gone")])
    assert calls == [early], "one syncfs, through the descriptor opened before the writes"
    sync.close()
    assert sync._fds == {}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="syncfs is Linux's: elsewhere os.sync is used")
def test_file_system_sync_for_real(root, monkeypatch):
    """The real syscall on this disk, once, through the descriptor watch opened, and it succeeds."""
    assert storage._syncfs is not None, "Linux's syncfs is not reachable: this would test os.sync instead"
    real, results = storage._syncfs, []
    monkeypatch.setattr(storage, "_syncfs", lambda fd: (results.append((fd, rc := real(fd))), rc)[1])
    sync = FileSystemSync()
    sync.watch(root)
    [fd] = sync._fds.values()
    write_all([(os.path.join(root, "out", "x.jpg"), b"data")], sync=False)
    sync.sync([os.path.join(root, "out")])
    sync.close()
    assert results == [(fd, 0)]
    assert Path(root, "out", "x.jpg").read_bytes() == b"data"


def test_file_system_sync_reports_a_write_back_error(root, monkeypatch):
    import ctypes
    import errno as _errno

    def failing(_fd: int) -> int:
        ctypes.set_errno(_errno.EIO)
        return -1

    monkeypatch.setattr(storage, "_syncfs", failing)
    sync = FileSystemSync()
    with pytest.raises(WriteError) as exc:
        sync.sync([root])
    sync.close()
    assert root in exc.value.message and "Input/output error" in exc.value.message


def test_file_system_sync_falls_back_to_sync_when_a_folder_cannot_be_opened(root, monkeypatch):
    synced: list[bool] = []
    monkeypatch.setattr(os, "sync", lambda: synced.append(True))
    monkeypatch.setattr(storage, "_syncfs", lambda fd: pytest.fail("syncfs without a descriptor"))
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, flags, *a: (_ for _ in ()).throw(PermissionError(13, "denied"))
                        if flags & os.O_DIRECTORY else real_open(path, flags, *a))
    FileSystemSync().sync([root])
    assert synced == [True]


# ---------------------------------------------------------------- read_input


def test_read_input_returns_the_bytes(root):
    path = images.jpeg(root, "a.jpg")
    assert read_input(str(path)) == images.jpeg_bytes()


def test_read_input_missing_file_is_not_found(root):
    with pytest.raises(NotFound) as exc:
        read_input(os.path.join(root, "nope.jpg"))
    assert exc.value.code == "not_found"


def test_read_input_on_a_folder_is_not_found(root):
    os.makedirs(os.path.join(root, "folder.jpg"))
    with pytest.raises(NotFound) as exc:
        read_input(os.path.join(root, "folder.jpg"))
    assert "folder" in exc.value.message


@pytest.mark.timeout(20)
def test_read_input_on_a_fifo_is_a_decode_error_without_hanging(root):
    fifo = os.path.join(root, "pipe.jpg")
    os.mkfifo(fifo)
    with pytest.raises(DecodeError) as exc:
        read_input(fifo)
    assert exc.value.code == "decode_error"


def test_read_input_on_an_empty_file_returns_nothing(root):
    assert read_input(str(images.empty_file(root))) == b""


# -- the overwrite rule, links swapped in, temporary files --------------------------------------

OWN = WriteRule(Overwrite.OWN)


def test_a_file_the_rule_protects_is_kept_byte_for_byte(root):
    target = Path(root, "out", "user.jpg")
    target.parent.mkdir()
    target.write_bytes(b"the user's own bytes")
    for rule in (OWN, WriteRule(Overwrite.NEVER)):
        with pytest.raises(OutputExists, match="options.overwrite"):
            write_all([(str(target), b"new"), (str(Path(root, "out", "free.jpg")), b"other")], rule=rule)
        assert target.read_bytes() == b"the user's own bytes"
        assert sorted(os.listdir(target.parent)) == ["user.jpg"], "all or nothing, no temporary file left"
    write_all([(str(target), b"new")], rule=WriteRule(Overwrite.ALWAYS))
    assert target.read_bytes() == b"new"


def test_own_replaces_only_the_file_as_imgsrv_wrote_it(root):
    target = str(Path(root, "mine.png"))
    st = atomic_write(target, b"first")
    mine = WriteRule(Overwrite.OWN, (Owned(st.st_size, st.st_mtime_ns),))
    atomic_write(target, b"second", mine)
    assert Path(target).read_bytes() == b"second"
    with pytest.raises(OutputExists):  # "first" is no longer what is there
        atomic_write(target, b"third", mine)
    again = os.stat(target)
    assert not WriteRule(Overwrite.OWN, (Owned(again.st_size, again.st_mtime_ns, job="j1"),), job="j1") \
        .may_replace(0, again), "a job never replaces its own output"


def test_a_file_changed_in_place_with_its_size_and_mtime_restored_is_no_longer_imgsrvs(root):
    """exiftool -P or cp -p keep a file's size and mtime; its change time moves on (no one can set it back)."""
    target = str(Path(root, "mine.jpg"))
    st = atomic_write(target, b"written by imgsrv")
    mine = WriteRule(Overwrite.OWN, (Owned(st.st_size, st.st_mtime_ns, ino=st.st_ino, ctime_ns=st.st_ctime_ns),))
    time.sleep(0.05)
    with open(target, "r+b") as f:
        f.write(b"W")  # same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    assert os.stat(target).st_ctime_ns != st.st_ctime_ns, "this file system did not move the change time"
    with pytest.raises(OutputExists):
        atomic_write(target, b"imgsrv again", mine)
    assert Path(target).read_bytes() == b"Written by imgsrv"


def test_the_same_bytes_already_there_are_left_as_they_are(root):
    """A job stopped by a crash finds its own unrecorded outputs: writing them again changes no byte."""
    target = Path(root, "o.jpg")
    target.write_bytes(b"identical")
    before = target.stat()
    [st] = write_all([(str(target), b"identical")], rule=OWN)
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert os.listdir(root) == ["o.jpg"]


def test_a_folder_swapped_for_a_link_is_never_written_through(root, outside):
    drop = Path(root, "drop")
    drop.mkdir()
    planned = os.path.join(resolve(root, "drop", "output"), "pwned.jpg")
    os.rename(drop, Path(root, "drop.old"))
    os.symlink(outside, drop)
    with pytest.raises(WriteError, match="replaced by a link"):
        write_all([(planned, b"x")], rule=OWN)
    assert sorted(os.listdir(outside)) == ["secret.jpg"]


def test_an_input_folder_swapped_for_a_link_is_never_read_through(root, outside):
    Path(root, "in").mkdir()
    Path(root, "in", "secret.jpg").write_bytes(b"inside")
    planned = resolve(root, "in/secret.jpg", "input")
    os.rename(Path(root, "in"), Path(root, "in.old"))
    os.symlink(outside, Path(root, "in"))
    with pytest.raises(NotFound, match="replaced by a link"):
        read_input(planned)
    os.unlink(Path(root, "in"))
    os.symlink(Path(outside, "secret.jpg"), Path(root, "in"))  # now the file itself is a link
    with pytest.raises(NotFound):
        read_input(planned)


def test_only_the_tagged_temporary_files_of_these_folders_are_removed(root):
    Path(root, "a", "deeper").mkdir(parents=True)
    names = [f"{TEMP_PREFIX}job1-x", f"{TEMP_PREFIX}job2-x", f"{TEMP_PREFIX}y", "photo.jpg"]
    for name in names:
        Path(root, "a", name).write_bytes(b"")
    Path(root, "a", "deeper", f"{TEMP_PREFIX}job1-z").write_bytes(b"")
    assert storage.clean_temp_files([os.path.join(root, "a")], "job1-") == 1
    assert sorted(os.listdir(Path(root, "a"))) == sorted(["deeper", *names[1:]])
    assert os.listdir(Path(root, "a", "deeper")) == [f"{TEMP_PREFIX}job1-z"]


def test_resolve_keeps_outputs_under_their_root_and_out_of_the_state_folder(root):
    outputs, state = os.path.join(root, "outs"), os.path.join(root, ".imgsrv")
    assert resolve(root, "outs/x.jpg", "images[0].output", within=outputs) == os.path.join(outputs, "x.jpg")
    with pytest.raises(PathOutsideRoot) as exc:
        resolve(root, "elsewhere/x.jpg", "images[0].output", within=outputs)
    assert exc.value.message == "the path 'elsewhere/x.jpg' leads outside the output root"
    with pytest.raises(PathOutsideRoot, match="state folder"):
        resolve(root, ".imgsrv/imgsrv.sqlite3", "images[0].input", sealed=state)


# -- what each refusal says, and the paths around the edges ------------------------------------------

from app.errors import TooLarge  # noqa: E402
from app.files import clean_temp_files, read_input_file, walk_files  # noqa: E402


@pytest.mark.parametrize("path, message", [
    ("", "the path is empty"),
    ("a\x00b.jpg", "the path contains a NUL byte"),
    ("in\\a.jpg", "the path contains a backslash; use / to separate folders"),
    ("a" * 4097, "the path is longer than 4096 bytes"),
])
def test_junk_paths_say_what_is_wrong(root, path, message):
    with pytest.raises(InvalidRequest) as exc:
        resolve(root, path, FIELD)
    assert (exc.value.message, exc.value.field) == (message, FIELD)


def test_a_path_of_exactly_the_limit_is_resolved(root):
    name = "a" * (4096 - len(root) - 1)
    assert resolve(root, os.path.join(root, name), FIELD) == os.path.join(root, name)


def test_refusals_name_the_root_the_path_leaves(root):
    with pytest.raises(PathOutsideRoot) as exc:
        resolve(root, "../x.jpg", FIELD)
    assert exc.value.message == "the path '../x.jpg' leads outside the data root"
    with pytest.raises(PathOutsideRoot) as exc:
        resolve(root, ".imgsrv/db", "images[0].output", sealed=os.path.join(root, ".imgsrv"))
    assert exc.value.field == "images[0].output"
    assert exc.value.message == ("the path '.imgsrv/db' is inside imgsrv's state folder, which is never an input "
                                 "or an output")


def test_reading_says_why_an_input_cannot_be_read(root):
    with pytest.raises(NotFound, match="^the input file does not exist$"):
        read_input(os.path.join(root, "no-folder", "a.jpg"))
    with pytest.raises(NotFound, match="^the input file does not exist$"):
        read_input(os.path.join(root, "a.jpg"))
    os.makedirs(os.path.join(root, "d.jpg"))
    with pytest.raises(NotFound, match="^the input is a folder, not a file$"):
        read_input(os.path.join(root, "d.jpg"))
    os.symlink(os.path.join(root, "d.jpg"), os.path.join(root, "link.jpg"))
    with pytest.raises(NotFound, match="^the input was replaced by a link since the request was checked$"):
        read_input(os.path.join(root, "link.jpg"))
    os.mkfifo(os.path.join(root, "fifo.jpg"))
    with pytest.raises(DecodeError, match="^the input is not a regular file$"):
        read_input(os.path.join(root, "fifo.jpg"))
    Path(root, "file").write_bytes(b"x")
    with pytest.raises(NotFound, match="^the input file cannot be read: Not a directory$"):
        read_input(os.path.join(root, "file", "a.jpg"))


def as_unprivileged(call) -> str:
    """What ``call()`` raises, as text, run by an unprivileged user: in a child forked from this
    process that drops root (to nobody), since root reads any file."""
    if os.geteuid() != 0:
        try:
            call()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "no error"
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(reading)
            os.setgid(65534)
            os.setuid(65534)
            try:
                call()
                answer = "no error"
            except Exception as exc:
                answer = f"{type(exc).__name__}: {exc}"
            os.write(writing, answer.encode())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    return answer


def test_an_unreadable_input_says_so():
    with tempfile.TemporaryDirectory() as folder:  # in the system's temporary folder, which anyone may enter
        os.chmod(folder, 0o711)
        path = images.jpeg(folder, "a.jpg")
        os.chmod(path, 0)
        assert as_unprivileged(lambda: read_input(str(path))) == \
            "NotFound: the input file cannot be read: Permission denied"


def test_an_input_over_the_byte_limit_is_refused_before_it_is_read_and_one_at_it_is_read(root):
    data = images.jpeg_bytes()
    path = str(images.jpeg(root, "a.jpg"))
    got, st = read_input_file(path, len(data))
    assert got == data and st.st_size == len(data)
    with pytest.raises(TooLarge) as exc:
        read_input(path, len(data) - 1)
    assert exc.value.message == (f"the file is {len(data)} bytes, more than IMGSRV_MAX_INPUT_BYTES "
                                 f"({len(data) - 1})")


def test_write_errors_say_why(root):
    os.makedirs(os.path.join(root, "out.jpg"))
    with pytest.raises(WriteError, match="^the output path is a folder$"):
        write_all([(os.path.join(root, "out.jpg"), b"x")])
    Path(root, "file").write_bytes(b"x")
    with pytest.raises(WriteError, match="^the output folder cannot be made: Not a directory$"):
        write_all([(os.path.join(root, "file", "a.jpg"), b"x")])


def test_an_output_that_is_the_input_through_a_hard_link_is_never_written(root):
    src = images.jpeg(root, "in.jpg")
    os.link(src, os.path.join(root, "out.jpg"))
    before = src.read_bytes()
    with pytest.raises(WriteError, match=r"^the output is the input file itself \(a link to it\)$"):
        write_all([(os.path.join(root, "out.jpg"), b"new")], keep=os.stat(src))
    assert src.read_bytes() == before
    assert sorted(os.listdir(root)) == ["in.jpg", "out.jpg"]
    write_all([(os.path.join(root, "other.jpg"), b"new")], keep=os.stat(src))
    assert Path(root, "other.jpg").read_bytes() == b"new"


def test_a_job_tags_its_temporary_files(root, monkeypatch):
    seen = []
    real = storage._check_target
    monkeypatch.setattr(storage, "_check_target", lambda fd, *a: (seen.extend(os.listdir(root)), real(fd, *a))[1])
    write_all([(os.path.join(root, "a.jpg"), b"x")], tag="job1-")
    assert [n for n in seen if n.startswith(TEMP_PREFIX)][0].startswith(TEMP_PREFIX + "job1-")
    assert os.listdir(root) == ["a.jpg"]


def test_the_returned_status_is_the_file_in_place(root):
    [st] = write_all([(os.path.join(root, "a.jpg"), b"12345")])
    now = os.stat(os.path.join(root, "a.jpg"))
    assert (st.st_ino, st.st_size, st.st_ctime_ns) == (now.st_ino, 5, now.st_ctime_ns)


def test_a_different_file_of_the_same_size_is_still_protected(root):
    target = Path(root, "o.jpg")
    target.write_bytes(b"abcdef")
    with pytest.raises(OutputExists) as exc:
        write_all([(str(target), b"abcxyz")], rule=WriteRule(Overwrite.OWN))
    assert exc.value.message == ("o.jpg already exists and imgsrv did not write it, or it changed since "
                                 "(options.overwrite is own; 'always' replaces it)")
    with pytest.raises(OutputExists):
        write_all([(str(target), b"abcdefg")], rule=WriteRule(Overwrite.OWN))  # longer: a prefix is not the file
    assert target.read_bytes() == b"abcdef"


@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "hard-link"])
def test_a_file_that_appears_at_a_free_name_meanwhile_is_left_as_it_is(root, monkeypatch, renameat2):
    if not renameat2:
        monkeypatch.setattr(storage, "_renameat2", None)
    target = Path(root, "o.jpg")
    real = storage._check_target

    def someone_writes_meanwhile(fd, name, *a):
        found = real(fd, name, *a)
        target.write_bytes(b"theirs")
        return found

    monkeypatch.setattr(storage, "_check_target", someone_writes_meanwhile)
    with pytest.raises(OutputExists) as exc:
        write_all([(str(target), b"mine")])
    assert exc.value.message == "o.jpg appeared while it was being written; it is left as it is"
    assert target.read_bytes() == b"theirs"
    assert os.listdir(root) == ["o.jpg"], "no temporary file left"


def test_without_renameat2_a_new_file_is_put_in_place_by_a_hard_link(root, monkeypatch):
    monkeypatch.setattr(storage, "_renameat2", None)
    write_all([(os.path.join(root, "a", "x.jpg"), b"data"), (os.path.join(root, "a", "y.jpg"), b"more")])
    assert sorted(os.listdir(Path(root, "a"))) == ["x.jpg", "y.jpg"]
    assert Path(root, "a", "x.jpg").read_bytes() == b"data" and os.stat(Path(root, "a", "x.jpg")).st_nlink == 1


def test_a_file_system_without_the_no_replace_flag_falls_back_to_a_hard_link(root, monkeypatch):
    import ctypes
    import errno as _errno

    def unsupported(*_a):
        ctypes.set_errno(_errno.EINVAL)
        return -1

    monkeypatch.setattr(storage, "_renameat2", unsupported)
    write_all([(os.path.join(root, "x.jpg"), b"data")])
    assert os.listdir(root) == ["x.jpg"] and Path(root, "x.jpg").read_bytes() == b"data"

    def broken(*_a):
        ctypes.set_errno(_errno.EIO)
        return -1

    monkeypatch.setattr(storage, "_renameat2", broken)
    with pytest.raises(WriteError) as exc:
        write_all([(os.path.join(root, "y.jpg"), b"data")])
    assert exc.value.message == "the output could not be written: Input/output error"
    assert os.listdir(root) == ["x.jpg"]


def test_a_full_disk_is_named(root, monkeypatch):
    import errno as _errno

    def full(*_a, **_k):
        raise OSError(_errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    Path(root, "x.jpg").write_bytes(b"old")
    with pytest.raises(WriteError) as exc:
        write_all([(os.path.join(root, "x.jpg"), b"new")])
    assert exc.value.message == "the output could not be written: the disk is full"
    assert os.listdir(root) == ["x.jpg"] and Path(root, "x.jpg").read_bytes() == b"old"


def test_new_folders_are_made_with_the_usual_permissions(root):
    atomic_write(os.path.join(root, "new", "x.jpg"), b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(os.path.join(root, "new")).st_mode & 0o777 == 0o777 & ~umask


def test_a_link_on_the_output_path_is_named(root, outside):
    os.symlink(outside, os.path.join(root, "link"))
    with pytest.raises(WriteError) as exc:
        write_all([(os.path.join(root, "link", "x.jpg"), b"x")])
    assert exc.value.message == "a folder on the output's path was replaced by a link since the request was checked"
    with pytest.raises(NotFound) as exc:
        read_input(os.path.join(root, "link", "secret.jpg"))
    assert exc.value.message == "a folder on the input's path was replaced by a link since the request was checked"
    assert sorted(os.listdir(outside)) == ["secret.jpg"]


def test_a_relative_input_is_read_from_the_current_folder(root, monkeypatch):
    images.jpeg(root, "a.jpg")
    monkeypatch.chdir(root)
    assert read_input("a.jpg") == images.jpeg_bytes()


# -- folder walks and temporary files --------------------------------------------------------------


def test_a_folder_walk_lists_matching_files_in_order_without_hidden_or_temporary_ones(root):
    for name in ["b.jpg", "a.JPG", "c.png", ".hidden.jpg", f"{TEMP_PREFIX}x.jpg", "sub/d.jpg", "sub/e/f.jpg",
                 ".git/g.jpg", "z/h.jpg"]:
        Path(root, name).parent.mkdir(parents=True, exist_ok=True)
        Path(root, name).write_bytes(b"x")
    os.symlink(os.path.join(root, "c.png"), os.path.join(root, "l.png"))
    os.symlink(os.path.join(root, "sub"), os.path.join(root, "linked-sub"))
    assert list(walk_files(root)) == ["a.JPG", "b.jpg", "c.png", "l.png"]
    assert list(walk_files(root, "*.jpg")) == ["b.jpg"]
    assert list(walk_files(root, "*.jpg", recursive=True)) == ["b.jpg", os.path.join("sub", "d.jpg"),
                                                               os.path.join("sub", "e", "f.jpg"),
                                                               os.path.join("z", "h.jpg")]
    assert list(walk_files(os.path.join(root, "missing"), recursive=True)) == []


def test_temporary_files_are_cleaned_only_where_they_can_be(root):
    Path(root, "a").mkdir()
    Path(root, "a", f"{TEMP_PREFIX}t-1").write_bytes(b"")
    Path(root, "a", f"{TEMP_PREFIX}t-dir").mkdir()
    assert clean_temp_files([os.path.join(root, "gone"), os.path.join(root, "a")], "t-") == 1
    assert os.listdir(Path(root, "a")) == [f"{TEMP_PREFIX}t-dir"]


def test_watching_a_folder_not_made_yet_opens_its_nearest_parent(root):
    sync = FileSystemSync()
    sync.watch(os.path.join(root, "a", "b"))
    sync.watch("relative/never/made")  # no existing parent named: nothing to open
    assert len(sync._fds) == 1
    sync.sync([os.path.join(root, "a", "b")])  # not there: passed over
    sync.close()


def test_a_link_at_the_outputs_name_is_replaced_never_written_through(root, outside):
    os.symlink(outside, os.path.join(root, "to-folder.jpg"))
    os.symlink(os.path.join(outside, "secret.jpg"), os.path.join(root, "to-file.jpg"))
    secret = Path(outside, "secret.jpg").read_bytes()
    write_all([(os.path.join(root, "to-folder.jpg"), b"new"), (os.path.join(root, "to-file.jpg"), b"new2")],
              rule=WriteRule(Overwrite.ALWAYS))
    assert not os.path.islink(os.path.join(root, "to-folder.jpg"))
    assert Path(root, "to-folder.jpg").read_bytes() == b"new" and Path(root, "to-file.jpg").read_bytes() == b"new2"
    assert sorted(os.listdir(outside)) == ["secret.jpg"] and Path(outside, "secret.jpg").read_bytes() == secret


def test_reading_from_a_missing_folder_creates_nothing(root):
    with pytest.raises(NotFound):
        read_input(os.path.join(root, "no", "such", "a.jpg"))
    assert os.listdir(root) == []


def test_a_sync_passes_over_missing_folders_and_flushes_the_others(root, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(storage, "_syncfs", lambda fd: calls.append(fd) or 0)
    sync = FileSystemSync()
    sync.sync([os.path.join(root, "gone"), root])
    sync.close()
    assert len(calls) == 1


def test_stray_temporary_files_are_counted_and_links_left_alone(root):
    for i in range(3):
        Path(root, f"{TEMP_PREFIX}t-{i}").write_bytes(b"")
    Path(root, "target").write_bytes(b"keep")
    os.symlink(os.path.join(root, "target"), os.path.join(root, f"{TEMP_PREFIX}t-link"))
    assert clean_temp_files([root], "t-") == 3
    assert sorted(os.listdir(root)) == sorted([f"{TEMP_PREFIX}t-link", "target"])


def test_a_subfolder_that_went_away_during_a_walk_does_not_end_it(root):
    for name in ["x.jpg", "a/y.jpg", "b/z.jpg"]:
        Path(root, name).parent.mkdir(exist_ok=True)
        Path(root, name).write_bytes(b"x")
    walk = walk_files(root, recursive=True)
    assert next(walk) == "x.jpg"
    os.unlink(Path(root, "a", "y.jpg"))
    os.rmdir(Path(root, "a"))
    assert list(walk) == [os.path.join("b", "z.jpg")]

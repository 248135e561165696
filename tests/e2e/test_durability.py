"""Durability and atomicity of the outputs of requests, seen from outside the server.

- benchmarks/reliability-notes.md, "Durability": ``/process``, ``/items/`` and the diff image
  of ``/compare`` flush each file to disk (``fdatasync``) before its rename, since the answer
  is the record. The server runs under ``strace -f`` (itself and its pool's workers), and the
  trace must show, for every output a request named, a flush of the temporary file that
  became it, before the rename that put it in place.
- "a reader never sees half a file, even if a worker or the server dies mid-write; an older
  file at that path stays whole until the new one replaces it": a reader thread opens the
  output path over and over while a large output replaces it (it must read the old bytes or
  the whole new ones), and while the only worker is SIGKILLed between the write of the
  temporary file and its rename (the old file stays, byte for byte, same inode).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from tests import environment
from tests.server_process import ServerProcess

from .conftest import make_data_root
from .helpers import TEMP_PREFIX, slow_jpeg, temp_files

TRACED = "fdatasync,fsync,rename,renameat,renameat2,linkat"
SYNC = re.compile(r"^(\d+)\s+(?:fdatasync|fsync)\(\d+<([^>]*)>")
RENAME = re.compile(r'^(\d+)\s+(?:renameat2?|linkat)\(\d+<([^>]*)>, "([^"]+)", \d+<([^>]*)>, "([^"]+)"')


# -- a server under strace ----------------------------------------------------------------------


def strace_or_skip() -> None:
    """strace must be installed (the test's ``needs`` mark; CI installs it) and allowed to trace (a
    container may forbid ptrace: then the test skips everywhere, as one that needs privileges)."""
    environment.require("strace")
    probe = subprocess.run(["strace", "-f", "-qq", "-y", "--seccomp-bpf", "-e", f"trace={TRACED}", "true"],
                           capture_output=True, text=True)  # the flags of the real run
    if probe.returncode != 0:
        environment.needs_privilege(f"strace cannot trace here: {probe.stderr.strip()[:200]}")


@pytest.fixture
def traced(tmp_path):
    """A server (two workers) started under ``strace -f``; its trace file, read once it has stopped."""
    strace_or_skip()
    trace = tmp_path / "strace.txt"
    wrapper = tmp_path / "traced_main.py"
    wrapper.write_text(
        "import os, sys\n"
        f"os.execvp('strace', ['strace', '-f', '-qq', '-y', '--seccomp-bpf', '-e', 'trace={TRACED}', "
        f"'-o', {str(trace)!r}, sys.executable, 'main.py', *sys.argv[1:]])\n")
    server = ServerProcess(make_data_root(tmp_path), tmp_path / "server.log", {"workers": 2}, script=str(wrapper))
    server.start()
    try:
        yield server, trace
    finally:
        stop_traced(server)


def stop_traced(server: ServerProcess) -> None:
    """SIGTERM to the server under strace (strace's child), so it shuts down as usual; strace ends
    with it, writing its last lines."""
    if server.proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(server.pid).children():
                child.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=30)
    server.stop()


def flushed_before_rename(trace: str, path: str) -> tuple[bool, str]:
    """Whether the trace shows ``path`` renamed into place from a temporary file that the same
    process flushed before; and what was found, to say why not."""
    folder, name = os.path.split(path)
    lines = trace.splitlines()
    for i, line in enumerate(lines):
        m = RENAME.match(line)
        if m and m[4] == folder and m[5] == name:
            pid, temp = m[1], os.path.join(m[2], m[3])
            synced = any((s := SYNC.match(earlier)) and s[1] == pid and s[2] == temp for earlier in lines[:i])
            return synced, f"process {pid} renamed {m[3]} to {name}; flushed before: {synced}"
    return False, f"no rename to {path} in the trace"


def post(server: ServerProcess, path: str, body: dict) -> dict:
    r = httpx.post(server.url + path, json=body, timeout=120)
    assert r.status_code == 200, f"{path} answered {r.status_code}: {r.text}"
    return r.json()


@pytest.mark.needs("strace")
def test_request_outputs_are_flushed_to_disk_before_their_rename(traced):
    server, trace_path = traced
    process = post(server, "/process", {"images": [{"input": "testimages/coffee.jpg", "output": "dur/p.jpg"}],
                                        "operations": ["split=True", "grayscale"]})
    items = post(server, "/items/", {"images": [{"input": "testimages/cyclo1.jpg", "output": "dur/i.png"}],
                                     "operations": ["resize=0.5"]})
    compare = post(server, "/compare", {"a": "testimages/coffee.jpg", "b": "testimages/coffee_redacted.jpg",
                                        "output": "dur/diff.png"})
    named = {"/process": [o["path"] for r in process["results"] for o in r["outputs"]],
             "/items/": [o["path"] for r in items["results"] for o in r["outputs"]],
             "/compare": ["dur/diff.png"]}
    assert named["/process"] == [f"dur/p_{i}.jpg" for i in range(4)], process
    assert named["/items/"] == ["dur/i.png"], items
    assert compare["different_pixels"] > 0, compare
    stop_traced(server)
    trace = trace_path.read_text(errors="replace")
    assert SYNC.search(trace) or "fdatasync(" in trace, f"the trace holds no flush at all:\n{trace[-2000:]}"
    missing = {}
    for route, paths in named.items():
        for rel in paths:
            real = os.path.realpath(server.data_root / rel)
            assert os.path.isfile(real), rel
            ok, why = flushed_before_rename(trace, real)
            if not ok:
                missing[f"{route} {rel}"] = why
    assert not missing, f"outputs renamed into place without a flush first: {missing}"


# -- readers never see half a file ----------------------------------------------------------------


class Reader(threading.Thread):
    """Opens ``path`` over and over until stopped; remembers (size, sha256) of every whole read and
    how many times the path was absent."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.seen: dict[tuple[int, str], int] = {}
        self.absent = 0
        self.reads = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                with open(self.path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                self.absent += 1
                continue
            key = (len(data), hashlib.sha256(data).hexdigest())
            self.seen[key] = self.seen.get(key, 0) + 1
            self.reads += 1

    def stop(self) -> dict[tuple[int, str], int]:
        self._stop_event.set()
        self.join(timeout=30)
        return self.seen


def fingerprint(path: Path) -> tuple[int, str]:
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


BIG = ["resize=2"]  # the 4000x3000 input as an 8000x6000 BMP: 144 MB to write, flush and rename


def test_readers_see_the_old_file_or_the_whole_new_one_even_when_the_writer_is_killed(server_factory):
    srv = server_factory(workers=1)
    srv.path("big").mkdir()
    srv.path("big/in.jpg").write_bytes(slow_jpeg())
    out = srv.path("shared/out.bmp")
    small = {"images": [{"input": "testimages/coffee.jpg", "output": "shared/out.bmp"}], "operations": []}
    big = {"images": [{"input": "big/in.jpg", "output": "shared/out.bmp"}], "operations": BIG}
    assert srv.ok(small)["results"][0]["status"] == "ok"
    old, old_inode = fingerprint(out), out.stat().st_ino

    # 1. the only worker is killed while the new file is written: between the temporary file's
    # creation and its rename; the reader only ever finds the old file, and it stays. The
    # temporary files of other writers in the folder (another request's, a job's) are not its
    # own: they stay, and only the killed task's is removed.
    foreign = [out.parent / f"{TEMP_PREFIX}0a1b2c3d-0a1b2c3d4e5f",
               out.parent / f"{TEMP_PREFIX}0123456789abcdef-0a1b2c3d-0a1b2c3d4e5f"]
    for path in foreign:
        path.write_bytes(b"another writer's")
    for attempt in range(3):  # on a busy machine the rename may come before the kill: try again
        [worker] = srv.pool_workers(1)
        reader = Reader(out)
        reader.start()
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(srv.client.post, "/process", json=big)
            deadline = time.monotonic() + 120
            while not set(temp_files(out.parent)) - {str(f) for f in foreign}:
                assert not pending.done(), f"the request ended before its temporary file was seen: {pending.result().text}"
                assert time.monotonic() < deadline, "no temporary file appeared"
                time.sleep(0.001)
            worker.kill()  # SIGKILL
            answer = pending.result(timeout=120)
        seen = reader.stop()
        assert answer.status_code == 200, answer.text
        r = answer.json()["results"][0]
        if r["status"] == "ok":  # renamed before the kill: put the older file back and try again
            assert srv.ok(small)["results"][0]["status"] == "ok"
            old, old_inode = fingerprint(out), out.stat().st_ino
            continue
        break
    assert r["status"] == "error" and r["error"]["code"] == "worker_crashed", \
        f"the worker was not killed before the rename in 3 attempts (or it was another failure): {r}"
    assert fingerprint(out) == old and out.stat().st_ino == old_inode, "the older output did not stay whole"
    assert reader.reads > 0 and set(seen) == {old} and reader.absent == 0, \
        f"a reader saw something else than the older file while its writer was killed: {seen}, " \
        f"absent {reader.absent} times"
    assert sorted(temp_files(out.parent)) == sorted(str(f) for f in foreign), \
        "the killed worker's temporary file was left behind, or another writer's was removed"
    for path in foreign:
        path.unlink()
    print(f"\nkill mid-write (attempt {attempt + 1}): {reader.reads} reads, all of the older file")

    # 2. the new file replaces the older one while the reader reads: old bytes or the whole new ones
    reader = Reader(out)
    reader.start()
    result = srv.ok(big)["results"][0]
    seen = reader.stop()
    assert result["status"] == "ok", result
    new = fingerprint(out)
    assert new[0] == result["outputs"][0]["bytes"] > 100_000_000 and new != old, result
    assert reader.reads > 0 and set(seen) <= {old, new}, \
        f"a reader saw a file that is neither the older one nor the whole new one: {sorted(seen)}"
    print(f"replacement: {reader.reads} reads: {seen.get(old, 0)} of the older file, {seen.get(new, 0)} of the new")

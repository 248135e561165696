"""Shared helpers of the batch-job tests (test_jobs.py, test_cli.py, test_job_scale.py).

Input generators write real image files; the job helpers talk to a real server over HTTP.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import psutil

from .conftest import PROJECT_ROOT, Launcher, Server
from .helpers import decode, slow_image

TERMINAL = ("succeeded", "failed", "cancelled")
JOB_TIMEOUT = 120.0


# -- inputs ---------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def big_jpeg_bytes(seed: int = 0, w: int = 2000, h: int = 1500) -> bytes:
    """A photo-like 2000x1500 JPEG (gradient and noise): a blur with a large kernel on it is slow."""
    ok, buf = cv2.imencode(".jpg", slow_image(h, w, seed), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def slow_folder(folder: Path, count: int, sub_every: int = 0) -> list[str]:
    """``count`` 2000x1500 JPEGs in ``folder`` (every ``sub_every``-th in ``sub/``); relative paths."""
    rels = []
    for i in range(count):
        rel = f"sub/big_{i:03d}.jpg" if sub_every and i % sub_every == 0 else f"big_{i:03d}.jpg"
        write_bytes(folder / rel, big_jpeg_bytes())
        rels.append(rel)
    return rels


def small_jpeg(path: Path, w: int = 64, h: int = 48, seed: int = 0) -> Path:
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return write_bytes(path, buf.tobytes())


# -- jobs over HTTP -----------------------------------------------------------------------------


def submit(server: Server, body: dict) -> str:
    r = server.client.post("/jobs", json=body)
    assert r.status_code == 202, f"POST /jobs answered {r.status_code}: {r.text}"
    return r.json()["id"]


def job(server: Server, job_id: str) -> dict:
    r = server.client.get(f"/jobs/{job_id}")
    assert r.status_code == 200, f"GET /jobs/{job_id} answered {r.status_code}: {r.text}"
    return r.json()


def wait_job(server: Server, job_id: str, timeout: float = JOB_TIMEOUT) -> dict:
    """Poll GET /jobs/{id} until the job ends; its last state."""
    deadline = time.monotonic() + timeout
    while True:
        j = job(server, job_id)
        if j["status"] in TERMINAL:
            return j
        assert time.monotonic() < deadline, f"job {job_id} did not end within {timeout:g} s: {j}"
        time.sleep(0.1)


def wait_until(server: Server, job_id: str, pred, timeout: float = JOB_TIMEOUT) -> dict:
    """Poll the job until ``pred(job)`` holds (fails if it ends first or the time runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        j = job(server, job_id)
        if pred(j):
            return j
        assert j["status"] not in TERMINAL, f"job {job_id} ended before the awaited point: {j}"
        assert time.monotonic() < deadline, f"job {job_id} did not reach the awaited point in {timeout:g} s: {j}"
        time.sleep(0.05)


def run_job(server: Server, body: dict) -> dict:
    return wait_job(server, submit(server, body))


def all_results(server: Server, job_id: str, status: str | None = None, page: int = 100) -> list[dict]:
    """Every result of a job, paged with offset/limit."""
    out: list[dict] = []
    params = {"status": status} if status else {}
    while True:
        r = server.client.get(f"/jobs/{job_id}/results", params={**params, "offset": len(out), "limit": page})
        assert r.status_code == 200, r.text
        chunk = r.json()["results"]
        out += chunk
        if len(chunk) < page:
            return out


def counts_add_up(j: dict) -> None:
    assert j["done"] == j["succeeded"] + j["failed"] + j["skipped"], j
    assert j["total"] == j["done"], j


def files_under(folder: Path, skip_state: bool = False) -> dict[str, int]:
    """Relative path -> mtime_ns of every file under ``folder`` (without ``.imgsrv/`` if ``skip_state``)."""
    out = {}
    for d, dirs, names in os.walk(folder):
        if skip_state and ".imgsrv" in dirs:
            dirs.remove(".imgsrv")
        for n in names:
            p = Path(d) / n
            try:
                out[os.path.relpath(p, folder)] = p.stat().st_mtime_ns
            except FileNotFoundError:  # a temporary file renamed into place since the listing
                continue
    return out


def check_decodable(path: Path, size: tuple[int, int] | None = None) -> None:
    img = decode(path)
    if size is not None:
        h, w = img.shape[:2]
        assert (w, h) == size, f"{path} is {w}x{h}, expected {size[0]}x{size[1]}"


# -- servers on a given data root, and killing them -----------------------------------------------


def server_on(launcher: Launcher, data_root: Path, name: str, **settings) -> Server:
    """A server on an existing data root (a restart); the launcher stops it at the end of the session."""
    settings = {"workers": 2, **settings}
    log_path = data_root.parent / f"{name}.log"
    server = Server(data_root, log_path, settings)
    launcher.servers.append(server)
    server.wait_ready()
    return server


def kill_hard(server: Server) -> list[int]:
    """SIGKILL the server process and every process under it (its pool), at once; their pids."""
    root = psutil.Process(server.proc.pid)
    procs = [root] + root.children(recursive=True)
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
    server.proc.wait(timeout=10)
    return [p.pid for p in procs]


# -- the command line ----------------------------------------------------------------------------


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSRV_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli_args(*args: str) -> list[str]:
    return [sys.executable, "main.py", "run", *args]


def run_cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run(cli_args(*args), cwd=PROJECT_ROOT, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def summary_counts(text: str) -> dict[str, int]:
    """The counts of the CLI's summary: succeeded, failed, skipped."""
    out = {}
    for key in ("succeeded", "failed", "skipped"):
        m = re.search(rf"(\d+)\s+{key}", text)
        assert m, f"the summary does not say how many images {key}:\n{text}"
        out[key] = int(m.group(1))
    return out

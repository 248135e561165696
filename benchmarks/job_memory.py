#!/usr/bin/env python3
"""Server memory against job size: peak RSS of the server process while it runs a job over
N tiny generated images, for several N. Flat figures mean memory does not grow with the job.

    python benchmarks/job_memory.py --counts 10000,100000 [--out benchmarks/job-memory.md]

Each count gets a fresh data root under benchmarks/data/memory (kept between runs, so the
images are generated once). Loopback only; the server is stopped at the end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(HERE))

from bench import loadavg, machine_line, publish  # noqa: E402


def make_images(folder: Path, count: int) -> None:
    """``count`` 16x16 JPEGs in sub-folders of 1000 (a few distinct contents, written as bytes)."""
    marker = folder / f".complete-{count}"
    if marker.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(0)
    blobs = [cv2.imencode(".jpg", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))[1].tobytes() for _ in range(16)]
    for i in range(count):
        sub = folder / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"img_{i:07d}.jpg").write_bytes(blobs[i % len(blobs)])
    marker.touch()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(root: Path, count: int, workers: int) -> dict:
    src = root / "src"
    make_images(src, count)
    shutil.rmtree(root / "out", ignore_errors=True)
    shutil.rmtree(root / ".imgsrv", ignore_errors=True)
    port = free_port()
    env = {**os.environ, "IMGSRV_DATA_ROOT": str(root), "IMGSRV_WORKERS": str(workers), "IMGSRV_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "main.py", "--port", str(port)], cwd=PROJECT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(300):
                try:
                    if c.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            server = psutil.Process(proc.pid)
            before = server.memory_info().rss
            start = time.perf_counter()
            job = c.post("/jobs", json={"source": {"dir": "src", "pattern": "*.jpg", "recursive": True},
                                        "output_dir": "out", "operations": ["grayscale"]}).json()
            peak = before
            status_latency = []
            while True:
                peak = max(peak, server.memory_info().rss)
                t = time.perf_counter()
                info = c.get(f"/jobs/{job['id']}").json()
                status_latency.append(time.perf_counter() - t)
                if info["status"] not in ("queued", "running"):
                    break
                time.sleep(0.2)
            elapsed = time.perf_counter() - start
            assert info["succeeded"] == count, info
            return {"count": count, "rss_before_mb": before / 2**20, "rss_peak_mb": peak / 2**20,
                    "growth_mb": (peak - before) / 2**20, "seconds": elapsed, "images_per_s": count / elapsed,
                    "status_p95_ms": 1000 * sorted(status_latency)[int(0.95 * (len(status_latency) - 1))]}
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="10000,100000")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=str(HERE / "job-memory.md"), help="markdown report ('' to only print)")
    a = ap.parse_args()
    started, load_start = time.strftime("%Y-%m-%d %H:%M %Z"), loadavg()
    rows = []
    for n in (int(x) for x in a.counts.split(",")):
        r = measure(HERE / "data" / f"memory-{n}", n, a.workers)
        rows.append(r)
        print(f"{n:>8} images: server RSS {r['rss_before_mb']:.1f} MiB before, peak {r['rss_peak_mb']:.1f} MiB "
              f"(+{r['growth_mb']:.1f} MiB), {r['images_per_s']:.0f} images/s, "
              f"GET /jobs/{{id}} p95 {r['status_p95_ms']:.1f} ms", flush=True)
    lines = ["# Server memory against job size\n",
             f"Machine: {machine_line()}.  ",
             f"Date: {started}; load average {load_start} at the start, {loadavg()} at the end.  ",
             (f"Command: `python benchmarks/job_memory.py --counts {a.counts} --workers {a.workers}"
              + ("" if Path(a.out or ".").resolve() == HERE / "job-memory.md" else f" --out {a.out!r}") + "`\n"),
             ("| images (16x16 JPEGs, `grayscale`) | server RSS before (MiB) | peak during the job (MiB) | growth (MiB) "
              "| images/s | `GET /jobs/{id}` p95 while running (ms) |"),
             "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['count']:,} | {r['rss_before_mb']:.1f} | {r['rss_peak_mb']:.1f} | {r['growth_mb']:+.1f} | "
              f"{r['images_per_s']:,.0f} | {r['status_p95_ms']:.1f} |" for r in rows]
    publish("\n".join(lines) + "\n", a.out or None)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Server memory against job size: peak RSS of the server process while it runs a job over
N tiny generated images, for several N. Flat figures mean memory does not grow with the job.

    python benchmarks/job_memory.py --counts 10000,100000 [--out benchmarks/job-memory.md]

Each count gets its own data root under benchmarks/data/memory-N (kept between runs, so the
images are generated once). Loopback only; the server is stopped at the end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import psutil

from harness import DATA, HERE, Server, loadavg, machine_line, publish


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


def measure(root: Path, count: int, workers: int) -> dict:
    make_images(root / "src", count)
    shutil.rmtree(root / "out", ignore_errors=True)
    with Server(str(root), workers=workers) as server:
        c = server.client
        proc = psutil.Process(server.pid)
        before = proc.memory_info().rss
        start = time.perf_counter()
        job = c.post("/jobs", json={"source": {"dir": "src", "pattern": "*.jpg", "recursive": True},
                                    "output_dir": "out", "operations": ["grayscale"]}).json()
        peak = before
        status_latency = []
        while True:
            peak = max(peak, proc.memory_info().rss)
            t = time.perf_counter()
            info = c.get(f"/jobs/{job['id']}").json()
            status_latency.append(time.perf_counter() - t)
            if info["status"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - start
    if info["succeeded"] != count:
        raise RuntimeError(f"the job did not process every image: {info}")
    return {"count": count, "rss_before_mb": before / 2**20, "rss_peak_mb": peak / 2**20,
            "growth_mb": (peak - before) / 2**20, "seconds": elapsed, "images_per_s": count / elapsed,
            "status_p95_ms": 1000 * sorted(status_latency)[int(0.95 * (len(status_latency) - 1))]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="10000,100000")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=os.path.join(HERE, "job-memory.md"), help="markdown report ('' to only print)")
    a = ap.parse_args()
    started, load_start = time.strftime("%Y-%m-%d %H:%M %Z"), loadavg()
    rows = []
    for n in (int(x) for x in a.counts.split(",")):
        r = measure(Path(DATA) / f"memory-{n}", n, a.workers)
        rows.append(r)
        print(f"{n:>8} images: server RSS {r['rss_before_mb']:.1f} MiB before, peak {r['rss_peak_mb']:.1f} MiB "
              f"(+{r['growth_mb']:.1f} MiB), {r['images_per_s']:.0f} images/s, "
              f"GET /jobs/{{id}} p95 {r['status_p95_ms']:.1f} ms", flush=True)
    default_out = os.path.abspath(a.out or ".") == os.path.join(HERE, "job-memory.md")
    lines = ["# Server memory against job size\n",
             f"Machine: {machine_line()}.  ",
             f"Date: {started}; load average {load_start} at the start, {loadavg()} at the end.  ",
             (f"Command: `python benchmarks/job_memory.py --counts {a.counts} --workers {a.workers}"
              + ("" if default_out else f" --out {a.out!r}") + "`\n"),
             ("| images (16x16 JPEGs, `grayscale`) | server RSS before (MiB) | peak during the job (MiB) "
              "| growth (MiB) | images/s | `GET /jobs/{id}` p95 while running (ms) |"),
             "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['count']:,} | {r['rss_before_mb']:.1f} | {r['rss_peak_mb']:.1f} | {r['growth_mb']:+.1f} | "
              f"{r['images_per_s']:,.0f} | {r['status_p95_ms']:.1f} |" for r in rows]
    publish("\n".join(lines) + "\n", a.out or None)


if __name__ == "__main__":
    sys.exit(main())

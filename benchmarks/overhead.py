#!/usr/bin/env python3
"""Per-request overhead of ``POST /process`` with one small image, against the pure work.

    python benchmarks/overhead.py [--requests 2000] [--concurrency 16] [--executors process,thread]

The pure work is imgsrv's worker function (``run_task``) on the same task, timed in this
process (read, header probe, decode, operations, encode, atomic write with fsync). Then a
server (``python main.py`` on a free loopback port, a temporary data root holding one 64x64
JPEG) gets ``--requests`` requests from ``--concurrency`` concurrent clients (one keep-alive
connection each, the light HTTP/1.1 client of load.py); client k writes ``out/k.jpg``.

Reported, per executor:
- latency p50 / p90 / p99 at 16 concurrent clients, and p50 minus the work;
- throughput-derived overhead: cores x wall / requests - work, the core-milliseconds each
  request costs beyond the work (the client's own CPU, on the same 2 cores, is shown apart);
- server CPU per request (the server's process tree, user+system) minus the work's CPU;
- latency p50 with one client (no queueing) minus the work.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(1, PROJECT)

from bench import CORES, Server, TreeSampler, loadavg, machine_line, publish, table  # noqa: E402
from load import Conn, pct, run_loop  # noqa: E402

OPS = ["crop=bottom:8", "redact=0,-8,16,8", "quality=75"]  # the seed pipeline, scaled to 64x64


def small_jpeg(path: str) -> None:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    img = np.dstack([(xx * 4) % 256, (yy * 4) % 256, (xx + yy) * 2 % 256]).astype(np.uint8)
    img = cv2.add(img, rng.integers(0, 20, img.shape, dtype=np.uint8))
    cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 90])


_TASK = None


def pure_work(root: str, repeat: int) -> tuple[float, float, float]:
    """Median wall ms, mean CPU ms and median write-stage ms of run_task on the task a request makes."""
    global _TASK
    from app.operations import parse_operation
    from app.planning import build_pipeline, plan_images
    from app.worker import init_worker, run_task

    if _TASK is None:
        init_worker()
        pipe = build_pipeline([parse_operation(o) for o in OPS], "keep", 100_000_000)
        _TASK = plan_images([("small.jpg", "out/pure.jpg")], pipe, root, 100_000_000)[0].task
        for _ in range(20):
            run_task(_TASK)
    walls, writes = [], []
    c0 = time.process_time()
    for _ in range(repeat):
        t = time.perf_counter()
        rep = run_task(_TASK)
        walls.append((time.perf_counter() - t) * 1000)
        writes.append(rep.timings.get("write", 0.0))
        assert rep.status == "ok", rep
    cpu = (time.process_time() - c0) * 1000 / repeat
    return statistics.median(walls), cpu, statistics.median(writes)


async def load(url: str, requests: int, concurrency: int) -> tuple[list[float], float, float]:
    """Latencies (ms) of ``requests`` POST /process from ``concurrency`` clients; wall s; client CPU s."""
    latencies: list[float] = []
    remaining = requests
    conns = [Conn(url, 60) for _ in range(concurrency)]

    async def client(k: int) -> None:
        nonlocal remaining
        body = {"images": [{"input": "small.jpg", "output": f"out/{k}.jpg"}], "operations": OPS}
        while remaining > 0:
            remaining -= 1
            t = time.perf_counter()
            r = await conns[k].post("/process", body)
            latencies.append((time.perf_counter() - t) * 1000)
            if r.status_code != 200 or r.json()["summary"]["succeeded"] != 1:
                raise RuntimeError(f"POST /process answered {r.status_code}: {r.text[:500]}")

    try:
        c0 = time.process_time()
        t = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(concurrency)))
        wall = time.perf_counter() - t
        cpu = time.process_time() - c0
    finally:
        for conn in conns:
            await conn.close()
    return latencies, wall, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--executors", default="process,thread")
    ap.add_argument("--out", default=os.path.join(HERE, "overhead.md"))
    a = ap.parse_args(argv)
    args = sys.argv[1:] if argv is None else argv
    command = "python benchmarks/overhead.py" + (" " + shlex.join(args) if args else "")
    load_start = loadavg()
    os.makedirs(os.path.join(HERE, "data", "runs"), exist_ok=True)
    root = os.path.realpath(tempfile.mkdtemp(prefix="overhead-", dir=os.path.join(HERE, "data", "runs")))
    rows = []
    try:
        small_jpeg(os.path.join(root, "small.jpg"))
        for executor in [e.strip() for e in a.executors.split(",") if e.strip()]:
            with Server(root, executor=executor) as server:
                run_loop(load(server.url, 200, a.concurrency))  # warm-up: workers started, code paths hot
                # The work is timed right before and right after the load: its write stage (fsync) varies
                # with the disk's other traffic, so it is measured in the same minute as the requests.
                before = pure_work(root, 300)
                single, _w, _c = run_loop(load(server.url, 300, 1))
                sampler = TreeSampler(server.proc.pid)
                cpu0, _f = sampler.cpu()
                lat, wall, client_cpu = run_loop(load(server.url, a.requests, a.concurrency))
                cpu1, _f = sampler.cpu()
                after = pure_work(root, 300)
            work_ms = (before[0] + after[0]) / 2
            work_cpu_ms = (before[1] + after[1]) / 2
            write_ms = (before[2] + after[2]) / 2
            rate = a.requests / wall
            p50 = pct(lat, 50)
            per_req = CORES * wall * 1000 / a.requests
            server_cpu = (cpu1 - cpu0) * 1000 / a.requests
            row = [executor, f"{work_ms:.2f} ({write_ms:.2f})", f"{rate:.0f}", f"{p50:.1f}", f"{pct(lat, 90):.1f}",
                   f"{pct(lat, 99):.1f}", f"{p50 - work_ms:.1f}", f"{per_req - work_ms:.2f}",
                   f"{per_req - work_ms - client_cpu * 1000 / a.requests:.2f}",
                   f"{server_cpu - work_cpu_ms:.2f}", f"{client_cpu * 1000 / a.requests:.2f}",
                   f"{pct(single, 50) - work_ms:.2f}"]
            rows.append(row)
            print(f"{executor}: work {work_ms:.2f} ms (write {write_ms:.2f}), {rate:.0f} requests/s, p50 {p50:.1f} ms, "
                  f"throughput overhead {per_req - work_ms:.2f} core-ms/request, 1 client p50 - work "
                  f"{pct(single, 50) - work_ms:.2f} ms", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    md = (f"## POST /process overhead: one 64x64 JPEG, {a.concurrency} concurrent clients, {a.requests} requests\n\n"
          f"Machine: {machine_line()}.  \nLoad average {load_start} at the start, {loadavg()} at the end.  \n"
          f"Command: `{command}`. Operations: `{', '.join(OPS)}`.\n\n"
          + table(rows, ["executor", "work ms (write)", "requests/s", "p50 ms", "p90 ms", "p99 ms", "p50 - work",
                         f"overhead: {CORES} x wall/req - work", "same, minus client CPU",
                         "server CPU/req - work CPU", "client CPU ms/req", "1 client: p50 - work"])
          + "\n\nAll in ms per request. work: run_task of the same task in this process (median of 300 "
            "right before and 300 right after the load; in brackets its write stage, the atomic write with "
            "fsync). "
          + f"At {a.concurrency} clients on {CORES} workers a request waits behind "
            f"about {a.concurrency // CORES - 1} others, so p50 - work is mostly queueing; the throughput-derived "
            f"figure ({CORES} cores x wall / requests - work) is the cost each request adds, and it includes the "
            "load generator's own CPU (same machine), shown apart.\n")
    publish(md, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

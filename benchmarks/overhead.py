#!/usr/bin/env python3
"""Per-request overhead of ``POST /process`` with one small image, against the pure work.

    python benchmarks/overhead.py [--requests 2000] [--concurrency 16] [--executors process,thread]

A server (``python main.py`` on a free loopback port, a temporary data root holding one 64x64
JPEG) gets ``--requests`` requests from ``--concurrency`` concurrent clients (one keep-alive
connection each, the light HTTP/1.1 client of harness.py); client k writes ``out/k.jpg``.

The pure work is the worker's own time for the image, as the server reports it: the
``elapsed_ms`` of each answer (read, header probe, decode, operations, encode, atomic write
with fsync) while one client sends 300 requests in sequence, right before and right after the
load (median, and mean). Its write stage is the mean of
``imgsrv_operation_duration_seconds{operation="write"}`` (GET /metrics) over the same
requests; its CPU is the pool's over those requests (the worker processes, or with the thread
executor the server's threads besides the event loop's).

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
import shutil
import statistics
import sys
import tempfile
import time

import psutil

from harness import (CORES, RUNS, Conn, Server, TreeSampler, command_line, cpu_split, loadavg, machine_line, pct,
                     publish, read_metrics, run_loop, stage_seconds, table)

OPS = ["crop=bottom:8", "redact=0,-8,16,8", "quality=75"]  # the seed pipeline, scaled to 64x64


def small_jpeg(path: str) -> None:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    img = np.dstack([(xx * 4) % 256, (yy * 4) % 256, (xx + yy) * 2 % 256]).astype(np.uint8)
    img = cv2.add(img, rng.integers(0, 20, img.shape, dtype=np.uint8))
    cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 90])


async def load(url: str, requests: int, concurrency: int, headers: dict[str, str] | None = None
               ) -> tuple[list[float], list[float], float, float]:
    """``requests`` POST /process from ``concurrency`` clients: latencies (ms), the answers'
    elapsed_ms (the worker's own time), wall s, client CPU s."""
    latencies: list[float] = []
    work: list[float] = []
    remaining = requests
    conns = [Conn(url, 60, headers) for _ in range(concurrency)]

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
            work.append(r.json()["results"][0]["elapsed_ms"])

    try:
        c0 = time.process_time()
        t = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(concurrency)))
        wall = time.perf_counter() - t
        cpu = time.process_time() - c0
    finally:
        for conn in conns:
            await conn.close()
    return latencies, work, wall, cpu


def pool_cpu(server: Server, executor: str) -> float:
    """CPU seconds of the workers: the server's descendants, or with the thread executor the
    server process's threads other than its main (event loop) thread."""
    if executor == "process":
        return cpu_split(server.pid)[1]
    return sum(t.user_time + t.system_time for t in psutil.Process(server.pid).threads() if t.id != server.pid)


BENCH_SECRET = "overhead-benchmark-secret"


def pure_work(server: Server, executor: str, headers: dict[str, str] | None, repeat: int = 300) -> dict:
    """One client, ``repeat`` requests in sequence: the worker's time (median elapsed_ms), its
    write stage (mean, GET /metrics), its CPU per request, and the latencies."""
    write0, cpu0 = stage_seconds(read_metrics(server.url, headers=headers))["write"], pool_cpu(server, executor)
    latencies, work, _wall, _cpu = run_loop(load(server.url, repeat, 1, headers))
    write1, cpu1 = stage_seconds(read_metrics(server.url, headers=headers))["write"], pool_cpu(server, executor)
    return {"ms": statistics.median(work), "mean_ms": statistics.mean(work),
            "write_ms": 1000 * (write1[0] - write0[0]) / (write1[1] - write0[1]),
            "cpu_ms": 1000 * (cpu1 - cpu0) / repeat, "latencies": latencies}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--executors", default="process,thread")
    ap.add_argument("--api-key", action="store_true",
                    help="each executor again on a server with IMGSRV_API_KEYS, every request with its key")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "overhead.md"))
    a = ap.parse_args(argv)
    command = command_line("overhead.py", argv)
    load_start = loadavg()
    os.makedirs(RUNS, exist_ok=True)
    root = os.path.realpath(tempfile.mkdtemp(prefix="overhead-", dir=RUNS))
    rows = []
    try:
        small_jpeg(os.path.join(root, "small.jpg"))
        runs = list(dict.fromkeys((e.strip(), keyed) for e in a.executors.split(",") if e.strip()
                                  for keyed in (False, a.api_key)))
        for executor, keyed in runs:
            headers = {"Authorization": f"Bearer {BENCH_SECRET}"} if keyed else None
            env = {"IMGSRV_API_KEYS": f"bench:{BENCH_SECRET}"} if keyed else None
            label = f"{executor}, API key" if keyed else executor
            with Server(root, env=env, executor=executor) as server:
                run_loop(load(server.url, 200, a.concurrency, headers))  # warm-up: workers started, code paths hot
                # The work is timed right before and right after the load: its write stage (fsync) varies
                # with the disk's other traffic, so it is measured in the same minute as the requests.
                before = pure_work(server, executor, headers)
                sampler = TreeSampler(server.pid)
                cpu0, _f = sampler.cpu()
                lat, _work, wall, client_cpu = run_loop(load(server.url, a.requests, a.concurrency, headers))
                cpu1, _f = sampler.cpu()
                after = pure_work(server, executor, headers)
            work_ms, work_mean, write_ms, work_cpu_ms = ((before[k] + after[k]) / 2
                                                        for k in ("ms", "mean_ms", "write_ms", "cpu_ms"))
            rate = a.requests / wall
            p50, single_p50 = pct(lat, 50), pct(before["latencies"], 50)
            per_req = CORES * wall * 1000 / a.requests
            server_cpu = (cpu1 - cpu0) * 1000 / a.requests
            rows.append([label, f"{work_ms:.2f} ({work_mean:.2f}; {write_ms:.2f})", f"{rate:.0f}", f"{p50:.1f}",
                         f"{pct(lat, 90):.1f}", f"{pct(lat, 99):.1f}", f"{p50 - work_ms:.1f}",
                         f"{per_req - work_ms:.2f}", f"{per_req - work_ms - client_cpu * 1000 / a.requests:.2f}",
                         f"{server_cpu - work_cpu_ms:.2f}", f"{client_cpu * 1000 / a.requests:.2f}",
                         f"{single_p50 - work_ms:.2f}"])
            print(f"{label}: work {work_ms:.2f} ms (mean {work_mean:.2f}, write {write_ms:.2f}, "
                  f"CPU {work_cpu_ms:.2f}), {rate:.0f} requests/s, p50 {p50:.1f} ms, "
                  f"throughput overhead {per_req - work_ms:.2f} core-ms/request, "
                  f"1 client p50 - work {single_p50 - work_ms:.2f} ms", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    md = (f"## POST /process overhead: one 64x64 JPEG, {a.concurrency} concurrent clients, {a.requests} requests\n\n"
          f"Machine: {machine_line()}.  \nLoad average {load_start} at the start, {loadavg()} at the end.  \n"
          f"Command: `{command}`. Operations: `{', '.join(OPS)}`.\n\n"
          + table(rows, ["executor", "work ms p50 (mean; write mean)", "requests/s", "p50 ms", "p90 ms", "p99 ms",
                         "p50 - work", f"overhead: {CORES} x wall/req - work", "same, minus client CPU",
                         "server CPU/req - work CPU", "client CPU ms/req", "1 client: p50 - work"])
          + "\n\nAll in ms per request. work: the worker's own time for the image (`elapsed_ms` in the answers; "
            "median of 300 requests from one client right before and 300 right after the load, which the other "
            "columns subtract; in brackets their mean, and the mean of its write stage, the atomic write with "
            "fsync, from `imgsrv_operation_duration_seconds` in GET /metrics, which gives sums, hence means); "
            "work CPU: the pool's CPU over those requests. "
          + f"At {a.concurrency} clients on {CORES} workers a request waits behind "
            f"about {a.concurrency // CORES - 1} others, so p50 - work is mostly queueing; the throughput-derived "
            f"figure ({CORES} cores x wall / requests - work) is the cost each request adds, and it includes the "
            "load generator's own CPU (same machine), shown apart.\n")
    publish(md, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

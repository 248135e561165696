#!/usr/bin/env python3
"""W1 (the seed pipeline) on a two-worker local Dask cluster against the local process pool,
on the same files in the same run, and an estimate for 270,000 images on 1, 4 and 16 machines.

    python benchmarks/dask_bench.py [--count 64] [--rounds 2] [--out benchmarks/dask.md]

The cluster is `dask scheduler` plus two `dask worker` processes (one thread each) on this
machine, with imgsrv's code importable (PYTHONPATH); both methods are `python main.py run`
with --no-skip, alternating per round. images/s comes from the CLI's own summary.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from harness import (CORES, HERE, PROJECT, SIZE, WORKLOADS, free_port, kill_tree, loadavg, machine_line, prepare_data,
                     publish, run_cli, scratch_dir)

SEED_IMAGES = 270_000


def _run(src: str, executor: str) -> float:
    """images/s of W1 through the CLI with this executor."""
    with scratch_dir("dask-bench") as out:
        return run_cli(WORKLOADS["W1"].ops, src, out, executor=executor).rate


def _out_arg(out: str) -> str:
    """The --out part of the command line, when it is not the default."""
    return "" if os.path.abspath(out or "") == os.path.join(HERE, "dask.md") else f" --out {out!r}"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes >= 10 else f"{minutes:.1f} min"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "dask.md"), help="markdown report ('' to only print)")
    a = ap.parse_args()
    started, load_start = time.strftime("%Y-%m-%d %H:%M %Z"), loadavg()
    src = prepare_data(a.count, 0)
    dask = shutil.which("dask", path=os.path.dirname(sys.executable)) or "dask"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": PROJECT}
    log = open(os.path.join(tempfile.gettempdir(), "imgsrv-dask-bench.log"), "wb")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              env=env, stdout=log, stderr=log)]
    time.sleep(2)
    procs += [subprocess.Popen([dask, "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1", "--nworkers", "1",
                                "--no-dashboard"], env=env, stdout=log, stderr=log) for _ in range(2)]
    try:
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{port}", timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        results: dict[str, list[float]] = {"local process pool": [], "Dask, 2 local workers": []}
        for r in range(a.rounds):
            order = list(results) if r % 2 == 0 else list(reversed(results))
            for name in order:
                ex = "process" if name.startswith("local") else f"dask://127.0.0.1:{port}"
                results[name].append(_run(src, ex))
                print(f"round {r + 1} {name}: {results[name][-1]:.1f} images/s", flush=True)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                kill_tree(p.pid)
        log.close()
    local, dsk = max(results["local process pool"]), max(results["Dask, 2 local workers"])
    lines = ["# Dask against the local pool (W1)\n",
             f"Machine: {machine_line()}.  ",
             f"Date: {started}; load average {load_start} at the start, {loadavg()} at the end.  ",
             f"Command: `python benchmarks/dask_bench.py --count {a.count} --rounds {a.rounds}{_out_arg(a.out)}`\n",
             f"W1, {a.count} images of {SIZE[0]}x{SIZE[1]}, best of {a.rounds} rounds, {CORES} cores:\n",
             "| executor | images/s | relative |", "|---|---:|---:|",
             f"| local process pool ({CORES} workers) | {local:.1f} | 1.00 |",
             f"| Dask, scheduler + 2 workers on the same machine | {dsk:.1f} | {dsk / local:.2f} |",
             (f"\nFrom those measured rates, {SEED_IMAGES:,} seed images take (linear: it assumes the shared "
              "filesystem and the one scheduler keep up, which this benchmark does not measure):\n"),
             (f"| {CORES}-core machines | at {dsk:.1f} images/s each (measured through Dask) | at {local:.1f} (the "
              "local pool's rate, the bound when the scheduler runs elsewhere) |"),
             "|---:|---:|---:|"]
    lines += [f"| {n} | {_duration(SEED_IMAGES / (dsk * n))} | {_duration(SEED_IMAGES / (local * n))} |"
              for n in (1, 4, 16)]
    publish("\n".join(lines) + "\n", a.out or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

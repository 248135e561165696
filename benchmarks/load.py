#!/usr/bin/env python3
"""Load test of ``POST /process``: sustained load with bad requests mixed in, then overload.

    python benchmarks/load.py                  # 60 s at 64 clients, then 30 s at twice the capacity
    python benchmarks/load.py --quick          # 15 s, then 10 s
    python benchmarks/load.py --url http://127.0.0.1:8888 --data-root DIR   # a server already running
    python benchmarks/load.py --size 1600x1200 --out benchmarks/load-large.md  # the pool as bottleneck

Everything stays on loopback, every phase is bounded in time and in requests, and the
script stops by itself (a hard wall-clock limit cancels whatever is left).

Set-up: unless ``--url`` is given, the script starts ``python main.py --port FREE`` itself,
with ``IMGSRV_DATA_ROOT`` a fresh folder under benchmarks/data/runs/ holding a few small
JPEGs (320x240, made from testimages/) and an ``out/`` folder, and a temporary
``IMGSRV_STATE_DIR``. With ``--url``, the inputs are written into ``--data-root`` (which
must be that server's data root) under ``load-inputs/``, outputs go to ``load-out/``, and both
are removed at the end; memory and files are measured when the server runs on this machine
(found by its listening port).

Phase 0 (reference): one client, sequential requests: latency with no queueing.

Phase 1 (sustained load): ``--clients`` (64) closed-loop clients (one keep-alive connection
each; a minimal HTTP/1.1 client on asyncio streams and uvloop, ``Conn`` in harness.py) for
``--duration`` seconds (60; 15 with --quick), after a warm-up. Each request is
``POST /process`` with one small image; a good request runs one of a few small pipelines and
writes to the client's own output name. ``--bad`` (10 %) of requests are
deliberately bad, in turn: an unknown operation (expected 422), an input outside the data
root (403), a missing input (200 with the image's result ``error``/``not_found``). Every
answer is checked against what its kind expects; anything else (another status, a 5xx, a
body that does not match, a transport error or timeout) is an unexpected error, and the
target is 0. Reported: requests by status, unexpected errors, latency p50/p95/p99 of the
good requests, throughput, and the server's RSS and open files (num_fds), summed over the
server process and its pool (the fork server and its children), idle before and idle after
the load (client connections closed), with the growth in %.

Phase 2 (overload): a second server with ``IMGSRV_MAX_QUEUE=--queue`` (8) gets an open-loop
stream of requests (Poisson arrivals, same mix, fixed seed) at ``--factor`` (2) times the
throughput measured in phase 1, for ``--overload-duration`` seconds (30; 10 with --quick).
Latency is measured from the moment each request was due (so a late load generator cannot
hide queueing). Reported: offered and achieved rates, answers by status, how fast the 429s
come back (p50/p99 ms, every one with Retry-After), and the latency of the accepted good
requests next to phase 1's and the single client's.

With the default 320x240 inputs the HTTP front end (one event loop) costs more per request
than the image, so the capacity measured is the front end's; larger inputs (``--size``) make
the worker pool the bottleneck, which is what ``IMGSRV_MAX_QUEUE`` guards. A note under the
tables says when the front end or the load generator was the limit.

After every phase the server must still answer /health, its queue-depth gauge must return to
0, no temporary file may be left in the output folder and its log must hold no error.
The result is a markdown report printed and written to --out (default benchmarks/load.md).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from harness import (CORES, HERE, PROJECT, RUNS, Conn, Server, TransportError, TreeSampler, TreeState, busy_others,
                     command_line, cpu_split, loadavg, log_problems, machine_busy, machine_line, ms, pct,
                     pid_listening_on, proc_stat, publish, read_metrics, run_loop, table, tree_state)

SOURCES = ["coffee.jpg", "chelsea.jpg", "astronaut.jpg", "grace_hopper.jpg", "cyclo1.jpg", "cyclo2.jpg"]
SIZE = (320, 240)  # --size WxH changes it
# Small, realistic pipelines; a good request uses one of them in turn.
PIPELINES = [
    ["resize=0.5", "quality=80"],
    ["crop=bottom:20", "redact=0,-20,40,20", "quality=75"],
    ["grayscale", "resize=0.5", "quality=80"],
]
BAD_KINDS = ("unknown_op", "outside", "missing")
EXPECTED = {"good": 200, "unknown_op": 422, "outside": 403, "missing": 200}
TEMP_PREFIX = ".imgsrv-tmp-"
ALLOW_503 = False  # set when phase 2 runs with --limit-concurrency: uvicorn answers 503 beyond it


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def make_inputs(folder: str, count: int) -> list[str]:
    """``count`` 320x240 JPEGs (quality 90) cut from the project's photos; their names."""
    import cv2

    os.makedirs(folder, exist_ok=True)
    names = []
    for i in range(count):
        src = cv2.imread(os.path.join(PROJECT, "testimages", SOURCES[i % len(SOURCES)]), cv2.IMREAD_COLOR)
        h, w = src.shape[:2]
        # a different 4:3 window for each repeat of a photo
        k = i // len(SOURCES)
        cw = min(w, h * 4 // 3) - 16 * k
        ch = cw * 3 // 4
        x0, y0 = (w - cw) // 2 + 8 * k, (h - ch) // 2
        crop = src[y0:y0 + ch, x0:x0 + cw]
        img = cv2.resize(crop, SIZE, interpolation=cv2.INTER_AREA if SIZE[0] <= cw else cv2.INTER_CUBIC)
        name = f"img{i}.jpg"
        cv2.imwrite(os.path.join(folder, name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        names.append(name)
    return names


# ---------------------------------------------------------------------------------------------
# Requests and their checks
# ---------------------------------------------------------------------------------------------

class Mix:
    """Which request comes next: every 1/bad-th request is bad, the bad kinds in turn."""

    def __init__(self, inputs: list[str], in_dir: str, out_dir: str, bad: float):
        self.inputs, self.in_dir, self.out_dir = inputs, in_dir, out_dir
        self.every = round(1 / bad) if bad > 0 else 0
        self.n = 0

    def next(self, out_name: str) -> tuple[str, dict]:
        i = self.n
        self.n += 1
        inp = f"{self.in_dir}/{self.inputs[i % len(self.inputs)]}"
        out = f"{self.out_dir}/{out_name}.jpg"
        if self.every and i % self.every == self.every - 1:
            kind = BAD_KINDS[(i // self.every) % len(BAD_KINDS)]
            if kind == "unknown_op":
                return kind, {"images": [{"input": inp, "output": out}], "operations": ["emboss=3", "quality=80"]}
            if kind == "outside":
                return kind, {"images": [{"input": "../../../etc/hostname", "output": out}],
                              "operations": PIPELINES[0]}
            return kind, {"images": [{"input": f"{self.in_dir}/missing_{i}.jpg", "output": out}],
                          "operations": PIPELINES[0]}
        return "good", {"images": [{"input": inp, "output": out}], "operations": PIPELINES[i % len(PIPELINES)]}


def check(kind: str, r) -> str | None:
    """None when the answer is what a request of this kind expects (429 allowed), else why not."""
    try:
        if r.status_code == 503 and ALLOW_503:
            return None
        if r.status_code == 429:
            if not r.headers.get("retry-after", "").isdigit():
                return "429 without a numeric Retry-After"
            body = r.json()
            return None if body.get("code") == "queue_full" else f"429 body {r.text[:200]}"
        want = EXPECTED[kind]
        if r.status_code != want:
            return f"{kind}: status {r.status_code} (expected {want}): {r.text[:300]}"
        body = r.json()
        if kind == "good":
            res = body["results"][0]
            if res["status"] != "ok" or body["summary"]["succeeded"] != 1 or not res["outputs"]:
                return f"good: result {res['status']} {res.get('error')}"
            o = res["outputs"][0]
            if not (0 < o["width"] <= SIZE[0] and 0 < o["height"] <= SIZE[1] and o["bytes"] > 0):
                return f"good: output {o}"
        elif kind == "missing":
            res = body["results"][0]
            if res["status"] != "error" or (res.get("error") or {}).get("code") != "not_found":
                return f"missing: result {res}"
        elif kind == "unknown_op":
            if not any(str(d.get("field", "")).startswith("operations[0]") for d in body["detail"]):
                return f"unknown_op: field not named: {r.text[:300]}"
        elif kind == "outside":
            if not any(d.get("field") == "images[0].input" for d in body["detail"]):
                return f"outside: field not named: {r.text[:300]}"
    except Exception as exc:  # a body that is not the documented JSON
        return f"{kind}: status {r.status_code}, unreadable body ({type(exc).__name__}: {exc}): {r.text[:200]}"
    return None


@dataclass
class Tally:
    """Outcomes of a phase."""

    statuses: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    good_ms: list[float] = field(default_factory=list)  # good requests answered 200
    work_ms: list[float] = field(default_factory=list)  # their image's elapsed_ms (the worker's own time)
    refused_ms: list[float] = field(default_factory=list)  # 429 answers
    unexpected: Counter = field(default_factory=Counter)  # reason -> count
    transport: Counter = field(default_factory=Counter)  # exception type -> count
    samples: list[str] = field(default_factory=list)
    requests: int = 0
    wall: float = 0.0
    client_cpu: float = 0.0

    def add(self, kind: str, r, ms: float) -> None:
        self.requests += 1
        self.kinds[kind] += 1
        self.statuses[r.status_code] += 1
        why = check(kind, r)
        if why is not None:
            self.unexpected[why.split(":")[0] + (f" {r.status_code}" if r.status_code >= 500 else "")] += 1
            if len(self.samples) < 10:
                self.samples.append(why)
        elif r.status_code in (429, 503):
            self.refused_ms.append(ms)
        elif kind == "good":
            self.good_ms.append(ms)
            with contextlib.suppress(Exception):
                self.work_ms.append(float(r.json()["results"][0]["elapsed_ms"]))

    async def post(self, conn: Conn, kind: str, body: dict, since: float) -> None:
        """POST one request on ``conn`` and tally its answer; the latency counts from ``since``."""
        try:
            r = await conn.post("/process", body)
        except TransportError as exc:
            self.failed(kind, exc)
            return
        self.add(kind, r, (time.perf_counter() - since) * 1000)

    def failed(self, kind: str, exc: BaseException) -> None:
        self.requests += 1
        self.kinds[kind] += 1
        name = type(exc).__name__
        self.transport[name] += 1
        if len(self.samples) < 10:
            self.samples.append(f"{kind}: {name}: {exc}")

    @property
    def errors(self) -> int:
        return sum(self.unexpected.values()) + sum(self.transport.values())


# ---------------------------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------------------------

async def closed_loop(url: str, mix: Mix, clients: int, duration: float, timeout: float) -> Tally:
    """``clients`` clients, each with one keep-alive connection, each sending its next request when
    the last is answered."""
    tally = Tally()
    conns = [Conn(url, timeout) for _ in range(clients)]
    try:
        end = time.perf_counter() + duration

        async def client(k: int) -> None:
            conn = conns[k]
            while time.perf_counter() < end:
                kind, body = mix.next(f"c{k}")
                await tally.post(conn, kind, body, time.perf_counter())

        c0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        tally.wall, tally.client_cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        for conn in conns:
            await conn.close()
    return tally


async def open_loop(url: str, mix: Mix, rate: float, duration: float, timeout: float, max_inflight: int,
                    seed: int) -> tuple[Tally, dict]:
    """Poisson arrivals at ``rate``/s for ``duration`` s, whatever the answers; latency from the due time.

    Each request in flight holds a slot: a connection and an output name of its own.
    """
    tally = Tally()
    rng = random.Random(seed)
    conns = [Conn(url, timeout) for _ in range(max_inflight)]
    free = list(range(max_inflight))  # slots not in use by a request in flight
    tasks: set[asyncio.Task] = set()
    lags: list[float] = []
    stats = {"dropped": 0, "unfinished": 0, "offered": 0, "max_inflight": 0}
    try:
        async def one(kind: str, body: dict, due: float, slot: int) -> None:
            try:
                await tally.post(conns[slot], kind, body, due)
            finally:
                free.append(slot)

        c0 = time.process_time()
        t0 = time.perf_counter()
        due = t0
        while True:
            due += rng.expovariate(rate)
            if due - t0 >= duration:
                break
            stats["offered"] += 1
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append((time.perf_counter() - due) * 1000)
            if not free:  # the generator's own bound: never more than max_inflight requests in flight
                stats["dropped"] += 1
                continue
            slot = free.pop()
            stats["max_inflight"] = max(stats["max_inflight"], max_inflight - len(free))
            kind, body = mix.next(f"p{slot}")
            task = asyncio.create_task(one(kind, body, due, slot))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent_wall = time.perf_counter() - t0
        if tasks:
            _done, pending = await asyncio.wait(set(tasks), timeout=timeout + 5)
            for task in pending:
                task.cancel()
            stats["unfinished"] = len(pending)
        tally.wall, tally.client_cpu = sent_wall, time.process_time() - c0
    finally:
        for conn in conns:
            await conn.close()
    stats["lag_p50"], stats["lag_p99"] = pct(lags, 50), pct(lags, 99)
    return tally, stats


async def sequential(url: str, mix: Mix, count: int, timeout: float) -> Tally:
    tally = Tally()
    conn = Conn(url, timeout)
    try:
        t0 = time.perf_counter()
        for _ in range(count):
            kind, body = mix.next("seq")
            await tally.post(conn, kind, body, time.perf_counter())
        tally.wall = time.perf_counter() - t0
    finally:
        await conn.close()
    return tally


def health_after(url: str, out_root: str) -> dict:
    """The server still answers, nothing is left queued, no temporary file is left behind."""
    import httpx

    info: dict = {}
    deadline = time.monotonic() + 10
    while True:
        try:
            t = time.perf_counter()
            h = httpx.get(url + "/health", timeout=5)
            info["health"] = f"{h.status_code} in {(time.perf_counter() - t) * 1000:.0f} ms"
            metrics = read_metrics(url)
            info["queue_depth"] = metrics.get("imgsrv_queue_depth", {}).get("")
            info["restarts"] = metrics.get("imgsrv_worker_restarts_total", {}).get("")
        except httpx.HTTPError as exc:
            info["health"] = f"{type(exc).__name__}: {exc}"
            info["queue_depth"] = None
        if info.get("queue_depth") == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    info["temp_files"] = sum(1 for _d, _s, files in os.walk(out_root) for f in files if f.startswith(TEMP_PREFIX))
    return info


def server_times(path: str, offset: int) -> dict[int, list[float]]:
    """Per status, the milliseconds the server's own log line gives for each POST /process from ``offset`` on."""
    out: dict[int, list[float]] = {}
    with contextlib.suppress(OSError):
        with open(path, errors="replace") as fh:
            fh.seek(offset)
            for line in fh:
                m = re.search(r" POST /process (\d{3}) ([\d.]+) ms$", line.rstrip())
                if m:
                    out.setdefault(int(m.group(1)), []).append(float(m.group(2)))
    return out


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def cpu_row(c0, c1, requests: int, wall: float, client_cpu: float) -> str:
    client = f"load generator {client_cpu * 1000 / max(1, requests):.2f} ms ({client_cpu * 100 / wall:.0f} % of a core)"
    if c0 is None or c1 is None:
        return client
    main_s, pool_s = c1[0] - c0[0], c1[1] - c0[1]
    return (f"server process {main_s * 1000 / max(1, requests):.2f} ms ({main_s * 100 / wall:.0f} % of a core), "
            f"pool {pool_s * 1000 / max(1, requests):.2f} ms ({pool_s * 100 / wall:.0f} %), " + client)


def by_status(t: Tally) -> str:
    parts = [f"{code}: {n}" for code, n in sorted(t.statuses.items())]
    parts += [f"{name}: {n}" for name, n in sorted(t.transport.items())]
    return ", ".join(parts) or "none"


def growth(before: TreeState | None, after: TreeState | None, attr: str) -> str:
    if before is None or after is None:
        return "n/a (server not on this machine)"
    b, a = getattr(before, attr), getattr(after, attr)
    pct_ = growth_pct(before, after, attr)
    if attr == "rss":
        return f"{b / 2 ** 20:.1f} MB -> {a / 2 ** 20:.1f} MB ({pct_:+.1f} %)"
    return f"{b} -> {a} ({pct_:+.1f} %)"


def growth_pct(before: TreeState | None, after: TreeState | None, attr: str) -> float:
    if before is None or after is None or not getattr(before, attr):
        return float("nan")
    return (getattr(after, attr) - getattr(before, attr)) * 100.0 / getattr(before, attr)


def verdict(ok: bool) -> str:
    return "yes" if ok else "**NO**"


def main(argv: list[str] | None = None) -> int:
    global ALLOW_503, SIZE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="phase 1 for 15 s, phase 2 for 10 s")
    ap.add_argument("--duration", type=float, help="seconds of phase 1 (default 60; 15 with --quick)")
    ap.add_argument("--overload-duration", type=float, help="seconds of phase 2 (default 30; 10 with --quick)")
    ap.add_argument("--clients", type=int, default=64, help="concurrent clients in phase 1 (default 64)")
    ap.add_argument("--bad", type=float, default=0.10, help="share of deliberately bad requests (default 0.10)")
    ap.add_argument("--factor", default="2", help="phase 2 offers this times phase 1's throughput; a comma "
                    "list (1.5,2) runs one after another on the same server (default 2)")
    ap.add_argument("--rate", type=float, help="phase 2 offers this many requests/s instead (overrides --factor; "
                    "for comparing servers at the same rate)")
    ap.add_argument("--queue", type=int, default=8, help="IMGSRV_MAX_QUEUE of the phase 2 server (default 8)")
    ap.add_argument("--limit-concurrency", type=int,
                    help="phase 2 server: IMGSRV_LIMIT_CONCURRENCY (uvicorn answers 503 beyond that many "
                         "connections or requests; 503 then counts as an expected refusal, like 429)")
    ap.add_argument("--workers", type=int, help="IMGSRV_WORKERS of the servers started (default: the server's)")
    ap.add_argument("--size", default="320x240", help="size of the generated inputs, WxH (default 320x240; "
                    "larger images make the worker pool, not the HTTP front end, the bottleneck)")
    ap.add_argument("--images", type=int, default=6, help="small input JPEGs generated (default 6)")
    ap.add_argument("--max-inflight", type=int, default=512, help="phase 2: most requests in flight (default 512)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the phase 2 arrival times")
    ap.add_argument("--url", help="use this running server (loopback only) instead of starting one")
    ap.add_argument("--data-root", help="with --url: that server's IMGSRV_DATA_ROOT (inputs are written there)")
    ap.add_argument("--no-overload", action="store_true", help="skip phase 2")
    ap.add_argument("--server-script", default="main.py",
                    help="what `python SCRIPT --port P` starts, relative to the project (default main.py; "
                         "for trying a patched server side by side)")
    ap.add_argument("--out", default=os.path.join(HERE, "load.md"), help="markdown report (default benchmarks/load.md)")
    a = ap.parse_args(argv)
    command = command_line("load.py", argv)
    duration = a.duration or (15.0 if a.quick else 60.0)
    overload_duration = a.overload_duration or (10.0 if a.quick else 30.0)
    warmup = 3.0 if a.quick else 5.0
    try:
        w, h = (int(x) for x in a.size.lower().split("x"))
        SIZE = (w, h)
    except ValueError:
        ap.error("--size must be WxH, e.g. 320x240")
    factors = [float(f) for f in a.factor.split(",") if f.strip()]
    if a.rate:
        factors = [0.0]  # one run at --rate
    if a.url:
        host = urlsplit(a.url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            ap.error("--url must be a loopback address (127.0.0.1, localhost, ::1)")
        if not a.data_root:
            ap.error("--url needs --data-root (the server's IMGSRV_DATA_ROOT), where the inputs are written")
    # Hard limit: whatever happens, the script ends.
    hard_limit = duration + len(factors) * (overload_duration + a.timeout) + warmup + 4 * a.timeout + 240
    timer = threading.Timer(hard_limit, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.daemon = True
    timer.start()

    started = _dt.datetime.now().astimezone()
    load_start = loadavg()
    others_start = busy_others()
    print(f"load average at start: {load_start}; other processes over 10 % of a core: {others_start}", flush=True)
    os.makedirs(RUNS, exist_ok=True)
    if a.url:
        root = os.path.realpath(a.data_root)
        in_dir, out_dir, cleanup = "load-inputs", "load-out", [os.path.join(root, "load-inputs"),
                                                               os.path.join(root, "load-out")]
    else:
        root = os.path.realpath(tempfile.mkdtemp(prefix="load-", dir=RUNS))
        in_dir, out_dir, cleanup = "in", "out", [root]
    servers: list[Server] = []
    sections: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    try:
        inputs = make_inputs(os.path.join(root, in_dir), a.images)
        os.makedirs(os.path.join(root, out_dir), exist_ok=True)

        def server(env_extra: dict[str, str]) -> tuple[str, int | None, str]:
            if a.url:
                port = urlsplit(a.url).port or 80
                return a.url.rstrip("/"), pid_listening_on(port), "the server at " + a.url
            s = Server(root, env_extra, workers=a.workers, script=a.server_script)
            servers.append(s)  # stopped (and its state folder removed) at the end, even if it fails to start
            s.start()
            settings = " ".join(f"{k}={v}" for k, v in env_extra.items())
            return s.url, s.pid, f"`{settings + ' ' if settings else ''}python {s.script} --port {s.port}`"

        def finish(url: str, label: str) -> dict:
            info = health_after(url, os.path.join(root, out_dir))
            if info.get("queue_depth") != 0:
                problems.append(f"{label}: queue depth {info.get('queue_depth')} after the load (expected 0)")
            if info["temp_files"]:
                problems.append(f"{label}: {info['temp_files']} temporary files left in the output folder")
            if not str(info.get("health", "")).startswith("200"):
                problems.append(f"{label}: /health after the load: {info.get('health')}")
            return info

        # ---- phase 1 ---------------------------------------------------------------------------
        url, pid, how = server({})
        import httpx

        workers = httpx.get(url + "/health", timeout=5).json().get("workers")
        mix = Mix(inputs, in_dir, out_dir, a.bad)
        print(f"phase 0: one client, sequential ({how})", flush=True)
        run_loop(sequential(url, mix, 30, a.timeout))  # warm the code paths
        seq = run_loop(sequential(url, mix, 200, a.timeout))
        print(f"  p50 {ms(pct(seq.good_ms, 50))} ms, {seq.requests / seq.wall:.0f} requests/s", flush=True)
        print(f"phase 1: warm-up {warmup:.0f} s at {a.clients} clients", flush=True)
        warm = run_loop(closed_loop(url, mix, a.clients, warmup, a.timeout))
        time.sleep(1.0)
        before = tree_state(pid)
        print(f"phase 1: {a.clients} clients for {duration:.0f} s, {a.bad:.0%} bad", flush=True)
        c0, m0 = cpu_split(pid), proc_stat()
        with TreeSampler(pid, 0.5, fds=True) as peak1:
            p1 = run_loop(closed_loop(url, mix, a.clients, duration, a.timeout))
        c1, m1 = cpu_split(pid), proc_stat()
        c0_p1, c1_p1 = c0, c1
        time.sleep(1.0)
        after = tree_state(pid)
        info1 = finish(url, "phase 1")
        rate1 = p1.requests / p1.wall
        good1 = len(p1.good_ms) / p1.wall
        rss_g, fds_g = growth_pct(before, after, "rss"), growth_pct(before, after, "fds")
        print(f"  {p1.requests} requests, {rate1:.1f}/s, unexpected errors {p1.errors}, "
              f"p50/p95/p99 {ms(pct(p1.good_ms, 50))}/{ms(pct(p1.good_ms, 95))}/{ms(pct(p1.good_ms, 99))} ms, "
              f"RSS {growth(before, after, 'rss')}, fds {growth(before, after, 'fds')}", flush=True)
        if warm.errors:
            problems.append(f"warm-up: {warm.errors} unexpected errors: {warm.samples[:3]}")
        if p1.errors:
            problems.append(f"phase 1: {p1.errors} unexpected errors: {p1.samples[:5]}")
        if p1.statuses.get(429):
            problems.append(f"phase 1: {p1.statuses[429]} answers 429 at the default queue limit")

        rows1 = [
            ["requests (good / bad)", f"{p1.requests} ({p1.kinds['good']} / {p1.requests - p1.kinds['good']}: "
             + ", ".join(f"{k} {p1.kinds[k]}" for k in BAD_KINDS) + ")"],
            ["answers by status", by_status(p1)],
            ["unexpected errors (not the expected 4xx/429; transport errors included)",
             f"{p1.errors}" + (f": {dict(p1.unexpected) | dict(p1.transport)}" if p1.errors else "")],
            ["throughput, all requests", f"{rate1:.1f} requests/s"],
            ["throughput, good requests (images processed)", f"{good1:.1f} requests/s"],
            ["latency of good requests p50 / p95 / p99", f"{ms(pct(p1.good_ms, 50))} / {ms(pct(p1.good_ms, 95))} / "
             f"{ms(pct(p1.good_ms, 99))} ms (max {ms(max(p1.good_ms, default=float('nan')))})"],
            ["worker time per good image p50 / p95 (elapsed_ms in the answers)",
             f"{ms(pct(p1.work_ms, 50))} / {ms(pct(p1.work_ms, 95))} ms"],
            ["one client, no queueing: p50 / p95 of good requests",
             f"{ms(pct(seq.good_ms, 50))} / {ms(pct(seq.good_ms, 95))} ms ({seq.requests} requests, "
             f"{seq.errors} unexpected)"],
            ["server RSS, idle before -> idle after (growth)", growth(before, after, "rss")],
            ["server open files, idle before -> idle after (growth)", growth(before, after, "fds")],
            ["peak during the load: RSS / open files",
             f"{peak1.peak / 2 ** 20:.1f} MB / {peak1.peak_fds}" if pid else "n/a"],
            ["processes in the server tree, before -> after",
             f"{before.procs} -> {after.procs}" if before and after else "n/a"],
            ["after: /health, queue depth, worker restarts, temp files left",
             f"{info1.get('health')}, {info1.get('queue_depth')}, {info1.get('restarts')}, {info1['temp_files']}"],
            ["CPU per request (share of one core)", cpu_row(c0, c1, p1.requests, p1.wall, p1.client_cpu)],
            ["machine CPU during the phase (all processes, all cores)", machine_busy(m0, m1)],
        ]
        if c0 and c1 and (c1[0] - c0[0]) > (c1[1] - c0[1]):
            notes.append(
                f"In phase 1 the server process (HTTP, validation, dispatch: one event loop) spent more CPU per "
                f"request ({(c1[0] - c0[0]) * 1000 / max(1, p1.requests):.2f} ms) than the workers did on the image "
                f"({(c1[1] - c0[1]) * 1000 / max(1, p1.requests):.2f} ms): the capacity measured is the front "
                f"end's (and the machine's, {machine_busy(m0, m1)}), not the pool's. Under overload the queue-full "
                "429 is answered before the body is read, so refusals cost the event loop little; "
                "`--size 1600x1200` makes the pool the bottleneck.")
        growth_ok = not (rss_g >= 10 or fds_g >= 10)
        if not growth_ok:
            problems.append(f"phase 1: growth over 10 %: RSS {rss_g:+.1f} %, open files {fds_g:+.1f} %")
        sections.append(
            f"### Phase 1: {a.clients} concurrent clients for {duration:.0f} s, {a.bad:.0%} of requests bad\n\n"
            f"Server: {how} (default `IMGSRV_MAX_QUEUE`), {workers} workers. Warm-up {warmup:.0f} s "
            f"({warm.requests} requests, not counted).\n\n"
            + table(rows1, ["measure", "value"])
            + f"\n\nTargets: 0 unexpected errors: {verdict(p1.errors == 0)}; RSS and open files growth under "
              f"10 %: {verdict(growth_ok)}.\n")

        # ---- phase 2 ---------------------------------------------------------------------------
        if not a.no_overload:
            if not a.url:
                for s in servers:
                    s.stop()
                # At log level info the server writes one line per request with its status and the time it
                # spent on it (from the call of the app to the last byte): the server's own view of a 429.
                env2 = {"IMGSRV_MAX_QUEUE": str(a.queue), "IMGSRV_LOG_LEVEL": "info"}
                if a.limit_concurrency:
                    ALLOW_503 = True
                    env2["IMGSRV_LIMIT_CONCURRENCY"] = str(a.limit_concurrency)
                url, pid, how = server(env2)
                how = how.replace("IMGSRV_LOG_LEVEL=info ", "") + " (at log level info: one line per request)"
            mix2 = Mix(inputs, in_dir, out_dir, a.bad)
            run_loop(sequential(url, mix2, 30, a.timeout))
            cols: list[list[str]] = []
            if a.rate:
                factors = [a.rate / rate1]
            for factor in factors:
                target = factor * rate1
                print(f"phase 2: open loop at {target:.0f} requests/s ({factor:g} x {rate1:.1f}) for "
                      f"{overload_duration:.0f} s, IMGSRV_MAX_QUEUE={a.queue if not a.url else '(the server’s)'}",
                      flush=True)
                log_from = os.path.getsize(servers[-1].log_path) if servers else 0
                before2 = tree_state(pid)
                c0, m0 = cpu_split(pid), proc_stat()
                t2 = time.perf_counter()
                with TreeSampler(pid, 0.5, fds=True) as peak2:
                    p2, st = run_loop(open_loop(url, mix2, target, overload_duration, a.timeout, a.max_inflight,
                                                   a.seed))
                wall2 = time.perf_counter() - t2
                c1, m1 = cpu_split(pid), proc_stat()
                time.sleep(1.0)
                after2 = tree_state(pid)
                info2 = finish(url, f"phase 2 at {factor:g} x")
                app_ms = server_times(servers[-1].log_path, log_from) if servers else {}
                sent = p2.requests
                n429 = p2.statuses.get(429, 0) + (p2.statuses.get(503, 0) if ALLOW_503 else 0)
                acc_good = len(p2.good_ms)
                print(f"  offered {st['offered']} ({st['offered'] / overload_duration:.0f}/s), 429: {n429}, "
                      f"429 p99 {ms(pct(p2.refused_ms, 99))} ms, accepted good p50/p95 {ms(pct(p2.good_ms, 50))}/"
                      f"{ms(pct(p2.good_ms, 95))} ms, unexpected {p2.errors}", flush=True)
                if p2.errors:
                    problems.append(f"phase 2 at {factor:g} x: {p2.errors} unexpected errors: {p2.samples[:5]}")
                if st["unfinished"]:
                    problems.append(f"phase 2 at {factor:g} x: {st['unfinished']} requests did not finish within "
                                    f"{a.timeout + 5:g} s of the end")
                kept = bool(p2.good_ms) and pct(p2.good_ms, 95) <= pct(p1.good_ms, 95)
                pool1 = (c1_p1[1] - c0_p1[1]) / p1.wall if c0_p1 and c1_p1 else None
                pool2 = (c1[1] - c0[1]) / wall2 if c0 and c1 else None
                if pool1 and pool2 is not None and n429 > sent / 2 and pool2 < pool1 / 2:
                    notes.append(
                        f"At {factor:g} x, {n429 * 100 / max(1, sent):.0f} % of the requests were refused as queue "
                        f"full while the pool used {pool2 * 100:.0f} % of a core (phase 1: {pool1 * 100:.0f} %): the "
                        f"workers mostly waited. What this fits: a congested event loop admits requests in "
                        f"bursts; the {a.queue} + {workers} places fill within one burst, the rest of it is refused, "
                        "and the pool runs dry before the next. A larger `--queue` lets more through at the same rate.")
                if st["dropped"] or st["lag_p50"] > 20:
                    notes.append(
                        f"At {factor:g} x the load generator fell behind: send p50 {ms(st['lag_p50'])} ms after the "
                        f"due time, {st['dropped']} arrivals dropped with all {a.max_inflight} slots busy, "
                        f"{p2.client_cpu * 100 / max(wall2, 1e-9):.0f} % of a core for itself on a {CORES}-core "
                        "machine. Latency counts from the due time, so it includes that delay; the figures "
                        "describe the whole machine under that load.")
                cols.append([
                    f"{st['offered']} ({st['offered'] / overload_duration:.1f}/s; target {target:.1f}/s)",
                    f"{sent} / {st['dropped']} / {st['unfinished']}; {st['max_inflight']}",
                    f"{ms(st['lag_p50'])} / {ms(st['lag_p99'])}",
                    by_status(p2),
                    f"{n429} ({n429 * 100 / max(1, sent):.0f} %)",
                    f"{p2.errors}" + (f": {dict(p2.unexpected) | dict(p2.transport)}" if p2.errors else ""),
                    f"{ms(pct(p2.refused_ms, 50))} / {ms(pct(p2.refused_ms, 99))} / "
                    f"{ms(max(p2.refused_ms, default=float('nan')))}",
                    (f"{ms(pct(app_ms.get(429, []), 50))} / {ms(pct(app_ms.get(429, []), 99))}"
                     if app_ms else "n/a"),
                    f"{acc_good / overload_duration:.1f}/s ({acc_good})",
                    f"{ms(pct(p2.good_ms, 50))} / {ms(pct(p2.good_ms, 95))} / {ms(pct(p2.good_ms, 99))}",
                    (f"{ms(pct(app_ms.get(200, []), 50))} / {ms(pct(app_ms.get(200, []), 95))}"
                     if app_ms else "n/a"),
                    f"{ms(pct(p2.work_ms, 50))} / {ms(pct(p2.work_ms, 95))} (phase 1: {ms(pct(p1.work_ms, 50))} / "
                    f"{ms(pct(p1.work_ms, 95))})",
                    verdict(n429 > 0) + " / " + verdict(kept) + " / " + verdict(p2.errors == 0),
                    f"{growth(before2, after2, 'rss')}; {growth(before2, after2, 'fds')}",
                    f"{peak2.peak / 2 ** 20:.1f} MB / {peak2.peak_fds}" if pid else "n/a",
                    f"{info2.get('health')}, {info2.get('queue_depth')}, {info2.get('restarts')}, "
                    f"{info2['temp_files']}",
                    cpu_row(c0, c1, sent, wall2, p2.client_cpu),
                    machine_busy(m0, m1),
                ])
                time.sleep(2.0)
            labels = [
                "offered, Poisson arrivals (rate)",
                "sent / dropped by the generator (all slots busy) / unfinished; most in flight",
                "generator lateness p50 / p99 ms (send time after due time)",
                "answers by status",
                "refused with 429, all with Retry-After (% of sent)" + (" (and 503)" if ALLOW_503 else ""),
                "unexpected errors (not the expected 4xx/429; transport errors included)",
                "429 latency at the client p50 / p99 / max ms" + (" (and 503)" if ALLOW_503 else ""),
                "429 time inside the app p50 / p99 ms (server log)",
                "accepted good requests processed",
                "accepted good latency p50 / p95 / p99 ms",
                "accepted good time inside the app p50 / p95 ms (server log)",
                "worker time per accepted image p50 / p95 ms (elapsed_ms in the answers)",
                "429 seen / accepted p95 not above phase 1's / 0 unexpected",
                "server RSS; open files, idle before -> idle after",
                "peak during the load: RSS / open files",
                "after: /health, queue depth, worker restarts, temp files left",
                "CPU per request sent (share of one core)",
                "machine CPU during the run (all processes, all cores)",
            ]
            rows2 = [[label] + [c[i] for c in cols] for i, label in enumerate(labels)]
            rows2.insert(10, ["phase 1 good latency for comparison p50 / p95 / p99 ms"]
                         + [f"{ms(pct(p1.good_ms, 50))} / {ms(pct(p1.good_ms, 95))} / {ms(pct(p1.good_ms, 99))} "
                            f"(one client: {ms(pct(seq.good_ms, 50))} / {ms(pct(seq.good_ms, 95))})"] * len(cols))
            sections.append(
                f"### Phase 2: overload, open-loop arrivals at {' and '.join(f'{f:g}' for f in factors)} x the "
                f"phase 1 throughput ({rate1:.1f} requests/s), {overload_duration:.0f} s each\n\n"
                f"Server: {how}, {workers} workers (one server for every rate, in this order). Latency at the client "
                f"counts from each request's due time; at most {a.max_inflight} requests in flight (one "
                f"connection each), arrivals beyond are dropped by the generator and counted.\n\n"
                + table(rows2, ["measure"] + [f"{f:g} x: {f * rate1:.0f}/s" for f in factors]) + "\n")
    finally:
        for s in servers:
            s.stop()
        for s in servers:
            bad_lines = log_problems(s.log_text)
            if bad_lines:
                problems.append(f"server log ({s.port}): {len(bad_lines)} error lines, first: {bad_lines[:3]}")
        for c in cleanup:
            shutil.rmtree(c, ignore_errors=True)
        timer.cancel()

    load_end = loadavg()
    others_end = busy_others()
    header = (f"## Load: POST /process, {a.clients} clients, then overload at {a.factor} x that throughput\n\n"
              f"Machine: {machine_line()}.  \n"
              f"Date: {started:%Y-%m-%d %H:%M %Z}. Load average {load_start} at the start, {load_end} at the end "
              f"(the load generator runs on the same {CORES} cores).  \n"
              f"Other processes using over 10 % of a core (1 s sample): at the start {others_start}; at the end "
              f"{others_end}.  \n"
              f"Command: `{command}`.  \n"
              f"Requests: one {SIZE[0]}x{SIZE[1]} JPEG each ({a.images} different inputs); good ones run, in turn, "
              + ", ".join("`" + ", ".join(p) + "`" for p in PIPELINES)
              + f"; bad ones ({a.bad:.0%}), in turn: unknown operation `emboss=3` (422), input "
                "`../../../etc/hostname` (403), missing input (200, result `not_found`).\n")
    footer = ("\n**Problems found:**\n\n" + "\n".join(f"- {p}" for p in problems) + "\n") if problems else \
        "\nNo problem found: no unexpected answer, queue depth back to 0, no temporary file left, no error in " \
        "the server log.\n"
    if notes:
        footer = "\n**Notes:**\n\n" + "\n".join(f"- {n}" for n in notes) + "\n" + footer
    md = header + "\n" + "\n".join(sections) + footer
    publish(md, a.out)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""What the budgets save: for the worst request each budget now refuses, the peak RSS of the
server process and of its largest worker, the request's wall time and HTTP status, on a
checkout without the budgets and on one with them, side by side.

    python benchmarks/budgets.py --checkout /work/before15 --checkout /work/main [--out benchmarks/budgets.md]

Each ``--checkout`` (default: this project) is measured at its committed HEAD, exported with
``git archive`` into benchmarks/data/runs/ (so that uncommitted edits in that folder do not
leak into the figures; ``--as-is`` runs its files as they are). Every case gets a freshly
started server (IMGSRV_WORKERS=2) on a scratch data root, warmed up with one small valid
request on the same route; the idle RSS is taken after that, then the case's request is sent
while the tree is sampled every 25 ms. A checkout without the budgets (its HEAD does not
contain BUDGETS_COMMIT) skips case 2 (it would exhaust the machine's memory), runs case 4
with IMGSRV_TASK_TIMEOUT=20, and any process of the tree above 8 GiB gets the whole server
killed. Loopback only.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import httpx
import numpy as np
import psutil

from harness import (HERE, PROJECT, Server, TreeSampler, command_line, kill_tree, log_problems, loadavg,
                     machine_line, publish, scratch_dir, table)

BUDGETS_COMMIT = "30507e2"  # "Data safety and budgets"
KILL_AT = 8 * 2 ** 30
TIMEOUT = 300.0
MB = 2 ** 20


def photo(w: int, h: int, seed: int) -> bytes:
    """A photo-like JPEG (q90): colour gradients, smooth blobs and sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([80 + 120 * x / w, 60 + 140 * y / h, 180 - 100 * (x + y) / (w + h)], axis=-1)
    blobs = cv2.resize(rng.normal(0, 40, (h // 64 + 1, w // 64 + 1, 3)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    img += blobs + rng.normal(0, 12, (h, w, 3)).astype(np.float32)
    return cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def render(name: str, ops: list, fields: int = 1) -> dict:
    """A /render upload; the operations as JSON arrays in ``fields`` ``operations`` fields."""
    n = -(-len(ops) // fields)
    return {"files": {"file": (name, open(name, "rb").read(), "image/jpeg")},
            "data": {"operations": [json.dumps(ops[i:i + n]) for i in range(0, len(ops), n)]}}


def process(images: list[tuple[str, str]], ops: list) -> dict:
    body = {"images": [{"input": i, "output": o} for i, o in images], "operations": ops}
    return {"content": json.dumps(body).encode(), "headers": {"content-type": "application/json"}}


def plan(ops: list) -> dict:
    return process([("small.jpg", "out/small.jpg")], ops)


@dataclass
class Case:
    key: str
    title: str
    route: str
    request: Callable[[], dict]  # httpx keyword arguments (run in the data root)
    health: bool = False  # a second client polls GET /health during the request
    env: dict = field(default_factory=dict)
    before_env: dict = field(default_factory=dict)  # extra settings on a checkout without the budgets
    before: str | None = None  # on a checkout without the budgets: not run, for this reason
    after_only: bool = False  # a setting only the budgets have: no row for a checkout without them


CASES = [
    Case("1", '`POST /plan`, 1 image, `["split=64x64", "split=8x8"]` (262,144 outputs)', "/plan",
         lambda: plan(["split=64x64", "split=8x8"])),
    Case("2", '`POST /plan`, 1 image, `["split=64x64"] * 3` (68.7 billion outputs)', "/plan",
         lambda: plan(["split=64x64"] * 3), before="not run: would exhaust memory (68.7 billion names)"),
    Case("3", '`POST /render` 2000x1500 JPEG, `["split=64x64", "resize=16"]` (4,096 tiles, 768 MP)', "/render",
         lambda: render("photo.jpg", ["split=64x64", "resize=16"])),
    Case("4", '`POST /process` 4000x3000 JPEG, `["blur=kernel:0,sigma:100"] * 100`', "/process",
         lambda: process([("big.jpg", "out/big.jpg")], ["blur=kernel:0,sigma:100"] * 100),
         before_env={"IMGSRV_TASK_TIMEOUT": "20"}),
    Case("5a", '`POST /render` 64x64 JPEG, `["grayscale"] * 225000` in one `operations` field (2.9 MB)', "/render",
         lambda: render("small.jpg", ["grayscale"] * 225_000), health=True),
    Case("5", "the same in three `operations` fields of 75,000 each (0.98 MB each; a form field may hold 1 MiB)",
         "/render", lambda: render("small.jpg", ["grayscale"] * 225_000, fields=3), health=True),
    Case("6", "`POST /process`, 100,000 images (5.6 MB JSON body; the inputs do not exist)", "/process",
         lambda: process([(f"in/{i:06d}.jpg", f"out/{i:06d}.jpg") for i in range(100_000)], ["grayscale"]),
         health=True),
    Case("6b", "the same with `IMGSRV_MAX_BODY_BYTES=1048576`", "/process", lambda: CASES[-2].request(),
         health=True, env={"IMGSRV_MAX_BODY_BYTES": "1048576"}, after_only=True),
]
WARM_UP = {"/plan": lambda: plan(["split=2x2"]), "/render": lambda: render("small.jpg", ["grayscale"]),
           "/process": lambda: process([("small.jpg", f"out/warm-{time.time_ns()}.jpg")], ["grayscale"])}


class Guard(TreeSampler):
    """The tree sampler, which also kills the whole server when one of its processes passes ``limit``."""

    def __init__(self, pid: int, limit: int):
        super().__init__(pid, interval=0.025)
        self.limit, self.killed = limit, False

    def sample(self) -> None:
        super().sample()
        if not self.killed and max(self.peaks.values(), default=0) > self.limit:
            self.killed = True
            kill_tree(self.pid)


class HealthProbe(threading.Thread):
    """GET /health in a loop (every 10 ms) on its own connection; the worst latency seen."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.worst, self.count, self.done = url, 0.0, 0, threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=TIMEOUT) as c:
            while not self.done.is_set():
                t = time.perf_counter()
                try:
                    c.get("/health")
                except httpx.HTTPError:
                    pass
                self.worst, self.count = max(self.worst, time.perf_counter() - t), self.count + 1
                self.done.wait(0.01)


def answer_text(r: httpx.Response) -> str:
    """The answer in a few words: the refusal's message, the image's error, or the size."""
    size = f"{len(r.content) / MB:.1f} MB" if len(r.content) >= 100_000 else f"{len(r.content)} B"
    if not r.headers.get("content-type", "").startswith("application/json"):
        return f"{r.headers.get('content-type', '?')}, {size}"
    body = r.json()
    if r.status_code == 200 and "results" in body:  # /process: the image's own outcome
        res = body["results"][0]
        text = res["status"] + (f" {res['error']['code']}: {res['error']['message']}" if res.get("error") else "")
    elif r.status_code == 200:
        text = f"{body.get('outputs', '?'):,} outputs"
    else:
        text = body.get("message") or body.get("detail")
        text = text if isinstance(text, str) else json.dumps(text)
    text = " ".join(text.split()).replace("|", "/")
    return (text if len(text) <= 160 else text[:157] + "...") + f" ({size})"


def measure(case: Case, code: str, root: str, extra: dict) -> dict:
    """One case on a freshly started server of the code in ``code`` (``extra``: more settings)."""
    with Server(root, env={**case.env, **extra}, workers=2, script=os.path.join(code, "main.py")) as srv:
        srv.client.post(case.route, **WARM_UP[case.route]()).raise_for_status()
        time.sleep(0.5)
        procs = [psutil.Process(srv.pid)] + psutil.Process(srv.pid).children(recursive=True)
        idle = {p.pid: p.memory_info().rss for p in procs}
        kwargs = case.request()
        probe = HealthProbe(srv.url) if case.health else None
        if probe:
            probe.start()
            time.sleep(0.2)
        guard = Guard(srv.pid, KILL_AT)
        t = time.perf_counter()
        with guard:
            try:
                r = httpx.post(srv.url + case.route, timeout=TIMEOUT, **kwargs)
                status, answer = str(r.status_code), answer_text(r)
            except httpx.HTTPError as exc:
                status, answer = "-", f"{type(exc).__name__}: {exc}"[:110]
        wall = time.perf_counter() - t
        if probe:
            probe.done.set()
            probe.join()
        if guard.killed:
            status, answer = "killed", f"killed at {KILL_AT // 2 ** 30} GiB (a process of the tree passed it)"
    workers = [pid for pid in guard.peaks if pid != srv.pid]
    return {"status": status, "answer": answer, "wall": wall,
            "server_idle": idle[srv.pid] / MB, "server_peak": guard.peaks.get(srv.pid, 0) / MB,
            "worker_idle": max((idle.get(p, 0) for p in workers), default=0) / MB,
            "worker_peak": max((guard.peaks[p] for p in workers), default=0) / MB,
            "health": probe.worst * 1000 if probe else None, "health_n": probe.count if probe else 0,
            "log": srv.log_text}


def export(checkout: str, as_is: bool, into: str) -> tuple[str, str, bool]:
    """The folder to run (HEAD exported under ``into``), the checkout's commit, and whether that
    commit has the budgets."""
    git = ["git", "-C", checkout]
    commit = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    budgets = subprocess.run(git + ["merge-base", "--is-ancestor", BUDGETS_COMMIT, "HEAD"],
                             capture_output=True, check=False).returncode == 0
    if as_is:
        return checkout, commit + " (working tree)", budgets
    folder = os.path.join(into, f"code-{len(os.listdir(into))}")
    os.makedirs(folder)
    archive = subprocess.run(git + ["archive", "HEAD"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder, commit, budgets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkout", action="append", help="a git checkout of imgsrv (repeat; default: this project)")
    ap.add_argument("--cases", default=",".join(c.key for c in CASES), help="e.g. 1,3,6b")
    ap.add_argument("--as-is", action="store_true", help="run the checkouts' files as they are, not their HEAD")
    ap.add_argument("--out", default=os.path.join(HERE, "budgets.md"), help="markdown report ('' to only print)")
    a = ap.parse_args(argv)
    started, load_start = time.strftime("%Y-%m-%d %H:%M %Z"), loadavg()
    wanted = a.cases.split(",")
    rows, notes, codes = [], [], []
    with scratch_dir("budgets") as root:
        os.chdir(root)
        os.makedirs("out")
        for name, (w, h) in {"small.jpg": (64, 64), "photo.jpg": (2000, 1500), "big.jpg": (4000, 3000)}.items():
            with open(name, "wb") as fh:
                fh.write(photo(w, h, len(name)))
        os.makedirs("code")
        for ck in a.checkout or [PROJECT]:
            code, commit, budgets = export(os.path.abspath(ck), a.as_is, os.path.join(root, "code"))
            codes.append((ck, commit, budgets, code))
        try:
            for case in (c for c in CASES if c.key in wanted):
                for ck, commit, budgets, code in codes:
                    label = f"{'after' if budgets else 'before'} `{commit}`"
                    if not budgets and case.after_only:
                        continue
                    if not budgets and case.before:
                        rows.append([case.key, label, "-", "-", "-", "-", "-", case.before])
                        continue
                    extra = {} if budgets else case.before_env
                    m = measure(case, code, root, extra)
                    problems = log_problems(m["log"])
                    if problems:
                        notes.append(f"case {case.key}, {label}: the server log has {len(problems)} error line(s), "
                                     f"first: `{problems[0][:150]}`")
                    rows.append([case.key, label + "".join(f", {k}={v}" for k, v in extra.items()), m["status"],
                                 f"{m['wall']:.2f}",
                                 (f"{m['server_idle']:.0f} -> {m['server_peak']:.0f} "
                                  f"({m['server_peak'] - m['server_idle']:+.0f})"),
                                 f"{m['worker_idle']:.0f} -> {m['worker_peak']:.0f}",
                                 "-" if m["health"] is None else f"{m['health']:.0f} ({m['health_n']})", m["answer"]])
                    print(" | ".join(rows[-1]), flush=True)
        finally:
            os.chdir(PROJECT)
    lines = ["# What the budgets save: the worst refused requests, before and after\n",
             f"Machine: {machine_line()}.  ",
             f"Date: {started}; load average {load_start} at the start, {loadavg()} at the end.  ",
             f"Command: `{command_line('budgets.py', argv)}`  ",
             ("Checkouts: " + "; ".join(f"`{ck}` at `{commit}` ({'with' if b else 'without'} the budgets)"
                                        for ck, commit, b, _code in codes) + ".\n"),
             "Cases:\n"]
    lines += [f"- **{c.key}**: {c.title}" for c in CASES if c.key in wanted]
    lines += ["", table(rows, ["case", "checkout", "HTTP", "wall s", "server RSS MB idle -> peak (growth)",
                               "largest worker RSS MB idle -> peak", "worst /health ms (probes)", "answer"]), "",
              ("A fresh server (IMGSRV_WORKERS=2, default settings otherwise) per row, warmed up with one small "
               "valid request on the same route; RSS sampled every 25 ms over the request (the server process; "
               "each of its descendants - the pool's fork server and workers - on its own, the largest shown). "
               "The /health column: a second client's GET /health every 10 ms during the request, the worst "
               f"latency and the number of probes. Requests time out after {TIMEOUT:.0f} s; a server whose "
               f"process passes {KILL_AT // 2 ** 30} GiB is killed.")]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    publish("\n".join(lines) + "\n", a.out or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

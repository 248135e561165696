"""The bad-input corpus (tests/e2e/corpus.py) against a real server.

For every case: the documented status and code (or the field a 4xx names), nothing written
under the data root (or beside it) other than the case's own declared outputs, and the server
still answering ``GET /health`` afterwards. What each request cost the server (CPU time of the
workers and of the server process, the rise of the workers' peak memory) is measured around it
for the cases that must be refused before any work (``Cost`` in corpus.py).

A summary table (case -> status / code) is printed at the end of the module (``pytest -s``)
and written to ``bad_input_corpus.md`` in pytest's base temporary folder, ready for the README.
"""
from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import psutil
import pytest

from .conftest import Server
from .corpus import CASES, Case, Cost, Ctx, Req
from .helpers import STATE_DIR, TEMP_PREFIX, cpu_seconds, sha256


def tree(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (the state folder aside), without following links or opening
    anything that is not a regular file (a FIFO or a device would block or never end)."""
    out: dict[str, tuple] = {}
    if not root.exists():
        return out
    for dirpath, dirs, files in os.walk(root):
        if os.path.samefile(dirpath, root) and STATE_DIR in dirs:
            dirs.remove(STATE_DIR)
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                out[rel] = ("file", st.st_size, st.st_mtime_ns, sha256(p))
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                out[rel] = ("special", stat.S_IFMT(st.st_mode), st.st_mtime_ns)
    return out


def peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM) in bytes; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak_rss(pid: int) -> None:
    """Start the process's VmHWM again from its present RSS (``5`` to clear_refs), so that a rise
    is this case's, not an earlier case's."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except FileNotFoundError:  # the worker has just gone; any other failure is the test's
        pass


def usage(server: Server, before: bool = False) -> tuple[float, dict[int, tuple[psutil.Process, float, int]]]:
    """The server process's CPU seconds; per pool worker: (process, CPU seconds, peak RSS bytes).
    ``before`` a case, the workers' peaks start again from now."""
    workers = server.pool_workers(2)
    assert len(workers) == 2, f"the pool's two workers were not found ({workers}): nothing would be measured"
    if before:
        for w in workers:
            reset_peak_rss(w.pid)
    return (cpu_seconds(psutil.Process(server.proc.pid)),
            {w.pid: (w, cpu_seconds(w), peak_rss(w.pid)) for w in workers})


def cost(before, after) -> Cost:
    (server_before, w_before), (server_after, w_after) = before, after
    worker_cpu, rise = 0.0, 0
    for pid, (proc, t0, hwm0) in w_before.items():
        if pid in w_after:
            worker_cpu += w_after[pid][1] - t0
            rise = max(rise, w_after[pid][2] - hwm0)
    for pid in w_after.keys() - w_before.keys():  # a worker started during the request: all of it counts
        worker_cpu += w_after[pid][1]
    return Cost(worker_cpu * 1000.0, (server_after - server_before) * 1000.0, rise / 2**20)


@pytest.fixture(scope="module")
def corpus_server(launcher) -> Server:
    # A server of its own: a data root that holds only the corpus, so every snapshot is small.
    return launcher.start("corpus", workers=2)


@pytest.fixture(scope="module")
def summary(corpus_server, tmp_path_factory):
    rows: dict[str, list] = {}
    yield rows
    lines = ["| # | case | what is sent | documented (status, code or field) | answered | ms | verdict |",
             "|---|---|---|---|---|---|---|"]
    costs = []
    for i, case in enumerate(CASES, 1):
        got, ms, verdict, *measured = rows.get(case.name, ("(not run)", None, "not run"))
        what = case.what.replace("|", "\\|")
        lines.append(f"| {i} | `{case.name}` | {what} | {case.status} {case.code} | {got} | "
                     f"{'' if ms is None else f'{ms:.0f}'} | {verdict.replace('|', '/')} |")
        if measured and measured[0] is not None:
            c, server_ms = measured
            costs.append(f"[cost] {case.name}: client {ms:.1f} ms, server-side {server_ms} ms, workers' CPU "
                         f"{c.worker_cpu_ms:.0f} ms, server CPU {c.server_cpu_ms:.0f} ms, "
                         f"workers' peak +{c.worker_peak_rise_mb:.1f} MB")
    passed = sum(1 for c in CASES if rows.get(c.name, ("", None, ""))[2] == "pass")
    same = sum(1 for c in CASES if rows.get(c.name, ("",))[0] == f"{c.status} {c.code}")
    lines.append(f"\n{len(CASES)} cases: {same} answered with the documented status and code; {passed} passed every "
                 f"check (nothing written, nothing decoded, content, server still serving).")
    text = "\n".join(lines) + "\n"
    out = Path(tmp_path_factory.getbasetemp()) / "bad_input_corpus.md"
    out.write_text(text)
    print(f"\n\nBad-input corpus ({len(CASES)} cases; also in {out}):\n\n{text}")
    print("\n".join(costs))


def _ctx(server: Server, case: Case) -> Ctx:
    outside = server.data_root.parent / "outside"
    outside.mkdir(exist_ok=True)
    ctx = Ctx(server.data_root, f"corpus/{re.sub(r'[^A-Za-z0-9_]+', '_', case.name)}", outside)
    ctx.p().mkdir(parents=True)
    return ctx


def _send(server: Server, req: Req):
    if req.content is not None:
        return server.client.post(req.path, content=req.content, headers={"content-type": "application/json"},
                                  timeout=req.timeout)
    return server.client.post(req.path, json=req.json, timeout=req.timeout)


def _outcome(r, case: Case) -> str:
    """What the answer says, in the table's terms: ``STATUS CODE`` (per-image codes for a 200;
    for a 4xx the case's field when it is among those named, else the first one named)."""
    try:
        data = r.json()
    except ValueError:
        return f"{r.status_code} (not JSON)"
    if r.status_code == 200 and "results" in data:
        codes = sorted({(x["error"] or {}).get("code") if x["status"] == "error" else x["status"]
                        for x in data["results"]})
        return f"200 {','.join(codes)}"
    if isinstance(data.get("detail"), list) and data["detail"]:
        named = [e.get("field") for e in data["detail"]]
        return f"{r.status_code} {case.code if case.code in named else named[0]}"
    return f"{r.status_code} {data.get('code') or data.get('detail')}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(corpus_server, summary, case: Case):
    s = corpus_server
    ctx = _ctx(s, case)
    try:
        if case.build is not None:
            case.build(ctx)
        req = case.request(ctx)
        before, outside_before = tree(s.data_root), tree(ctx.outside)
        jobs_before = s.get("/jobs").json() if req.path == "/jobs" else None

        used_before = usage(s, before=True)
        start = time.perf_counter()
        r = _send(s, req)
        ms = (time.perf_counter() - start) * 1000.0
        ctx.cost = cost(used_before, usage(s))
        try:
            server_ms = max((x["elapsed_ms"] for x in r.json().get("results", [])), default=None)
        except (ValueError, AttributeError):
            server_ms = None
        summary[case.name] = [_outcome(r, case), ms, "FAIL", ctx.cost, server_ms]
        after = tree(s.data_root)

        assert r.status_code == case.status, f"{case.name}: expected {case.status}, got {r.status_code}: {r.text[:500]}"
        data = r.json()
        if case.status == 200:
            assert data["results"], data
            for res in data["results"]:
                if case.code == "ok":
                    assert res["status"] == "ok", f"{res['input']!r}: {res}"
                else:
                    assert res["status"] == "error", f"{res['input']!r}: {res}"
                    assert res["error"]["code"] == case.code, f"{res['input']!r}: {res['error']}"
                    assert res["error"]["message"], res
                    assert res["outputs"] == [], res
        else:
            named = [e.get("field") for e in data.get("detail", [])] if isinstance(data.get("detail"), list) else []
            assert case.code in named, f"{case.name}: the answer should name {case.code!r}, it names {named}: {data}"
            for e in data["detail"]:
                assert e.get("msg"), f"an entry does not say why: {e}"
            if case.status == 403:
                assert all(e.get("type") == "forbidden_path" for e in data["detail"]), data
        if case.check is not None:
            case.check(ctx, r)

        # nothing written but the declared outputs; nothing changed or removed
        expected_new = case.writes(ctx) if case.writes else set()
        changed = sorted(k for k in before if after.get(k) != before[k])
        assert changed == [], f"{case.name}: changed or removed under the data root: {changed}"
        new = set(after) - set(before)
        new_files = {k for k in new if after[k][0] != "dir"}
        assert new_files == expected_new, (f"{case.name}: wrote {sorted(new_files - expected_new)}, "
                                           f"missing {sorted(expected_new - new_files)}")
        new_dirs = {k for k in new if after[k][0] == "dir"}
        allowed_dirs = {os.path.dirname(k) for k in expected_new}
        assert new_dirs <= allowed_dirs, f"{case.name}: made folders {sorted(new_dirs - allowed_dirs)}"
        assert not any(os.path.basename(k).startswith(TEMP_PREFIX) for k in after), "a temp file was left"
        assert tree(ctx.outside) == outside_before, f"{case.name}: something was written outside the data root"
        if jobs_before is not None:
            assert s.get("/jobs").json() == jobs_before, "a refused job was recorded"

        # the server still serves
        h = s.get("/health", timeout=5)
        assert h.status_code == 200 and h.json()["status"] == "ok", h.text
        summary[case.name][2] = "pass"
    except AssertionError as exc:
        if case.name in summary:
            summary[case.name][2] = "FAIL: " + str(exc).splitlines()[0][:90]
        raise
    finally:
        for undo in reversed(ctx.cleanups):
            undo()

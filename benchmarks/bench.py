#!/usr/bin/env python3
"""imgsrv throughput benchmark: the seed workloads run side by side, on the same files.

    python benchmarks/bench.py --quick                  # < 1 min: 16 images, W1 and W2, 1 round
    python benchmarks/bench.py --count 64               # every workload, 2 rounds, plus the levers
    python benchmarks/bench.py --count 64 --workloads W1,W2 --rounds 3 --out benchmarks/results.md

Data: deterministic camera-trap-like 2048x1536 JPEGs (benchmarks/dataset.py), generated once
and cached under benchmarks/data/ (ignored by git).

Methods, each run in its own process so that its peak memory and CPU time are its own:
  (a) naive sequential Pillow loop (open, crop / draw / resize ..., save)
  (b) the same function over multiprocessing.Pool(cores)
  (c) python main.py run --source ... --output-dir ... --op ... --no-skip (images/s from its summary)
  (d) the same job through the HTTP API: POST /jobs, poll GET /jobs/{id} every 0.1 s; images/s
      from the job's own started_at to finished_at, as the CLI times itself from its job's start
  (e) the floor: best single-threaded cv2.imdecode + best cv2.imencode of the workload's
      output, per image, divided by the number of cores
  (f) the same measurement run in one process per core at once, each on its share of the
      images: what the codecs do when every core is busy (shared caches, memory bandwidth,
      a VM's vCPUs sharing physical cores all show up here, not in (e))
(a), (b), (e) and (f) are in peers.py. Within a round the order of the methods rotates, and
rounds alternate, to cancel machine drift; the table shows the best round (the spread of all
rounds is in its own column). The floor is measured in every round too, so that it gets as
many chances as the methods: on a shared machine the speed drifts by 10-15 % within minutes.

The floor is the cost of decoding to pixels and encoding them. imgsrv runs JPEG-to-JPEG crops and
fills (W1) on the JPEG's YCbCr planes instead, which skips the colour conversions the floor pays;
for such a workload the notes also give libturbojpeg's cost of that path, measured the same way,
and the quality of imgsrv's outputs with and without the planes (the CLI, IMGSRV_JPEG_PLANES=false).

The levers section (full runs; --levers / --no-levers) times imgsrv's own choices through the
CLI and HTTP: the process and the thread executor, JPEG planes off, glibc malloc tuned by
environment, and the per-stage worker times a one-worker server reports in GET /metrics.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import sys
import time

import cv2

from harness import (CORES, DATA, HERE, PY, SIZE, WORKLOADS, Measure, Server, TreeSampler, command_line, fmt_rate,
                     image_files, loadavg, machine_line, prepare_data, publish, read_metrics, run_cli, run_process,
                     scratch_dir, stage_seconds, table, workload_job)
from peers import w1_pixels

PLANES_OFF = {"IMGSRV_JPEG_PLANES": "false"}  # crops and fills of JPEGs decode to BGR
MALLOC_TUNED = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(1024 ** 3)}
METHODS = {
    "a": "(a) Pillow loop",
    "b": f"(b) Pillow Pool({CORES})",
    "c": "(c) imgsrv CLI",
    "d": "(d) imgsrv POST /jobs",
    "e": "(e) floor",
    "f": f"(f) floor, {CORES} cores at once",
}
PEER_MODES = {"a": "seq", "b": "pool", "e": "floor", "f": "pfloor"}


def peer_measure(mode: str, wl: str, src: str, dst: str) -> Measure:
    """One method of peers.py in its own process: its JSON line and its process tree's figures."""
    run = run_process([PY, os.path.join(HERE, "peers.py"), mode, wl, src, dst])
    res = json.loads(run.stdout.strip().splitlines()[-1])
    return Measure(res.pop("elapsed"), res.pop("images"), run.wall, run.rss_mb, run.cpu_s, run.faults,
                   res.pop("in_bytes"), res.pop("out_bytes"), res)


def http_measure(server: Server, wl, src: str, dst: str) -> Measure:
    sampler = TreeSampler(server.pid)
    cpu0, faults0 = sampler.cpu()
    with sampler:
        wall, info = server.run_job(workload_job(wl, os.path.relpath(src, DATA), os.path.relpath(dst, DATA)))
    cpu1, faults1 = sampler.cpu()
    s = info["summary"]
    # The job's own clock, from its start (started_at) to its last result (finished_at), as the CLI
    # times itself from the start of its job: the client's polling interval is not part of the
    # service's throughput. The POST's own time (created_at to started_at) is kept apart.
    created, started, finished = (_dt.datetime.fromisoformat(info[k]) for k in ("created_at", "started_at",
                                                                                "finished_at"))
    return Measure((finished - started).total_seconds(), info["total"], wall, sampler.peak / 2 ** 20, cpu1 - cpu0,
                   faults1 - faults0, s["input_bytes"], s["output_bytes"],
                   {"job_elapsed_ms": s["elapsed_ms"], "queued_ms": (started - created).total_seconds() * 1000})


def started_server(executor: str, workers: int | None = None, env: dict | None = None, wl: str = "W1") -> Server:
    """A server on benchmarks/data whose worker pool has run a 2-image job (nothing timed yet starts it)."""
    server = Server(DATA, env=env, executor=executor, workers=workers).start()
    with scratch_dir("warm") as warm:
        server.run_job(workload_job(WORKLOADS[wl], os.path.relpath(prepare_data(2), DATA), os.path.relpath(warm, DATA)))
    return server


def planes_quality(count: int = 16) -> dict:
    """PSNR of imgsrv's W1 outputs (the CLI) with and without the planes: against each other, and
    against the source's pixels after the workload's operations (what a lossless output would hold)."""
    src = prepare_data(count)
    outputs = {}
    with scratch_dir("planes-on") as on, scratch_dir("planes-off") as off:
        for planes, dst in ((True, on), (False, off)):
            run_cli(WORKLOADS["W1"].ops, src, dst, env_extra=None if planes else PLANES_OFF)
            outputs[planes] = [cv2.imread(os.path.join(dst, os.path.basename(f))) for f in image_files(src)]
    between, planes_src, usual_src = [], [], []
    for i, f in enumerate(image_files(src)):
        (source,) = w1_pixels(cv2.imread(f))
        between.append(cv2.PSNR(outputs[True][i], outputs[False][i]))
        planes_src.append(cv2.PSNR(outputs[True][i], source))
        usual_src.append(cv2.PSNR(outputs[False][i], source))
    return {"psnr_between_min": min(between), "psnr_identical": sum(b >= 100 for b in between),
            "psnr_images": count, "psnr_planes_src": statistics.mean(planes_src),
            "psnr_usual_src": statistics.mean(usual_src)}


def spread(ms: list[Measure]) -> str:
    rates = [m.rate for m in ms]
    return fmt_rate(min(rates)) if len(rates) == 1 else f"{fmt_rate(min(rates))}-{fmt_rate(max(rates))}"


def best_of(ms: list[Measure]) -> Measure:
    return max(ms, key=lambda m: m.rate)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="16 images, W1 and W2, 1 round, no levers (< 1 min)")
    ap.add_argument("--count", type=int, help="images per workload (default 64; 16 with --quick)")
    ap.add_argument("--workloads", help="comma-separated, e.g. W1,W2 (default all; W1,W2 with --quick)")
    ap.add_argument("--methods", default="a,b,c,d,e,f", help="subset of a,b,c,d,e,f")
    ap.add_argument("--rounds", type=int, help="rounds, alternating methods (default 2; 1 with --quick)")
    ap.add_argument("--seed", type=int, default=0, help="data set seed")
    ap.add_argument("--levers", action=argparse.BooleanOptionalAction, default=None,
                    help="also time thread vs process executors, JPEG planes off, malloc tuning, per-stage "
                         "worker times (default: on for full runs, off with --quick)")
    ap.add_argument("--lever-workloads", default="W1,W2", help="workloads of the levers section")
    ap.add_argument("--out", default=os.path.join(HERE, "results.md"), help="markdown file to write")
    a = ap.parse_args(argv)
    count = a.count or (16 if a.quick else 64)
    rounds = a.rounds or (1 if a.quick else 2)
    names = [w.strip().upper() for w in (a.workloads or ("W1,W2" if a.quick else ",".join(WORKLOADS))).split(",")]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workloads {unknown}; choose from {', '.join(WORKLOADS)}")
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    if set(methods) - set(METHODS):
        ap.error(f"unknown methods {sorted(set(methods) - set(METHODS))}; choose from {', '.join(METHODS)}")
    levers = (not a.quick) if a.levers is None else a.levers
    command = command_line("bench.py", argv)
    started = _dt.datetime.now().astimezone()
    load_start = loadavg()

    t_all = time.perf_counter()
    src_all = prepare_data(count, a.seed)
    srcs = {}
    for n in names:
        wl = WORKLOADS[n]
        srcs[n] = src_all if not wl.max_count or wl.max_count >= count else prepare_data(wl.max_count, a.seed)
    header = (f"Machine: {machine_line()}.  \nDate: {started:%Y-%m-%d %H:%M %Z}; load average {load_start} at the "
              f"start.  \nCommand: `{command}` ({count} images of {SIZE[0]}x{SIZE[1]}, "
              f"{rounds} round{'s' if rounds > 1 else ''}, best round shown).")
    print(header.replace("  \n", "\n"), flush=True)

    results: dict[tuple[str, str], list[Measure]] = {}
    server = None
    try:
        if "d" in methods:
            server = started_server("process")
        for r in range(rounds):
            for n in names:
                wl = WORKLOADS[n]
                order = methods[r % len(methods):] + methods[:r % len(methods)]
                for m in order:
                    with scratch_dir(f"{n}-{m}") as dst:
                        if m in PEER_MODES:
                            res = peer_measure(PEER_MODES[m], n, srcs[n], dst)
                        elif m == "c":
                            res = run_cli(wl.ops, srcs[n], dst, wl.fmt)
                        else:
                            res = http_measure(server, wl, srcs[n], dst)
                    results.setdefault((n, m), []).append(res)
                    print(f"round {r + 1}/{rounds} {n} {METHODS[m]:24s} {res.rate:7.2f} images/s "
                          f"(wall {res.wall:.2f} s, peak RSS {res.rss_mb:.0f} MB"
                          + (f", POST to start {res.extra['queued_ms']:.0f} ms" if "queued_ms" in res.extra else "")
                          + ")", flush=True)
    finally:
        if server is not None:
            server.stop()
    quality = planes_quality() if "W1" in names and "e" in methods else None

    rows = []
    notes = []
    for n in names:
        best = {m: best_of(results[(n, m)]) for m in methods if (n, m) in results}
        base = best.get("a")
        floor = best.get("e")
        pfloor = best.get("f")
        # Every method, the floor included, gets the same rounds; each is shown by its best round.
        for m, x in best.items():
            rows.append([n, METHODS[m], fmt_rate(x.rate),
                         f"{x.rate / base.rate:.2f}x" if base else "",
                         f"{100 * x.rate / floor.rate:.0f} %" if floor else "",
                         f"{100 * x.rate / pfloor.rate:.0f} %" if pfloor else "",
                         f"{x.rss_mb:.0f}", f"{1000 * x.cpu_s / x.images:.0f}" if m not in "ef" else "",
                         f"{x.out_bytes / x.in_bytes:.3f}" if x.in_bytes else "",
                         spread(results[(n, m)]), f"{x.wall:.2f}"])
        if floor is not None:
            notes += floor_notes(n, floor, pfloor, best.get("c"), quality if n == "W1" else None)
        if n == "W5" and "c" in best:
            notes.append(f"- W5 size ratio (output / input bytes): imgsrv "
                         f"{best['c'].out_bytes / best['c'].in_bytes:.3f}"
                         + (f", Pillow {best['a'].out_bytes / best['a'].in_bytes:.3f}" if "a" in best else "") + ".")
        if WORKLOADS[n].max_count and WORKLOADS[n].max_count < count:
            notes.append(f"- {n} runs on the first {WORKLOADS[n].max_count} images only (the naive loop detects "
                         f"faces at full size, seconds per image).")
    main_table = table(rows, ["workload", "method", "images/s", "ratio to (a)", "% of floor", "% of (f)",
                              "peak RSS MB", "CPU ms/img", "out/in bytes", "images/s all rounds", "wall s"])

    lever_md = ""
    if levers:
        lever_md = run_levers([n for n in a.lever_workloads.split(",") if n in WORKLOADS], src_all, rounds, results)

    md = (f"## Throughput ({count} images, {started:%Y-%m-%d})\n\n{header}\n\n{main_table}\n\n"
          + ("\n".join(notes) + "\n\n" if notes else "")
          + "Columns: images/s of the best round (CLI: its own summary, i.e. without interpreter start-up; "
            "POST /jobs: the job's started_at to finished_at, polled every 0.1 s; floor: best decode + best encode "
            f"per image / {CORES} cores, measured in every round like the others); % of floor: best round against "
            "the floor's best round; peak RSS: summed RSS of the measured process tree, sampled every 50 ms "
            "(pool workers' shared pages are counted in each); CPU ms/img: user+system CPU of the tree; "
            "wall s: the whole measured run, CLI start-up included.\n\n"
          + lever_md
          + f"Load average {load_start} at the start, {loadavg()} at the end; the run took "
            f"{time.perf_counter() - t_all:.0f} s.\n")
    publish(md, a.out)
    return 0


def floor_notes(n: str, floor: Measure, pfloor: Measure | None, cli: Measure | None, quality: dict | None) -> list[str]:
    fx = floor.extra
    notes = [f"- {n} floor: decode {fx['decode_ms']:.1f} ms"
             f"{' (reduced 1/' + str(fx['reduce']) + ')' if fx['reduce'] > 1 else ''}"
             f" + encode {fx['encode_ms']:.1f} ms per image, single-threaded, "
             f"/ {CORES} cores = {fmt_rate(floor.rate)} images/s."]
    if "planes_decode_ms" in fx:
        pd, pe = fx["planes_decode_ms"], fx["planes_encode_ms"]
        planes_rate = CORES * 1000 / (pd + pe)
        notes.append(f"- {n} runs on the JPEG's YCbCr planes (no colour conversion). Its own codec work "
                     f"(libturbojpeg), measured as the floor is: decode to planes {pd:.1f} ms + encode "
                     f"from planes {pe:.1f} ms per image / {CORES} cores = {fmt_rate(planes_rate)} images/s"
                     + (f"; the CLI is at {100 * cli.rate / planes_rate:.0f} % of that" if cli else "") + ".")
    if quality:
        q = quality
        notes.append(f"- {n} output quality on {q['psnr_images']} images (imgsrv's outputs with and without "
                     f"the planes, through the CLI): PSNR between the two at least {q['psnr_between_min']:.1f} dB "
                     f"({q['psnr_identical']} identical); against the source's pixels after the "
                     f"operations, {q['psnr_planes_src']:.2f} dB mean with the planes, "
                     f"{q['psnr_usual_src']:.2f} dB without.")
    if pfloor is not None:
        notes.append(f"- {n} floor with {CORES} cores at once (f): decode {pfloor.extra['decode_ms']:.1f} ms + "
                     f"encode {pfloor.extra['encode_ms']:.1f} ms per image, the mean of the "
                     f"{CORES} processes; the images over the slower process's time = "
                     f"{fmt_rate(pfloor.rate)} images/s, {100 * pfloor.rate / floor.rate:.0f} % of (e): "
                     f"how far the codecs scale from one core to {CORES} on this machine.")
    w2 = fx.get("w2")
    if w2:
        d = fx["decode_variants_ms"]
        notes.append(
            f"- W2 reduced decode: cv2.imdecode full {d['full']:.1f} ms, REDUCED_COLOR_2 {d['reduced_2']:.1f} "
            f"ms, REDUCED_COLOR_4 {d['reduced_4']:.1f} ms, REDUCED_COLOR_8 {d['reduced_8']:.1f} ms "
            f"(GRAYSCALE {d['grayscale']:.1f} ms): decode speed-up {d['full'] / d['reduced_4']:.2f}x at 1/4. "
            f"Whole W2 pipeline (decode + resize + encode, with OpenCV): full {w2['full_ms']:.1f} ms, "
            f"reduced {w2['reduced_ms']:.1f} ms per image = {w2['full_ms'] / w2['reduced_ms']:.2f}x; "
            f"output sizes equal for every image: {'yes' if w2['all_same_size'] else 'NO'} "
            f"({w2['shape'][0]}x{w2['shape'][1]} both ways); PSNR reduced vs full "
            f"{w2['psnr_mean']:.1f} dB mean, {w2['psnr_min']:.1f} dB min.")
    return notes


def stage_times(wl: str, src: str, env: dict) -> dict:
    """A one-worker server (thread executor) runs the workload; per image, the worker's stage and
    operation times from GET /metrics, its elapsed_ms from GET /jobs/{id}/results, and the tree's
    minor faults."""
    server = started_server("thread", workers=1, env=env, wl=wl)
    try:
        with scratch_dir(f"stages-{wl}") as dst:
            before, sampler = stage_seconds(read_metrics(server.url)), TreeSampler(server.pid)
            faults0 = sampler.cpu()[1]
            _wall, info = server.run_job(workload_job(WORKLOADS[wl], os.path.relpath(src, DATA),
                                                      os.path.relpath(dst, DATA)))
            faults1 = sampler.cpu()[1]
            after = stage_seconds(read_metrics(server.url))
            results = server.job_results(info["id"])
    finally:
        server.stop()
    stages = {k: 1000 * (s - before.get(k, (0.0, 0))[0]) / (c - before.get(k, (0.0, 0))[1])
              for k, (s, c) in after.items() if c > before.get(k, (0.0, 0))[1]}
    return {"stages_ms": stages, "task_ms": statistics.mean(r["elapsed_ms"] for r in results),
            "faults": (faults1 - faults0) / len(results)}


def run_levers(names: list[str], src: str, rounds: int, results: dict) -> str:
    """The CLI with each executor, with JPEG planes off and with malloc tuned; the HTTP job with the
    thread executor; per-stage worker times."""
    variants = [
        ("CLI process (default)", dict(executor="process")),
        ("CLI process, JPEG planes off", dict(executor="process", env_extra=PLANES_OFF)),
        ("CLI thread", dict(executor="thread")),
        ("CLI process + malloc env", dict(executor="process", env_extra=MALLOC_TUNED)),
        ("CLI thread + malloc env", dict(executor="thread", env_extra=MALLOC_TUNED)),
        ("HTTP POST /jobs, thread executor", dict(http="thread")),
    ]
    out: dict[tuple[str, str], list[Measure]] = {}
    stages: dict[str, dict] = {}
    fixed: dict[str, list[Measure]] = {}
    servers: dict[str, Server] = {}
    try:
        for r in range(rounds):
            for n in names:
                wl = WORKLOADS[n]
                order = variants[r % len(variants):] + variants[:r % len(variants)]
                for label, v in order:
                    with scratch_dir(f"lever-{n}") as dst:
                        if "http" in v:
                            if v["http"] not in servers:
                                servers[v["http"]] = started_server(v["http"])
                            res = http_measure(servers[v["http"]], wl, src, dst)
                        else:
                            res = run_cli(wl.ops, src, dst, wl.fmt, v["executor"], env_extra=v.get("env_extra"))
                    out.setdefault((n, label), []).append(res)
                    print(f"levers round {r + 1}/{rounds} {n} {label:40s} {res.rate:7.2f} images/s "
                          f"({1000 * res.cpu_s / res.images:.0f} CPU ms/img, "
                          f"{res.faults / res.images:.0f} faults/img)", flush=True)
            for ex in ("process", "thread"):  # the CLI's fixed cost: a 2-image folder
                with scratch_dir("lever-fixed") as dst:
                    fixed.setdefault(ex, []).append(run_cli(WORKLOADS["W1"].ops, prepare_data(2), dst, executor=ex))
            if r == 0:
                for n in names:
                    for env_label, env in (("default malloc", {}), ("malloc env", MALLOC_TUNED),
                                           ("JPEG planes off", PLANES_OFF)):
                        stages[f"{n}, {env_label}"] = stage_times(n, src, env)
    finally:
        for s in servers.values():
            s.stop()

    rows = []
    for n in names:
        floor = best_of(results[(n, "e")]) if (n, "e") in results else None
        for label, _v in variants:
            ms = out[(n, label)]
            x = best_of(ms)
            rows.append([n, label, fmt_rate(x.rate), f"{100 * x.rate / floor.rate:.0f} %" if floor else "",
                         f"{1000 * x.cpu_s / x.images:.0f}", f"{x.faults / x.images:.0f}", f"{x.rss_mb:.0f}",
                         spread(ms)])
    lever_table = table(rows, ["workload", "variant", "images/s", "% of floor", "CPU ms/img", "minor faults/img",
                               "peak RSS MB", "images/s all rounds"])
    seen = list(dict.fromkeys(k for st in stages.values() for k in st["stages_ms"]))
    edges = ("read", "decode", "encode", "write")
    stage_names = ([k for k in edges[:2] if k in seen] + [k for k in seen if k not in edges]
                   + [k for k in edges[2:] if k in seen])
    srows = [[label, f"{st['task_ms']:.1f}"] + [f"{st['stages_ms'].get(k, 0.0):.1f}" for k in stage_names]
             + [f"{st['faults']:.0f}"] for label, st in stages.items()]
    stage_table = table(srows, ["one worker thread", "total ms"] + [f"{k} ms" for k in stage_names]
                        + ["minor faults/img"])
    malloc = " ".join(f"{k}={v}" for k, v in MALLOC_TUNED.items())
    fixed_md = "; ".join(
        f"{ex} executor {min(m.wall for m in ms):.2f} s wall, of which "
        f"{min(m.elapsed for m in ms):.2f} s in its own timing (pool start-up + 2 images), "
        f"{min(m.cpu_s for m in ms):.2f} s CPU" for ex, ms in fixed.items())
    return (f"### Levers ({', '.join(names)})\n\n{lever_table}\n\n"
            f"malloc env = `{malloc}`. JPEG planes off = `IMGSRV_JPEG_PLANES=false`. "
            "minor faults/img: page faults of the tree per image (the allocation tax).\n\n"
            f"The CLI's fixed cost (W1 on a 2-image folder, best round): {fixed_md}.\n\n"
            "Per-stage worker times, images in sequence on a server with one worker thread "
            "(`IMGSRV_WORKERS=1 IMGSRV_EXECUTOR=thread`, warmed up with 2 images; mean ms per image of "
            "`imgsrv_operation_duration_seconds` from GET /metrics; total: the images' `elapsed_ms` from "
            "GET /jobs/{id}/results; faults: the server's whole tree):\n\n"
            f"{stage_table}\n\n")


if __name__ == "__main__":
    sys.exit(main())

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
Within a round the order of the methods rotates, and rounds alternate, to cancel machine
drift; the table shows the best round (the spread of all rounds is in its own column). The floor
is measured in every round too, so that it gets as many chances as the methods: on a shared
machine the speed drifts by 10-15 % within minutes.

The floor is the cost of decoding to pixels and encoding them. imgsrv runs JPEG-to-JPEG crops and
fills (W1) on the JPEG's YCbCr planes instead, which skips the colour conversions the floor pays;
for such a workload the notes also give that path's own codec cost, measured the same way.

The levers section (full runs; --levers / --no-levers) times imgsrv's own choices: the CLI
with the process and the thread executor, with JPEG planes off, with glibc malloc tuned by
environment, imgsrv's worker function (run_task) on a plain ThreadPool, and the per-stage times
of run_task.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data")
PY = sys.executable
sys.path.insert(0, HERE)
sys.path.insert(1, PROJECT)

import dataset  # noqa: E402  (benchmarks/dataset.py)

SIZE = (2048, 1536)
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
PLANES_OFF = {"IMGSRV_JPEG_PLANES": "false"}  # crops and fills of JPEGs decode to BGR (app/imaging/planar.py)
MALLOC_TUNED = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(1024 ** 3)}


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    ops: tuple[str, ...]
    fmt: str  # output format: jpeg or png
    max_count: int | None = None  # slow workloads run on the first images only


WORKLOADS = {w.name: w for w in (
    Workload("W1", "seed: crop bottom 100, black 200x100 box, JPEG q75",
             ("crop=bottom:100", "redact=0,-100,200,100", "quality=75"), "jpeg"),
    Workload("W2", "resize 25 %, JPEG q80", ("resize=0.25", "quality=80"), "jpeg"),
    Workload("W3", "grayscale + adaptive Gaussian threshold, PNG", ("grayscale", "threshold=adaptive_gaussian"),
             "png"),
    Workload("W4", "splitQuadrants=True + resize=2 (4 outputs, JPEG q90)", ("splitQuadrants=True", "resize=2"),
             "jpeg"),
    Workload("W5", "re-compress JPEG q30 optimize", ("encode=quality:30,optimize:true",), "jpeg"),
    Workload("W6", "faces=blur (Haar cascade)", ("faces=blur",), "jpeg", max_count=16),
)}
METHODS = {
    "a": "(a) Pillow loop",
    "b": f"(b) Pillow Pool({CORES})",
    "c": "(c) imgsrv CLI",
    "d": "(d) imgsrv POST /jobs",
    "e": "(e) floor",
    "f": f"(f) floor, {CORES} cores at once",
}


# ---------------------------------------------------------------------------------------------
# The naive Pillow versions of the workloads (what the seeds did), run by methods (a) and (b)
# ---------------------------------------------------------------------------------------------

def _out_name(dst_dir: str, src: str, fmt: str, suffix: str = "") -> str:
    stem = os.path.splitext(os.path.basename(src))[0]
    return os.path.join(dst_dir, stem + suffix + (".png" if fmt == "png" else ".jpg"))


def pil_workload(name: str, src: str, dst_dir: str) -> int:
    """Run workload ``name`` on one file with Pillow; returns the bytes written."""
    from PIL import Image, ImageDraw, ImageFilter

    written = []
    with Image.open(src) as im:
        w, h = im.size
        if name == "W1":
            im = im.crop((0, 0, w, h - 100))
            ImageDraw.Draw(im).rectangle([0, h - 200, 199, h - 101], fill=(0, 0, 0))
            written.append(_out_name(dst_dir, src, "jpeg"))
            im.save(written[-1], "JPEG", quality=75)
        elif name == "W2":
            im = im.resize((round(w * 0.25), round(h * 0.25)))
            written.append(_out_name(dst_dir, src, "jpeg"))
            im.save(written[-1], "JPEG", quality=80)
        elif name == "W3":
            import numpy as np

            g = im.convert("L")
            # OpenCV's adaptive Gaussian threshold, block 11, C 2: a Gaussian of sigma 2 around each pixel.
            mean = np.asarray(g.filter(ImageFilter.GaussianBlur(2)), dtype=np.int16)
            out = (np.asarray(g, dtype=np.int16) > mean - 2).astype(np.uint8) * 255
            written.append(_out_name(dst_dir, src, "png"))
            Image.fromarray(out, "L").save(written[-1], "PNG", compress_level=3)
        elif name == "W4":
            im.load()
            for i, (r, c) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
                box = (c * w // 2, r * h // 2, (c + 1) * w // 2, (r + 1) * h // 2)
                tile = im.crop(box)
                tile = tile.resize((2 * tile.width, 2 * tile.height), Image.Resampling.BILINEAR)
                written.append(_out_name(dst_dir, src, "jpeg", f"_{i}"))
                tile.save(written[-1], "JPEG", quality=90)
        elif name == "W5":
            written.append(_out_name(dst_dir, src, "jpeg"))
            im.save(written[-1], "JPEG", quality=30, optimize=True)
        elif name == "W6":
            import cv2
            import numpy as np

            im = im.convert("RGB")
            gray = cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2GRAY)
            for (x, y, bw, bh) in _cascade().detectMultiScale(gray, 1.1, 5, minSize=(30, 30)):
                x, y, bw, bh = int(x), int(y), int(bw), int(bh)
                region = im.crop((x, y, x + bw, y + bh)).filter(ImageFilter.GaussianBlur(max(2, min(bw, bh) // 8)))
                im.paste(region, (x, y))
            written.append(_out_name(dst_dir, src, "jpeg"))
            im.save(written[-1], "JPEG", quality=90)
        else:  # pragma: no cover
            raise ValueError(name)
    return sum(os.path.getsize(p) for p in written)


_CASCADE = None


def _cascade():
    global _CASCADE
    if _CASCADE is None:
        import cv2

        _CASCADE = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    return _CASCADE


def _pil_job(args):
    return pil_workload(*args)


# ---------------------------------------------------------------------------------------------
# Child processes: python bench.py --_child MODE ... prints one JSON line
# ---------------------------------------------------------------------------------------------

def _files(src: str) -> list[str]:
    return sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".jpg"))


def child_naive(mode: str, wl: str, src: str, dst: str) -> dict:
    files = _files(src)
    in_bytes = sum(os.path.getsize(f) for f in files)
    t = time.perf_counter()
    if mode == "seq":
        out_bytes = sum(pil_workload(wl, f, dst) for f in files)
    else:
        import multiprocessing

        with multiprocessing.Pool(CORES) as pool:
            out_bytes = sum(pool.map(_pil_job, [(wl, f, dst) for f in files], chunksize=1))
    elapsed = time.perf_counter() - t
    return {"elapsed": elapsed, "images": len(files), "in_bytes": in_bytes, "out_bytes": out_bytes}


def _pipeline(wl: Workload):
    from app.operations import parse_operation
    from app.pipeline import Pipeline

    return Pipeline(tuple(op for op in map(parse_operation, wl.ops) if op is not None))


def plan_decode(pipe, width: int, height: int):
    """imgsrv's decode plan: (reduce factor, luminance only, operations to run on the decoded image)."""
    plan = pipe.plan_decode(width, height)
    return plan.reduce, plan.gray, plan.operations


def _best(fn, repeat: int = 3, slow: float = 0.08):
    """Best time of ``repeat`` calls (2 when one call takes over ``slow`` seconds) and the result."""
    best, result = float("inf"), None
    for i in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
        if i == 0 and best > slow:
            repeat = min(repeat, 2)
    return best, result


def _floor_codec(wl_name: str):
    """The decode flag, the operations left after a reduced decode, and the encoder of a workload."""
    import cv2

    wl = WORKLOADS[wl_name]
    pipe = _pipeline(wl)
    enc = pipe.encode
    ext = ".png" if wl.fmt == "png" else ".jpg"
    params = ([cv2.IMWRITE_PNG_COMPRESSION, enc.compression] if wl.fmt == "png" else
              [cv2.IMWRITE_JPEG_QUALITY, enc.quality, cv2.IMWRITE_JPEG_OPTIMIZE, int(enc.optimize),
               cv2.IMWRITE_JPEG_PROGRESSIVE, int(enc.progressive)])
    reduce, gray, reduced_ops = plan_decode(pipe, *SIZE)
    if gray:
        flag = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[reduce]
    else:
        flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
    return pipe, flag, reduce, gray, reduced_ops, ext, params


def floor_times(wl_name: str, files: list[str]) -> dict:
    """For each image, the best of 3 decodes and the best of 3 encodes of its output(s), in seconds."""
    import cv2
    import numpy as np

    from app.operations import Context
    from app.pipeline import run

    cv2.setNumThreads(1)
    _pipe, flag, _reduce, _gray, reduced_ops, ext, params = _floor_codec(wl_name)
    dec, encs, in_bytes, out_bytes = [], [], 0, 0
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        in_bytes += len(data)
        buf = np.frombuffer(data, np.uint8)
        t, img = _best(lambda: cv2.imdecode(buf, flag))
        dec.append(t)
        t_enc = 0.0
        for item in run(img, reduced_ops, Context(10 ** 9)):
            t, (_ok, blob) = _best(lambda: cv2.imencode(ext, item.image, params))
            t_enc += t
            out_bytes += len(blob)
        encs.append(t_enc)
    return {"dec": dec, "enc": encs, "in_bytes": in_bytes, "out_bytes": out_bytes}


def child_floor(wl_name: str, src: str) -> dict:
    """Best single-threaded decode and encode per image; the W2 reduced-decode comparison."""
    import cv2
    import numpy as np

    from app.imaging import codec
    from app.operations import Context
    from app.pipeline import run

    files = _files(src)
    ft = floor_times(wl_name, files)
    dec, encs = ft["dec"], ft["enc"]
    pipe, _flag, reduce, gray, reduced_ops, _ext, _params = _floor_codec(wl_name)
    enc = pipe.encode
    extra: dict = {"reduce": reduce, "gray": gray}
    if wl_name == "W2":  # the comparison, on the first 16 images
        variants = {"full": cv2.IMREAD_COLOR, "reduced_2": cv2.IMREAD_REDUCED_COLOR_2,
                    "reduced_4": cv2.IMREAD_REDUCED_COLOR_4, "reduced_8": cv2.IMREAD_REDUCED_COLOR_8,
                    "grayscale": cv2.IMREAD_GRAYSCALE}
        var_ms: dict[str, list[float]] = {k: [] for k in variants}
        w2: dict = {"full_ms": [], "reduced_ms": [], "same_size": [], "psnr": []}
        for f in files[:16]:
            with open(f, "rb") as fh:
                data = fh.read()
            buf = np.frombuffer(data, np.uint8)
            for k, v in variants.items():
                var_ms[k].append(_best(lambda: cv2.imdecode(buf, v), 2)[0] * 1000)
            header = codec.probe(data, 10 ** 9)

            def path(factor):
                image = codec.decode(data, header, factor)
                out = run(image, reduced_ops if factor > 1 else pipe.operations, Context(10 ** 9))[0].image
                return out, codec.encode(out, "jpeg", enc.quality)

            tf, (out_f, _bf) = _best(lambda: path(1), 2)
            tr, (out_r, _br) = _best(lambda: path(reduce), 2)
            w2["full_ms"].append(tf * 1000)
            w2["reduced_ms"].append(tr * 1000)
            w2["same_size"].append(out_f.shape == out_r.shape)
            w2["psnr"].append(float(cv2.PSNR(out_f, out_r)) if out_f.shape == out_r.shape else 0.0)
            w2.setdefault("shape", [out_f.shape[1], out_f.shape[0], out_r.shape[1], out_r.shape[0]])
        extra["decode_variants_ms"] = {k: statistics.mean(v) for k, v in var_ms.items()}
        extra["w2"] = {"full_ms": statistics.mean(w2["full_ms"]), "reduced_ms": statistics.mean(w2["reduced_ms"]),
                       "all_same_size": all(w2["same_size"]), "psnr_min": min(w2["psnr"]),
                       "psnr_mean": statistics.mean(w2["psnr"]), "shape": w2["shape"]}
    if WORKLOADS[wl_name].fmt == "jpeg":
        extra.update(planes_codec(pipe, files))
    per_image = statistics.mean(dec) + statistics.mean(encs)
    return {"elapsed": per_image * len(files) / CORES, "images": len(files), "in_bytes": ft["in_bytes"],
            "out_bytes": ft["out_bytes"], "decode_ms": statistics.mean(dec) * 1000,
            "encode_ms": statistics.mean(encs) * 1000, **extra}


def planes_codec(pipe, files: list[str]) -> dict:
    """For a JPEG-to-JPEG workload imgsrv runs on the YCbCr planes (app/imaging/planar.py): the
    best decode to planes and the best encode from them per image, as the floor measures the
    codecs. (The data set's JPEGs are all 4:2:0 and upright, as the planes need.)"""
    from app.imaging import planar
    from app.pipeline import apply_planes

    steps = pipe.plan_planes(*SIZE)
    if steps is None or planar.unavailable() is not None:
        return {}
    dec, enc = [], []
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        t, planes = _best(lambda: planar.decode(data))
        if planes is None:
            return {}
        dec.append(t)
        planes = apply_planes(planes, steps)
        enc.append(_best(lambda: planar.encode(planes, pipe.encode.quality))[0])
    return {"planes_decode_ms": statistics.mean(dec) * 1000, "planes_encode_ms": statistics.mean(enc) * 1000,
            **planes_quality(pipe, files[:16])}


def planes_quality(pipe, files: list[str]) -> dict:
    """PSNR of imgsrv's outputs with and without the planes: against each other, and against the
    source's pixels after the workload's operations (what a lossless output would hold)."""
    import cv2
    import numpy as np

    from app.imaging import codec
    from app.operations import Context
    from app.pipeline import Timings, run
    from app.worker import Source, render

    between, planes_src, usual_src = [], [], []
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        header = codec.probe(data, 10 ** 9)
        out = {planes: cv2.imdecode(np.frombuffer(render(Source(data), header, pipe, "jpeg", 10 ** 9, planes,
                                                         Timings())[0].blob, np.uint8), cv2.IMREAD_COLOR)
               for planes in (True, False)}
        (source,) = run(codec.decode(data, header), pipe.operations, Context(10 ** 9))
        between.append(cv2.PSNR(out[True], out[False]))
        planes_src.append(cv2.PSNR(out[True], source.image))
        usual_src.append(cv2.PSNR(out[False], source.image))
    return {"psnr_between_min": min(between), "psnr_identical": sum(b >= 100 for b in between),
            "psnr_images": len(files), "psnr_planes_src": statistics.mean(planes_src),
            "psnr_usual_src": statistics.mean(usual_src)}


def _warm_codec(_i: int) -> None:
    import cv2  # noqa: F401


def child_parallel_floor(wl_name: str, src: str) -> dict:
    """The floor's measurement run on every core at once: each of CORES processes takes every
    CORES-th image. images / the busiest process's sum of best times is what the codecs can do
    on this machine with all cores busy (the floor assumes they scale perfectly)."""
    import multiprocessing

    files = _files(src)
    parts = [files[k::CORES] for k in range(CORES)]
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(CORES) as pool:
        pool.map(_warm_codec, range(CORES))  # processes up, OpenCV loaded, before anything is timed
        results = pool.starmap(floor_times, [(wl_name, part) for part in parts])
    busiest = max(sum(r["dec"]) + sum(r["enc"]) for r in results)
    dec = [t for r in results for t in r["dec"]]
    enc = [t for r in results for t in r["enc"]]
    return {"elapsed": busiest, "images": len(files), "in_bytes": sum(r["in_bytes"] for r in results),
            "out_bytes": sum(r["out_bytes"] for r in results), "decode_ms": statistics.mean(dec) * 1000,
            "encode_ms": statistics.mean(enc) * 1000}


def _task(wl: Workload, dst: str, f: str, planes: bool):
    from app.storage import output_names
    from app.worker import Task

    pipe = _pipeline(wl)
    out = _out_name(dst, f, wl.fmt)
    return Task(f, tuple(output_names(out, pipe.fanout_shape)), pipe, 10 ** 9, planes=planes)


def child_runtask(mode: str, wl_name: str, src: str, dst: str) -> dict:
    """imgsrv's worker function without the engine: sequential (per-stage times) or a ThreadPool."""
    from concurrent.futures import ThreadPoolExecutor

    from app.config import Settings
    from app.worker import init_worker, run_task

    wl = WORKLOADS[wl_name]
    planes = Settings().jpeg_planes  # IMGSRV_JPEG_PLANES, as the service reads it
    tasks = [_task(wl, dst, f, planes) for f in _files(src)]
    t = time.perf_counter()
    if mode == "stages":
        init_worker()
        reports = [run_task(task) for task in tasks]
    else:
        with ThreadPoolExecutor(CORES, initializer=init_worker) as pool:
            reports = list(pool.map(run_task, tasks))
    elapsed = time.perf_counter() - t
    bad = [r for r in reports if r.status != "ok"]
    if bad:
        raise SystemExit(f"run_task failed: {bad[0].error_code}: {bad[0].error_message}")
    stages: dict[str, float] = {}
    for r in reports:
        for k, v in r.timings.items():
            stages[k] = stages.get(k, 0.0) + v / len(reports)
    return {"elapsed": elapsed, "images": len(reports), "in_bytes": sum(r.input_bytes for r in reports),
            "out_bytes": sum(o.bytes for r in reports for o in r.outputs), "stages_ms": stages,
            "task_ms": statistics.mean(r.elapsed_ms for r in reports)}


def child_main(argv: list[str]) -> int:
    mode, wl, src, dst = argv
    if mode in ("seq", "pool"):
        res = child_naive(mode, wl, src, dst)
    elif mode == "floor":
        res = child_floor(wl, src)
    elif mode == "pfloor":
        res = child_parallel_floor(wl, src)
    else:
        res = child_runtask(mode, wl, src, dst)
    print(json.dumps(res))
    return 0


# ---------------------------------------------------------------------------------------------
# Measuring a process tree: peak RSS (sampled), CPU time, page faults
# ---------------------------------------------------------------------------------------------

def _minflt(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[7])


class TreeSampler:
    """Samples the summed RSS of a process and its descendants every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.05):
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.seen: dict[int, tuple[float, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def procs(self):
        import psutil

        try:
            return [self.root] + self.root.children(recursive=True)
        except psutil.Error:
            return []

    def sample(self) -> None:
        import psutil

        total = 0
        for p in self.procs():
            with contextlib.suppress(psutil.Error, OSError, ValueError, IndexError):
                total += p.memory_info().rss
                t = p.cpu_times()
                self.seen[p.pid] = (t.user + t.system, _minflt(p.pid))
        self.peak = max(self.peak, total)

    def seen_totals(self) -> tuple[float, int]:
        """CPU seconds and minor faults of every process seen, as of its last sample."""
        return sum(c for c, _f in self.seen.values()), sum(f for _c, f in self.seen.values())

    def cpu(self) -> tuple[float, int]:
        """CPU seconds (user+system) and minor page faults of the live tree, from /proc."""
        import psutil

        cpu, faults = 0.0, 0
        for p in self.procs():
            with contextlib.suppress(psutil.Error, OSError):
                t = p.cpu_times()
                cpu += t.user + t.system
                faults += _minflt(p.pid)
        return cpu, faults

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeSampler":
        self.peak = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Measure:
    elapsed: float  # seconds the method took for the images (its own figure)
    images: int
    wall: float  # wall seconds of the whole measured run (process start-up included where there is one)
    rss_mb: float
    cpu_s: float
    faults: int
    in_bytes: int
    out_bytes: int
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.images / self.elapsed if self.elapsed > 0 else 0.0


def kill_tree(pid: int) -> None:
    import psutil

    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(procs, timeout=10)


def run_process(cmd: list[str], env: dict | None = None, cwd: str = PROJECT) -> tuple[str, float, float, float, int]:
    """Run a command; its stdout, wall seconds, peak tree RSS (MB), CPU seconds and minor faults of the tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid)
    try:
        with sampler:
            out, err = proc.communicate()
    except BaseException:  # Ctrl-C or an error here: stop what this run started, by pid
        kill_tree(proc.pid)
        raise
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited with {proc.returncode}:\n{out[-2000:]}\n{err[-4000:]}")
    # Reaped descendants are in RUSAGE_CHILDREN; orphans (a forkserver and its workers) are not,
    # so the per-process samples count too (each as of its last sample): the larger figure wins.
    seen_cpu, seen_faults = sampler.seen_totals()
    cpu = max((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), seen_cpu)
    return out, wall, sampler.peak / 2 ** 20, cpu, max(after.ru_minflt - before.ru_minflt, seen_faults)


def child_measure(mode: str, wl: str, src: str, dst: str, env: dict | None = None) -> Measure:
    out, wall, rss, cpu, faults = run_process([PY, os.path.abspath(__file__), "--_child", mode, wl, src, dst], env)
    res = json.loads(out.strip().splitlines()[-1])
    return Measure(res.pop("elapsed"), res.pop("images"), wall, rss, cpu, faults, res.pop("in_bytes"),
                   res.pop("out_bytes"), res)


SUMMARY_RE = re.compile(r"images (\d+) of (\d+): (\d+) succeeded, (\d+) failed, (\d+) skipped")
RATE_RE = re.compile(r"([\d.]+) images/s in ([\d.]+) s")


def cli_measure(wl: Workload, src: str, dst: str, executor: str | None = None, env_extra: dict | None = None,
                workers: int | None = None) -> Measure:
    cmd = [PY, "main.py", "run", "--source", src, "--output-dir", dst, "--no-skip", "--quiet"]
    for op in wl.ops:
        cmd += ["--op", op]
    if wl.fmt == "png":
        cmd += ["--format", "png"]
    if executor:
        cmd += ["--executor", executor]
    if workers:
        cmd += ["--workers", str(workers)]
    env = {**os.environ, **(env_extra or {})}
    env.pop("IMGSRV_DATA_ROOT", None)
    out, wall, rss, cpu, faults = run_process(cmd, env)
    m, r = SUMMARY_RE.search(out), RATE_RE.search(out)
    if not m or not r:
        raise RuntimeError(f"cannot read the CLI summary:\n{out}")
    done, total, ok, failed, skipped = map(int, m.groups())
    if ok != total or failed or skipped:
        raise RuntimeError(f"the CLI did not process every image:\n{out}")
    rate = float(r.group(1))
    in_bytes = sum(os.path.getsize(f) for f in _files(src))
    return Measure(done / rate, done, wall, rss, cpu, faults, in_bytes, _tree_bytes(dst),
                   {"summary_seconds": float(r.group(2))})


def _tree_bytes(folder: str) -> int:
    """Bytes of the image files under ``folder`` (the CLI's own state folder left out)."""
    total = 0
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != ".imgsrv"]
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


# ---------------------------------------------------------------------------------------------
# The HTTP server (method d)
# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python main.py --port FREE`` with IMGSRV_DATA_ROOT set; stopped (by its pid) on exit."""

    def __init__(self, data_root: str, executor: str = "process", env_extra: dict | None = None,
                 workers: int | None = None):
        self.data_root = data_root
        self.executor = executor
        self.env_extra = env_extra or {}
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.state = tempfile.mkdtemp(prefix="state-", dir=os.path.join(DATA, "runs"))

    def __enter__(self) -> "Server":
        import httpx

        env = {**os.environ, "IMGSRV_DATA_ROOT": self.data_root, "IMGSRV_STATE_DIR": self.state,
               "IMGSRV_EXECUTOR": self.executor, "IMGSRV_LOG_LEVEL": "warning", **self.env_extra}
        if self.workers:
            env["IMGSRV_WORKERS"] = str(self.workers)
        self.log = open(os.path.join(self.state, "server.log"), "w")
        self.proc = subprocess.Popen([PY, "main.py", "--port", str(self.port)], cwd=PROJECT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}; see {self.log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    self.client = httpx.Client(base_url=self.url, timeout=120)
                    return self
            time.sleep(0.1)
        raise RuntimeError("the server did not answer /health within 60 s")

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.state, ignore_errors=True)

    def job(self, wl: Workload, src_rel: str, out_rel: str, poll: float = 0.1) -> tuple[float, dict]:
        body = {"source": {"dir": src_rel, "pattern": "*.jpg"}, "output_dir": out_rel,
                "output_format": "png" if wl.fmt == "png" else None, "operations": list(wl.ops),
                "options": {"skip_existing": False}}
        t = time.perf_counter()
        r = self.client.post("/jobs", json=body)
        if r.status_code != 202:
            raise RuntimeError(f"POST /jobs answered {r.status_code}: {r.text}")
        job_id = r.json()["id"]
        while True:
            info = self.client.get(f"/jobs/{job_id}").json()
            if info["status"] not in ("queued", "running"):
                break
            time.sleep(poll)
        wall = time.perf_counter() - t
        if info["status"] != "succeeded" or info["succeeded"] != info["total"]:
            raise RuntimeError(f"job {job_id} ended {info['status']}: {json.dumps(info)[:2000]}")
        return wall, info


def http_measure(server: Server, wl: Workload, src: str, dst: str) -> Measure:
    src_rel, dst_rel = os.path.relpath(src, server.data_root), os.path.relpath(dst, server.data_root)
    sampler = TreeSampler(server.proc.pid)
    cpu0, faults0 = sampler.cpu()
    with sampler:
        wall, info = server.job(wl, src_rel, dst_rel)
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


# ---------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------

def machine_line() -> str:
    import cv2
    import numpy
    import PIL

    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    ram = "?"
    with contextlib.suppress(OSError):
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            ram = f"{kb / 2 ** 20:.1f} GiB"
    return (f"{cpu}, {CORES} cores, {ram} RAM, {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, OpenCV {cv2.__version__}, Pillow {PIL.__version__}, "
            f"NumPy {numpy.__version__}")


def loadavg() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    return "?"


def publish(md: str, out: str | None) -> None:
    """Print a report and write it to ``out`` (markdown) when given."""
    print()
    print(md)
    if out:
        with open(out, "w") as fh:
            fh.write(md)
        print(f"written to {os.path.relpath(out, PROJECT)}")


def prepare_data(count: int, seed: int) -> str:
    """Images 0..count-1 in a folder of exactly ``count`` files (hard links into the cache)."""
    cache = os.path.join(DATA, f"camtrap-v{dataset.GENERATOR_VERSION}-s{seed}-{SIZE[0]}x{SIZE[1]}")
    t = time.perf_counter()
    paths = dataset.generate(cache, count, seed, SIZE, quiet=True)
    took = time.perf_counter() - t
    if took > 1:
        print(f"generated the data set in {took:.1f} s ({cache})", flush=True)
    folder = os.path.join(cache, f"n{count}")
    if not os.path.isdir(folder) or len(os.listdir(folder)) != count:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for p in paths:
            try:
                os.link(p, os.path.join(folder, os.path.basename(p)))
            except OSError:
                shutil.copyfile(p, os.path.join(folder, os.path.basename(p)))
    return folder


def fresh_dir(tag: str) -> str:
    return tempfile.mkdtemp(prefix=f"{tag}-", dir=os.path.join(DATA, "runs"))


def fmt_rate(x: float) -> str:
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def spread(ms: list[Measure]) -> str:
    rates = [m.rate for m in ms]
    return fmt_rate(min(rates)) if len(rates) == 1 else f"{fmt_rate(min(rates))}-{fmt_rate(max(rates))}"


def table(rows: list[list[str]], header: list[str]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_child":
        return child_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="16 images, W1 and W2, 1 round, no levers (< 1 min)")
    ap.add_argument("--count", type=int, help="images per workload (default 64; 16 with --quick)")
    ap.add_argument("--workloads", help="comma-separated, e.g. W1,W2 (default all; W1,W2 with --quick)")
    ap.add_argument("--methods", default="a,b,c,d,e,f", help="subset of a,b,c,d,e,f")
    ap.add_argument("--rounds", type=int, help="rounds, alternating methods (default 2; 1 with --quick)")
    ap.add_argument("--seed", type=int, default=0, help="data set seed")
    ap.add_argument("--levers", action=argparse.BooleanOptionalAction, default=None,
                    help="also time thread vs process executors, malloc tuning, run_task stages "
                         "(default: on for full runs, off with --quick)")
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
    levers = (not a.quick) if a.levers is None else a.levers
    command = "python benchmarks/bench.py" + ("" if not argv else " " + shlex.join(argv))
    started = _dt.datetime.now().astimezone()
    load_start = loadavg()

    os.makedirs(os.path.join(DATA, "runs"), exist_ok=True)
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
    server = Server(DATA) if "d" in methods else None
    try:
        if server is not None:
            server.__enter__()
            warm = fresh_dir("warm")  # start the worker pool before anything is timed
            server.job(WORKLOADS["W1"], os.path.relpath(prepare_data(2, a.seed), DATA), os.path.relpath(warm, DATA))
            shutil.rmtree(warm, ignore_errors=True)
        for r in range(rounds):
            for n in names:
                wl = WORKLOADS[n]
                order = methods[r % len(methods):] + methods[:r % len(methods)]
                for m in order:
                    dst = fresh_dir(f"{n}-{m}")
                    try:
                        if m == "a":
                            res = child_measure("seq", n, srcs[n], dst)
                        elif m == "b":
                            res = child_measure("pool", n, srcs[n], dst)
                        elif m == "c":
                            res = cli_measure(wl, srcs[n], dst)
                        elif m == "d":
                            res = http_measure(server, wl, srcs[n], dst)
                        elif m == "e":
                            res = child_measure("floor", n, srcs[n], dst)
                        elif m == "f":
                            res = child_measure("pfloor", n, srcs[n], dst)
                        else:
                            raise SystemExit(f"unknown method {m!r}")
                    finally:
                        shutil.rmtree(dst, ignore_errors=True)
                    results.setdefault((n, m), []).append(res)
                    print(f"round {r + 1}/{rounds} {n} {METHODS[m]:24s} {res.rate:7.2f} images/s "
                          f"(wall {res.wall:.2f} s, peak RSS {res.rss_mb:.0f} MB"
                          + (f", POST to start {res.extra['queued_ms']:.0f} ms" if "queued_ms" in res.extra else "")
                          + ")", flush=True)
    finally:
        if server is not None:
            server.__exit__(None, None, None)

    rows = []
    notes = []
    for n in names:
        best = {m: max(results[(n, m)], key=lambda x: x.rate) for m in methods if (n, m) in results}
        base = best.get("a")
        floor = best.get("e")
        pfloor = best.get("f")
        # Every method, the floor included, gets the same rounds; each is shown by its best round.
        for m in methods:
            if m not in best:
                continue
            x = best[m]
            rows.append([n, METHODS[m], fmt_rate(x.rate),
                         f"{x.rate / base.rate:.2f}x" if base else "",
                         f"{100 * x.rate / floor.rate:.0f} %" if floor else "",
                         f"{100 * x.rate / pfloor.rate:.0f} %" if pfloor else "",
                         f"{x.rss_mb:.0f}", f"{1000 * x.cpu_s / x.images:.0f}" if m not in "ef" else "",
                         f"{x.out_bytes / x.in_bytes:.3f}" if x.in_bytes else "",
                         spread(results[(n, m)]), f"{x.wall:.2f}"])
        if floor is not None:
            notes.append(f"- {n} floor: decode {floor.extra['decode_ms']:.1f} ms"
                         f"{' (reduced 1/' + str(floor.extra['reduce']) + ')' if floor.extra['reduce'] > 1 else ''}"
                         f" + encode {floor.extra['encode_ms']:.1f} ms per image, single-threaded, "
                         f"/ {CORES} cores = {fmt_rate(floor.rate)} images/s.")
            if "planes_decode_ms" in floor.extra:
                pd, pe = floor.extra["planes_decode_ms"], floor.extra["planes_encode_ms"]
                planes_rate = CORES * 1000 / (pd + pe)
                notes.append(f"- {n} runs on the JPEG's YCbCr planes (no colour conversion; app/imaging/planar.py). "
                             f"Its own codec work, measured as the floor is: decode to planes {pd:.1f} ms + encode "
                             f"from planes {pe:.1f} ms per image / {CORES} cores = {fmt_rate(planes_rate)} images/s"
                             + (f"; the CLI is at {100 * best['c'].rate / planes_rate:.0f} % of that"
                                if "c" in best else "") + ".")
                fx = floor.extra
                notes.append(f"- {n} output quality on {fx['psnr_images']} images (imgsrv's outputs with and without "
                             f"the planes): PSNR between the two at least {fx['psnr_between_min']:.1f} dB "
                             f"({fx['psnr_identical']} identical); against the source's pixels after the "
                             f"operations, {fx['psnr_planes_src']:.2f} dB mean with the planes, "
                             f"{fx['psnr_usual_src']:.2f} dB without.")
            if pfloor is not None:
                notes.append(f"- {n} floor with {CORES} cores at once (f): decode {pfloor.extra['decode_ms']:.1f} ms + "
                             f"encode {pfloor.extra['encode_ms']:.1f} ms per image, the mean of the "
                             f"{CORES} processes; the images over the slower process's time = "
                             f"{fmt_rate(pfloor.rate)} images/s, {100 * pfloor.rate / floor.rate:.0f} % of (e): "
                             f"how far the codecs scale from one core to {CORES} on this machine.")
            w2 = floor.extra.get("w2")
            if w2:
                d = floor.extra["decode_variants_ms"]
                notes.append(
                    f"- W2 reduced decode: cv2.imdecode full {d['full']:.1f} ms, REDUCED_COLOR_2 {d['reduced_2']:.1f} "
                    f"ms, REDUCED_COLOR_4 {d['reduced_4']:.1f} ms, REDUCED_COLOR_8 {d['reduced_8']:.1f} ms "
                    f"(GRAYSCALE {d['grayscale']:.1f} ms): decode speed-up {d['full'] / d['reduced_4']:.2f}x at 1/4. "
                    f"Whole W2 pipeline (decode + resize + encode, imgsrv's functions): full {w2['full_ms']:.1f} ms, "
                    f"reduced {w2['reduced_ms']:.1f} ms per image = {w2['full_ms'] / w2['reduced_ms']:.2f}x; "
                    f"output sizes equal for every image: {'yes' if w2['all_same_size'] else 'NO'} "
                    f"({w2['shape'][0]}x{w2['shape'][1]} both ways); PSNR reduced vs full "
                    f"{w2['psnr_mean']:.1f} dB mean, {w2['psnr_min']:.1f} dB min.")
        if n == "W5" and "c" in best:
            notes.append(f"- W5 size ratio (output / input bytes): imgsrv {best['c'].out_bytes / best['c'].in_bytes:.3f}"
                         + (f", Pillow {best['a'].out_bytes / best['a'].in_bytes:.3f}" if "a" in best else "") + ".")
        if WORKLOADS[n].max_count and WORKLOADS[n].max_count < count:
            notes.append(f"- {n} runs on the first {WORKLOADS[n].max_count} images only (the naive loop detects "
                         f"faces at full size, seconds per image).")
    cols = ["workload", "method", "images/s", "ratio to (a)", "% of floor", "% of (f)", "peak RSS MB", "CPU ms/img",
            "out/in bytes", "images/s all rounds", "wall s"]
    main_table = table(rows, cols)

    lever_md = ""
    if levers:
        lever_md = run_levers([n for n in a.lever_workloads.split(",") if n in WORKLOADS], src_all, rounds, results)

    load_end = loadavg()
    total = time.perf_counter() - t_all
    md = (f"## Throughput ({count} images, {started:%Y-%m-%d})\n\n{header}\n\n{main_table}\n\n"
          + ("\n".join(notes) + "\n\n" if notes else "")
          + "Columns: images/s of the best round (CLI: its own summary, i.e. without interpreter start-up; "
            "POST /jobs: the job's started_at to finished_at, polled every 0.1 s; floor: best decode + best encode "
            f"per image / {CORES} cores, measured in every round like the others); % of floor: best round against "
            "the floor's best round; peak RSS: summed RSS of the measured process tree, sampled every 50 ms "
            "(pool workers' shared pages are counted in each); CPU ms/img: user+system CPU of the tree; "
            "wall s: the whole measured run, CLI start-up included.\n\n"
          + lever_md
          + f"Load average {load_start} at the start, {load_end} at the end; the run took {total:.0f} s.\n")
    publish(md, a.out)
    return 0


def run_levers(names: list[str], src: str, rounds: int, results: dict) -> str:
    """The CLI with each executor and with malloc tuned; run_task on a ThreadPool; per-stage times."""
    variants = [
        ("CLI process (default)", dict(executor="process")),
        ("CLI process, JPEG planes off", dict(executor="process", env_extra=PLANES_OFF)),
        ("CLI thread", dict(executor="thread")),
        ("CLI process + malloc env", dict(executor="process", env_extra=MALLOC_TUNED)),
        ("CLI thread + malloc env", dict(executor="thread", env_extra=MALLOC_TUNED)),
        (f"run_task on ThreadPool({CORES})", dict(child="threads")),
        (f"run_task on ThreadPool({CORES}) + malloc env", dict(child="threads", env_extra=MALLOC_TUNED)),
        ("HTTP POST /jobs, thread executor", dict(http="thread")),
    ]
    out: dict[tuple[str, str], list[Measure]] = {}
    stages: dict[str, Measure] = {}
    fixed: dict[str, list[Measure]] = {}
    servers: dict[str, Server] = {}
    try:
        for r in range(rounds):
            for n in names:
                wl = WORKLOADS[n]
                order = variants[r % len(variants):] + variants[:r % len(variants)]
                for label, v in order:
                    dst = fresh_dir(f"lever-{n}")
                    try:
                        if "child" in v:
                            env = {**os.environ, **v.get("env_extra", {})}
                            res = child_measure(v["child"], n, src, dst, env)
                        elif "http" in v:
                            if v["http"] not in servers:
                                servers[v["http"]] = Server(DATA, executor=v["http"]).__enter__()
                                warm = fresh_dir("warm")
                                servers[v["http"]].job(WORKLOADS["W1"], os.path.relpath(prepare_data(2, 0), DATA),
                                                       os.path.relpath(warm, DATA))
                                shutil.rmtree(warm, ignore_errors=True)
                            res = http_measure(servers[v["http"]], wl, src, dst)
                        else:
                            res = cli_measure(wl, src, dst, v["executor"], v.get("env_extra"))
                    finally:
                        shutil.rmtree(dst, ignore_errors=True)
                    out.setdefault((n, label), []).append(res)
                    print(f"levers round {r + 1}/{rounds} {n} {label:40s} {res.rate:7.2f} images/s "
                          f"({1000 * res.cpu_s / res.images:.0f} CPU ms/img, "
                          f"{res.faults / res.images:.0f} faults/img)", flush=True)
            for ex in ("process", "thread"):  # the CLI's fixed cost: a 2-image folder
                dst = fresh_dir("lever-fixed")
                try:
                    fixed.setdefault(ex, []).append(cli_measure(WORKLOADS["W1"], prepare_data(2, 0), dst, ex))
                finally:
                    shutil.rmtree(dst, ignore_errors=True)
            if r == 0:
                for n in names:
                    for env_label, env_extra in (("default malloc", {}), ("malloc env", MALLOC_TUNED),
                                                 ("JPEG planes off", PLANES_OFF)):
                        dst = fresh_dir(f"stages-{n}")
                        try:
                            stages[f"{n}, {env_label}"] = child_measure("stages", n, src, dst,
                                                                        {**os.environ, **env_extra})
                        finally:
                            shutil.rmtree(dst, ignore_errors=True)
    finally:
        for s in servers.values():
            s.__exit__(None, None, None)

    rows = []
    for n in names:
        floor = max(results[(n, "e")], key=lambda x: x.rate) if (n, "e") in results else None
        for label, _v in variants:
            ms = out[(n, label)]
            x = max(ms, key=lambda m: m.rate)
            rows.append([n, label, fmt_rate(x.rate), f"{100 * x.rate / floor.rate:.0f} %" if floor else "",
                         f"{1000 * x.cpu_s / x.images:.0f}", f"{x.faults / x.images:.0f}", f"{x.rss_mb:.0f}",
                         spread(ms)])
    lever_table = table(rows, ["workload", "variant", "images/s", "% of floor", "CPU ms/img", "minor faults/img",
                               "peak RSS MB", "images/s all rounds"])
    seen = list(dict.fromkeys(k for m in stages.values() for k in m.extra["stages_ms"]))
    stage_names = ([k for k in ("read", "decode") if k in seen] + [k for k in seen if k not in
                   ("read", "decode", "encode", "write")] + [k for k in ("encode", "write") if k in seen])
    srows = []
    for label, m in stages.items():
        st = m.extra["stages_ms"]
        srows.append([label, f"{m.extra['task_ms']:.1f}"] + [f"{st.get(k, 0.0):.1f}" for k in stage_names]
                     + [f"{m.faults / m.images:.0f}"])
    stage_table = table(srows, ["run_task, one thread", "total ms"] + [f"{k} ms" for k in stage_names]
                        + ["minor faults/img"])
    malloc = " ".join(f"{k}={v}" for k, v in MALLOC_TUNED.items())
    fixed_md = "; ".join(
        f"{ex} executor {min(m.wall for m in ms):.2f} s wall, of which "
        f"{min(m.elapsed for m in ms):.2f} s in its own timing (pool start-up + 2 images), "
        f"{min(m.cpu_s for m in ms):.2f} s CPU" for ex, ms in fixed.items())
    return (f"### Levers ({', '.join(names)})\n\n{lever_table}\n\n"
            f"malloc env = `{malloc}`. run_task on ThreadPool: imgsrv's worker function called from a plain "
            f"concurrent.futures.ThreadPoolExecutor({CORES}) in one process (no engine, job store or pool "
            "plumbing): the gap to the CLI is orchestration, the gap to the floor is the work run_task does "
            "beyond decode + encode (header probe, hash, operations, EXIF, atomic write with fsync). "
            "minor faults/img: page faults of the tree per image (the allocation tax).\n\n"
            f"The CLI's fixed cost (W1 on a 2-image folder, best round): {fixed_md}.\n\n"
            f"Per-stage times of run_task, images in sequence in one thread (mean ms per image):\n\n"
            f"{stage_table}\n\n")


if __name__ == "__main__":
    sys.exit(main())

"""What the benchmark scripts share: the machine, processes and their trees, the data set and
the workloads, imgsrv's public entry points (the CLI and a server), a light HTTP client, and
the markdown reports.

imgsrv is only ever reached the way its users reach it: ``python main.py run ...`` (the CLI,
``run_cli``) or ``python main.py --port P`` and HTTP (``Server``, on top of
``tests/server_process.py``, a plain launcher kept under tests/ so that the end-to-end tests
can share it). Nothing here imports the ``app`` package.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data")
RUNS = os.path.join(DATA, "runs")
PY = sys.executable
for _path in (PROJECT, HERE):  # tests.server_process and dataset, from any working directory
    if _path not in sys.path:
        sys.path.insert(0, _path)

import dataset  # noqa: E402  (benchmarks/dataset.py)
from tests.server_process import ServerProcess, free_port  # noqa: E402,F401  (free_port: for the scripts)

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
SIZE = (2048, 1536)  # the data set's images


# ---------------------------------------------------------------------------------------------
# The machine
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


def pid_listening_on(port: int) -> int | None:
    """The process listening on a loopback TCP port (a server started elsewhere), if this machine has it."""
    import psutil

    with contextlib.suppress(psutil.Error, OSError):
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
                return c.pid
    return None


def proc_stat() -> tuple[int, int, int]:
    """Machine-wide jiffies from /proc/stat: (total, busy, steal)."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return total, total - idle - iowait, steal


def machine_busy(s0, s1) -> str:
    total = max(1, s1[0] - s0[0])
    return f"{(s1[1] - s0[1]) * 100 / total:.0f} % busy (steal {(s1[2] - s0[2]) * 100 / total:.0f} %)"


def busy_others(seconds: float = 1.0, threshold: float = 10.0) -> str:
    """Other processes on the machine using over ``threshold`` % of a core, measured over ``seconds``."""
    import psutil

    mine = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        mine |= {p.pid for p in psutil.Process().children(recursive=True)}
    procs = []
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        if p.pid not in mine:
            with contextlib.suppress(psutil.Error):
                p.cpu_percent(None)
                procs.append(p)
    time.sleep(seconds)
    busy = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            pc = p.cpu_percent(None)
            if pc > threshold:
                cmd = " ".join(p.info.get("cmdline") or [p.info.get("name") or "?"])
                busy.append(f"{pc:.0f} % `{cmd[:80]}`")
    return "; ".join(busy) if busy else "none"


# ---------------------------------------------------------------------------------------------
# Process trees: memory, CPU time, page faults, open files
# ---------------------------------------------------------------------------------------------

def _minflt(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[7])


def tree(pid: int | None) -> list:
    """The process ``pid`` and all its descendants (psutil processes); [] when it is gone."""
    import psutil

    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.Error:
        return []


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants; wait for them."""
    import psutil

    procs = tree(pid)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=10)


@dataclass
class TreeState:
    rss: int  # bytes, summed over the tree
    fds: int
    procs: int


def tree_state(pid: int | None) -> TreeState | None:
    """RSS and open files of a process and all its descendants (a server and its pool)."""
    import psutil

    procs = tree(pid)
    if not procs:
        return None
    rss = fds = n = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            rss += p.memory_info().rss
            fds += p.num_fds()
            n += 1
    return TreeState(rss, fds, n)


def cpu_split(pid: int | None) -> tuple[float, float] | None:
    """CPU seconds (user + system) of the process itself and of its descendants (a server's pool)."""
    import psutil

    procs = tree(pid)
    if not procs:
        return None
    own = 0.0
    with contextlib.suppress(psutil.Error):
        t = procs[0].cpu_times()
        own = t.user + t.system
    pool = 0.0
    for p in procs[1:]:
        with contextlib.suppress(psutil.Error):
            c = p.cpu_times()
            pool += c.user + c.system
    return own, pool


class TreeSampler:
    """Samples a process tree every ``interval`` seconds in a thread: the peak of its summed RSS
    (and of its open files, with ``fds``), each process's own peak RSS (``peaks``, by pid), and
    each process's CPU time and minor faults as of its last sample (so that processes which end
    before the tree is read still count)."""

    def __init__(self, pid: int | None, interval: float = 0.05, fds: bool = False):
        self.pid, self.interval, self.fds = pid, interval, fds
        self.peak = 0
        self.peak_fds = 0
        self.peaks: dict[int, int] = {}
        self.seen: dict[int, tuple[float, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        import psutil

        rss = fds = 0
        for p in tree(self.pid):
            with contextlib.suppress(psutil.Error, OSError, ValueError, IndexError):
                own = p.memory_info().rss
                rss += own
                self.peaks[p.pid] = max(self.peaks.get(p.pid, 0), own)
                if self.fds:
                    fds += p.num_fds()
                t = p.cpu_times()
                self.seen[p.pid] = (t.user + t.system, _minflt(p.pid))
        self.peak, self.peak_fds = max(self.peak, rss), max(self.peak_fds, fds)

    def seen_totals(self) -> tuple[float, int]:
        """CPU seconds and minor faults of every process seen, as of its last sample."""
        return sum(c for c, _f in self.seen.values()), sum(f for _c, f in self.seen.values())

    def cpu(self) -> tuple[float, int]:
        """CPU seconds (user+system) and minor page faults of the live tree, now."""
        import psutil

        cpu, faults = 0.0, 0
        for p in tree(self.pid):
            with contextlib.suppress(psutil.Error, OSError):
                t = p.cpu_times()
                cpu += t.user + t.system
                faults += _minflt(p.pid)
        return cpu, faults

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        if self.pid is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class ProcessRun(NamedTuple):
    stdout: str
    wall: float  # seconds
    rss_mb: float  # peak summed RSS of the tree
    cpu_s: float  # user + system of the tree
    faults: int  # minor page faults of the tree


def run_process(cmd: list[str], env: dict | None = None, cwd: str = PROJECT) -> ProcessRun:
    """Run a command to its end, measuring its process tree; RuntimeError when it fails."""
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
    return ProcessRun(out, wall, sampler.peak / 2 ** 20, cpu, max(after.ru_minflt - before.ru_minflt, seen_faults))


@dataclass
class Measure:
    """One measured run of a method over a folder of images."""

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


# ---------------------------------------------------------------------------------------------
# The data set and the workloads
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    ops: tuple[str, ...]  # imgsrv's string form, as --op and in "operations"
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


def prepare_data(count: int, seed: int = 0) -> str:
    """Images 0..count-1 of the camera-trap data set (benchmarks/dataset.py), generated once and
    cached under benchmarks/data/, in a folder of exactly ``count`` files (hard links into the cache)."""
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
    """A new empty folder under benchmarks/data/runs/ (the caller removes it)."""
    os.makedirs(RUNS, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"{tag}-", dir=RUNS)


@contextlib.contextmanager
def scratch_dir(tag: str):
    """A fresh folder under benchmarks/data/runs/ for the ``with`` block, removed after it."""
    path = fresh_dir(tag)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def image_files(src: str) -> list[str]:
    return sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".jpg"))


def tree_bytes(folder: str) -> int:
    """Bytes of the files under ``folder``, imgsrv's own state folder (.imgsrv) left out."""
    total = 0
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != ".imgsrv"]
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


# ---------------------------------------------------------------------------------------------
# imgsrv's CLI: python main.py run ...
# ---------------------------------------------------------------------------------------------

SUMMARY_RE = re.compile(r"images (\d+) of (\d+): (\d+) succeeded, (\d+) failed, (\d+) skipped")
RATE_RE = re.compile(r"([\d.]+) images/s in ([\d.]+) s")


def run_cli(ops: tuple[str, ...] | list[str], src: str, dst: str, fmt: str | None = None,
            executor: str | None = None, workers: int | None = None, env_extra: dict | None = None) -> Measure:
    """``python main.py run --source SRC --output-dir DST --op ... --no-skip --quiet``, measured;
    images/s from the CLI's own summary line (it times the job from its start, pool start-up
    included, interpreter start-up not). Every image must succeed."""
    cmd = [PY, "main.py", "run", "--source", src, "--output-dir", dst, "--no-skip", "--quiet"]
    for op in ops:
        cmd += ["--op", op]
    if fmt and fmt != "jpeg":
        cmd += ["--format", fmt]
    if executor:
        cmd += ["--executor", executor]
    if workers:
        cmd += ["--workers", str(workers)]
    env = {**os.environ, **(env_extra or {})}
    env.pop("IMGSRV_DATA_ROOT", None)
    run = run_process(cmd, env)
    m, r = SUMMARY_RE.search(run.stdout), RATE_RE.search(run.stdout)
    if not m or not r:
        raise RuntimeError(f"cannot read the CLI summary:\n{run.stdout}")
    done, total, ok, failed, skipped = map(int, m.groups())
    if ok != total or failed or skipped:
        raise RuntimeError(f"the CLI did not process every image:\n{run.stdout}")
    rate = float(r.group(1))
    in_bytes = sum(os.path.getsize(f) for f in image_files(src))
    return Measure(done / rate, done, run.wall, run.rss_mb, run.cpu_s, run.faults, in_bytes, tree_bytes(dst),
                   {"summary_seconds": float(r.group(2))})


# ---------------------------------------------------------------------------------------------
# imgsrv's server: python main.py --port P, and its HTTP API
# ---------------------------------------------------------------------------------------------

class Server(ServerProcess):
    """``python main.py --port FREE`` for a benchmark: this process's environment plus ``env``
    (raw variables, e.g. ``{"IMGSRV_MAX_QUEUE": "8"}``; log level warning unless set there), a
    temporary ``IMGSRV_STATE_DIR`` under benchmarks/data/runs/ holding its log (removed at
    ``stop``, the log's text kept in ``log_text``), and an httpx client (``client``)."""

    def __init__(self, data_root: str, env: dict[str, str] | None = None, executor: str | None = None,
                 workers: int | None = None, script: str = "main.py"):
        self.state = fresh_dir("state")
        settings: dict[str, object] = {"state_dir": self.state}
        if executor:
            settings["executor"] = executor
        if workers:
            settings["workers"] = workers
        super().__init__(data_root, os.path.join(self.state, "server.log"), settings, script=script,
                         environ={**os.environ, "IMGSRV_LOG_LEVEL": "warning", **(env or {})}, stop_timeout=60)
        self.client = None
        self.log_text = ""

    def start(self) -> Server:
        import httpx

        super().start()  # on failure it stops, which removes the state folder
        self.client = httpx.Client(base_url=self.url, timeout=120)
        return self

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        super().stop()
        if os.path.isdir(self.state):
            self.log_text = self.log()
            shutil.rmtree(self.state, ignore_errors=True)

    def run_job(self, body: dict, poll: float = 0.1) -> tuple[float, dict]:
        """POST /jobs, then GET /jobs/{id} every ``poll`` s until it ends; the wall seconds and the
        job's last state. RuntimeError unless it succeeded for every image."""
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

    def job_results(self, job_id: str) -> list[dict]:
        """Every per-image result of a job (GET /jobs/{id}/results, page by page)."""
        out: list[dict] = []
        while True:
            page = self.client.get(f"/jobs/{job_id}/results", params={"offset": len(out), "limit": 1000}).json()
            out += page["results"]
            if not page["results"] or len(out) >= page["total"]:
                return out


def log_problems(text: str) -> list[str]:
    """The lines of a server log that report an error or a traceback."""
    return [ln for ln in text.splitlines() if re.search(r"\b(ERROR|CRITICAL|Traceback)\b", ln)]


def workload_job(wl: Workload, src_rel: str, out_rel: str) -> dict:
    """The POST /jobs body that runs a workload on a folder (paths relative to the data root)."""
    return {"source": {"dir": src_rel, "pattern": "*.jpg"}, "output_dir": out_rel,
            "output_format": "png" if wl.fmt == "png" else None, "operations": list(wl.ops),
            "options": {"skip_existing": False}}


_SAMPLE_RE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$", re.M)


def read_metrics(url: str, timeout: float = 5, headers: dict[str, str] | None = None) -> dict[str, dict[str, float]]:
    """GET /metrics: metric name -> {label text (``operation="decode"``, or "") -> value}."""
    import httpx

    out: dict[str, dict[str, float]] = {}
    text = httpx.get(url + "/metrics", timeout=timeout, headers=headers).text
    for name, labels, value in _SAMPLE_RE.findall(text):
        out.setdefault(name, {})[labels or ""] = float(value)
    return out


def stage_seconds(metrics: dict[str, dict[str, float]]) -> dict[str, tuple[float, int]]:
    """Worker time per stage and operation (read, decode, <operation>, encode, write): the sum of
    seconds and the count of ``imgsrv_operation_duration_seconds``."""
    sums = metrics.get("imgsrv_operation_duration_seconds_sum", {})
    counts = metrics.get("imgsrv_operation_duration_seconds_count", {})
    out = {}
    for labels, total in sums.items():
        m = re.search(r'operation="([^"]*)"', labels)
        if m:
            out[m.group(1)] = (total, int(counts.get(labels, 0)))
    return out


# ---------------------------------------------------------------------------------------------
# A light HTTP/1.1 client for load: POST with a JSON body on keep-alive connections
# ---------------------------------------------------------------------------------------------

class Answer:
    """An HTTP answer (the names follow httpx's Response)."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes):
        self.status_code, self.headers, self.content = status_code, headers, content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


class TransportError(Exception):
    """The connection failed, closed early, or the answer was not HTTP/1.1 we can read."""


class Conn:
    """One keep-alive HTTP/1.1 connection on asyncio streams, for ``POST`` with a JSON body.

    The load generator shares the machine's cores with the server it measures. httpx costs
    about 1.3 ms of CPU per request, so at 800 requests/s it needs a whole core and falls
    behind; this client costs a small fraction of that. It speaks only what the server answers
    here: a status line, headers, and a body of ``content-length`` bytes.
    """

    # The server closes a keep-alive connection idle for IMGSRV_TIMEOUT_KEEP_ALIVE (5 s); a
    # request written as it does so is lost. Like browsers and httpx, do not reuse one idle
    # for nearly that long.
    IDLE_REUSE = 3.0

    def __init__(self, url: str, timeout: float, headers: dict[str, str] | None = None):
        u = urlsplit(url)
        self.host, self.port, self.timeout = u.hostname, u.port or 80, timeout
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def post(self, path: str, json_body: dict) -> Answer:
        payload = json.dumps(json_body).encode()
        head = (f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-type: application/json\r\n{self.extra}"
                f"content-length: {len(payload)}\r\n\r\n").encode()
        try:
            async with asyncio.timeout(self.timeout):
                stale = self.reader is not None and (self.reader.at_eof()
                                                     or time.monotonic() - self.last_used > self.IDLE_REUSE)
                if stale:
                    await self.close()
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                self.writer.write(head + payload)
                answer = await self._answer()
                self.last_used = time.monotonic()
                return answer
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ValueError) as exc:
            await self.close()
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc

    async def _answer(self) -> Answer:
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise ValueError(f"no content-length in the answer: {headers}")
        content = await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Answer(int(parts[1]), headers, content)

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _event_loop_runner():
    """uvloop when it is installed (it comes with uvicorn[standard], as for the server), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


run_loop = _event_loop_runner()


# ---------------------------------------------------------------------------------------------
# Figures and reports
# ---------------------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    """The q-th percentile (inclusive method); NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def ms(x: float) -> str:
    return "n/a" if math.isnan(x) else (f"{x:.1f}" if x < 100 else f"{x:.0f}")


def fmt_rate(x: float) -> str:
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def table(rows: list[list[str]], header: list[str]) -> str:
    """A markdown table; the first two columns left-aligned, the others right-aligned."""
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def command_line(script: str, argv: list[str] | None) -> str:
    """How the script was called, for a report's header: ``python benchmarks/SCRIPT ARGS``."""
    args = sys.argv[1:] if argv is None else argv
    return f"python benchmarks/{script}" + (" " + shlex.join(args) if args else "")


def publish(md: str, out: str | None) -> None:
    """Print a report and write it to ``out`` (markdown) when given."""
    print()
    print(md)
    if out:
        with open(out, "w") as fh:
            fh.write(md)
        print(f"written to {os.path.relpath(out, PROJECT)}")

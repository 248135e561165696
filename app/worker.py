"""What runs in a worker: one task (an input path, its output paths and the validated
pipeline) becomes one Report. Tasks carry paths and the plan, never pixels, and a task
never raises: every failure is reported with its error code."""
from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field

from . import imaging  # noqa: F401  (sets OpenCV's decoder limit before cv2 is imported)
import cv2  # noqa: E402

from .errors import ImageError, InvalidOperation, WriteError  # noqa: E402
from .imaging import codec, planar  # noqa: E402
from .imaging.codec import Header  # noqa: E402
from .operations import Context  # noqa: E402
from .pipeline import Pipeline, Timings, run, run_planes  # noqa: E402
from .storage import atomic_write, read_input, write_all  # noqa: E402


@dataclass(frozen=True)
class Expected:
    """What the skip-existing manifest recorded for a task's outputs."""

    input_hash: str
    outputs: tuple["Output", ...]  # as written then: the size and mtime show they are unchanged


@dataclass(frozen=True)
class Task:
    input: str  # real absolute path
    outputs: tuple[str, ...]  # real absolute paths, one per item the pipeline yields
    pipeline: Pipeline
    max_pixels: int
    expected: Expected | None = None  # set when skip_existing may apply
    sync: bool = True  # flush each output to disk before its rename (jobs flush whole batches instead)
    planes: bool = True  # JPEG to JPEG crops and fills may run on the YCbCr planes (imaging.planar)

    def run(self) -> "Report":
        return run_task(self)

    def failed(self, code: str, message: str) -> "Report":
        return Report.failure(code, message)


@dataclass
class Output:
    path: str
    width: int
    height: int
    bytes: int
    faces: list[dict] | None = None
    mtime_ns: int = 0


@dataclass
class Report:
    status: str  # ok, skipped, error
    input_bytes: int = 0
    outputs: list[Output] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    elapsed_ms: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage / operation
    input_hash: str | None = None

    @classmethod
    def failure(cls, code: str, message: str, **kw) -> "Report":
        return cls(status="error", error_code=code, error_message=message, **kw)


# glibc serves allocations above a dynamic threshold with fresh mmap()s and trims freed heap
# memory eagerly, so every decode of a large image page-faults a new buffer in (about 7 ms for
# 9 MB). Keeping large buffers in the heap and not trimming it lets a worker reuse them.
MMAP_THRESHOLD = 32 << 20  # glibc's upper bound for M_MMAP_THRESHOLD on 64-bit systems
TRIM_THRESHOLD = 512 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_malloc() -> bool:
    """Apply the thresholds above through mallopt(3) (glibc only; elsewhere nothing happens)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False


def init_worker() -> None:
    """Pool initializer: the pool gives the parallelism, so OpenCV uses one thread per worker;
    large buffers are kept for reuse (tune_malloc).

    Ctrl-C is for the parent, which stops the pool cleanly; a worker process ignores it.
    """
    cv2.setNumThreads(1)
    tune_malloc()
    if threading.current_thread() is threading.main_thread():  # a worker process, not a thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # The pool stops a worker over the time limit with SIGTERM. A Python-level handler
        # would only run once the current OpenCV call returns (seconds later); the default
        # action ends the process at once.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass(frozen=True)
class Ping:
    """A task that does nothing: starting the pool's workers before the first image."""

    def run(self) -> int:
        return os.getpid()

    def failed(self, code: str, message: str) -> str:
        return f"{code}: {message}"


def execute(task):
    """The function the pools run: every task type knows how to run itself and never raises."""
    return task.run()


def content_hash(data: bytes) -> str:
    # SHA-256 runs on the CPU's SHA extensions where present: about 0.7 ms per MB here,
    # against 1.9 ms for BLAKE2b.
    return hashlib.sha256(data).hexdigest()[:32]


def _unchanged(task: Task, digest: str) -> bool:
    exp = task.expected
    if exp is None or exp.input_hash != digest or len(exp.outputs) != len(task.outputs):
        return False
    for path, out in zip(task.outputs, exp.outputs):
        try:
            st = os.stat(path)
        except OSError:
            return False
        if st.st_size != out.bytes or st.st_mtime_ns != out.mtime_ns:
            return False
    return True


def run_task(task: Task) -> Report:
    """Read, decode, run the pipeline, encode, write atomically; report what happened."""
    start = time.perf_counter()
    timings = Timings()
    input_bytes = 0
    digest = None
    try:
        t = time.perf_counter()
        data = read_input(task.input)
        input_bytes = len(data)
        digest = content_hash(data)
        timings.add("read", time.perf_counter() - t)
        if _unchanged(task, digest):
            return Report("skipped", input_bytes, list(task.expected.outputs), elapsed_ms=_ms(start),  # type: ignore[union-attr]
                          input_hash=digest)

        header = codec.probe(data, task.max_pixels)
        fmt = codec.FORMATS[os.path.splitext(task.outputs[0])[1].lower()]
        source = Source(data)
        del data
        rendered = render(source, header, task.pipeline, fmt, task.max_pixels, task.planes, timings)
        if len(rendered) != len(task.outputs):  # pragma: no cover - the plan and the pipeline agree by construction
            raise InvalidOperation(f"the pipeline made {len(rendered)} images for {len(task.outputs)} outputs")

        t = time.perf_counter()
        for path in task.outputs:
            if os.path.exists(path) and os.path.samefile(path, task.input):
                raise WriteError("the output is the input file itself (a link to it)")
        write_all([(path, r.blob) for path, r in zip(task.outputs, rendered)], sync=task.sync)
        outputs = [Output(path, r.width, r.height, len(r.blob), r.faces, os.stat(path).st_mtime_ns)
                   for path, r in zip(task.outputs, rendered)]
        timings.add("write", time.perf_counter() - t)
        return Report("ok", input_bytes, outputs, elapsed_ms=_ms(start), timings=timings.ms, input_hash=digest)
    except ImageError as exc:
        return Report.failure(exc.code, exc.message, input_bytes=input_bytes, elapsed_ms=_ms(start),
                              timings=timings.ms, input_hash=digest)
    except MemoryError:
        return Report.failure("too_large", "not enough memory for this image", input_bytes=input_bytes,
                              elapsed_ms=_ms(start), input_hash=digest)


@dataclass
class Rendered:
    """One encoded output of a pipeline, in memory."""

    suffix: tuple[int, ...]  # tile indices of the splits that made it
    blob: bytes
    width: int
    height: int
    faces: list[dict] | None = None


class Source:
    """An input's bytes, which ``render`` lets go of once they are decoded: in a worker that
    holds them only here (run_task), the pipeline's peak memory is then the pixels' alone."""

    def __init__(self, data: bytes):
        self.data: bytes | None = data

    def take(self) -> bytes:
        data, self.data = self.data, None
        return data  # type: ignore[return-value]  # render takes them once


def render(source: Source, header: Header, pipeline: Pipeline, fmt: str, max_pixels: int, planes: bool,
           timings: Timings) -> list[Rendered]:
    """Decode, run the pipeline and encode: the outputs of one input, in memory.

    A JPEG-to-JPEG pipeline of crops and fills runs on the YCbCr planes when it can (``planes``
    allows it; see imaging.planar); everything else decodes to pixels.
    """
    exif = header.exif if pipeline.metadata == "keep" else None
    if planes and fmt == "jpeg" and header.format == "jpeg" and header.orientation == 1:
        out = _render_planes(source.data, header, pipeline, exif, timings)  # type: ignore[arg-type]
        if out is not None:
            source.take()  # done with the input's bytes (run_task writes the outputs next)
            return [out]

    t = time.perf_counter()
    w, h = (header.height, header.width) if header.orientation >= 5 else (header.width, header.height)
    plan = pipeline.plan_decode(w, h)
    image = codec.decode(source.take(), header, plan.reduce, plan.gray)
    timings.add("decode", time.perf_counter() - t)
    try:
        items = run(image, plan.operations, Context(max_pixels, inplace=True), timings)
    except ImageError:
        raise
    except cv2.error as exc:
        raise InvalidOperation(f"OpenCV refused the operation: {exc.err or exc}") from None
    del image
    t = time.perf_counter()
    enc = pipeline.encode
    out = []
    for item in items:
        blob = codec.encode(item.image, fmt, enc.quality, enc.optimize, enc.progressive, enc.compression, exif)
        faces = None if item.faces is None else [
            {"x": x, "y": y, "width": bw, "height": bh} for (x, y, bw, bh) in item.faces]
        out.append(Rendered(item.suffix, blob, item.image.shape[1], item.image.shape[0], faces))
    timings.add("encode", time.perf_counter() - t)
    return out


def _render_planes(data: bytes, header: Header, pipeline: Pipeline, exif: bytes | None,
                   timings: Timings) -> Rendered | None:
    """The pipeline on a 4:2:0 JPEG's YCbCr planes; None when it needs the pixels, or the planes
    cannot be decoded or encoded (then the usual path runs, and reports any error)."""
    steps = pipeline.plan_planes(header.width, header.height)
    result = None if steps is None else run_planes(data, steps, timings)
    if result is None:
        return None
    t = time.perf_counter()
    blob = planar.encode(result, pipeline.encode.quality)
    timings.add("encode", time.perf_counter() - t)
    if blob is None:
        return None
    if exif:
        blob = codec.insert_exif(blob, exif)
    return Rendered((), blob, result.width, result.height)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def _decode_file(path: str, max_pixels: int):
    data = read_input(path)
    return codec.decode(data, codec.probe(data, max_pixels))


@dataclass
class CompareReport:
    status: str
    width: int = 0
    height: int = 0
    different_pixels: int = 0
    different_fraction: float = 0.0
    mean_abs_diff: float = 0.0
    output_bytes: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    which: str | None = None  # "a", "b" or "output": the field the error is about
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CompareTask:
    """Compare two images; write the highlighted difference when ``output`` is set."""

    a: str
    b: str
    output: str | None
    fuzz: float
    max_pixels: int

    def failed(self, code: str, message: str) -> CompareReport:
        return CompareReport("error", error_code=code, error_message=message)

    def run(self) -> CompareReport:
        from .imaging.compare import compare, highlight

        images = []
        for which, path in (("a", self.a), ("b", self.b)):
            try:
                images.append(_decode_file(path, self.max_pixels))
            except ImageError as exc:
                return CompareReport("error", error_code=exc.code, error_message=exc.message, which=which)
        a, b = images
        if a.shape[:2] != b.shape[:2]:
            return CompareReport("error", error_code="invalid_operation", which="b",
                                 error_message=f"the images differ in size: a is {a.shape[1]}x{a.shape[0]}, "
                                               f"b is {b.shape[1]}x{b.shape[0]}")
        diff, mask = compare(a, b, self.fuzz)
        rep = CompareReport("ok", diff.width, diff.height, diff.different_pixels, diff.different_fraction,
                            diff.mean_abs_diff)
        if self.output:
            try:
                fmt = codec.FORMATS[os.path.splitext(self.output)[1].lower()]
                blob = codec.encode(highlight(a, mask), fmt)
                atomic_write(self.output, blob)
                rep.output_bytes = len(blob)
            except ImageError as exc:
                return CompareReport("error", error_code=exc.code, error_message=exc.message, which="output")
        return rep


@dataclass
class RenderReport:
    status: str
    format: str = ""
    outputs: list[Rendered] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderTask:
    """Run a pipeline on uploaded bytes and return the encoded results (nothing touches the disk)."""

    data: bytes
    pipeline: Pipeline
    format: str | None  # None: the input's own format (PNG when it cannot be written)
    max_pixels: int
    planes: bool = True  # as Task.planes

    def failed(self, code: str, message: str) -> RenderReport:
        return RenderReport("error", error_code=code, error_message=message)

    def run(self) -> RenderReport:
        timings = Timings()
        try:
            header = codec.probe(self.data, self.max_pixels)
            fmt = self.format or (header.format if header.format in codec.EXTENSIONS else "png")
            rendered = render(Source(self.data), header, self.pipeline, fmt, self.max_pixels, self.planes, timings)
            return RenderReport("ok", fmt, rendered, timings=timings.ms)
        except ImageError as exc:
            return RenderReport("error", error_code=exc.code, error_message=exc.message, timings=timings.ms)
        except MemoryError:
            return RenderReport("error", error_code="too_large", error_message="not enough memory for this image")

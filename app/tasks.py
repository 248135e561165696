"""The flow's data: what the planner hands the pool (tasks) and what comes back (reports).

Plain dataclasses, picklable, with no codec or pool imports: the planner, the engine, the job
store and the API share them without depending on the code that runs them (app.render).
A task carries paths and the validated pipeline, never decoded pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Iterable

from .errors import ErrorCode
from .formats import format_of_path

if TYPE_CHECKING:  # the pipeline holds operations, which import the imaging code
    from .pipeline import Pipeline


class Status(StrEnum):
    """What happened to one image."""

    OK = "ok"
    SKIPPED = "skipped"
    ERROR = "error"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        """Queued or running: the job is not finished."""
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)


class Overwrite(StrEnum):
    """What may happen to a file already at an output path (``options.overwrite``)."""

    OWN = "own"  # replace only a file imgsrv wrote there, unchanged since
    NEVER = "never"
    ALWAYS = "always"


@dataclass(frozen=True)
class Owned:
    """A file imgsrv wrote, as it wrote it: unchanged while its size, mtime, inode and change
    time are these (no one can set a change time back; records older than it lack the last two)."""

    size: int
    mtime_ns: int
    job: str | None = None  # the job that wrote it
    ino: int | None = None
    ctime_ns: int | None = None


@dataclass(frozen=True)
class WriteRule:
    """The overwrite policy of a task and, per output, what imgsrv recorded writing there."""

    overwrite: Overwrite = Overwrite.OWN
    owned: tuple[Owned | None, ...] = ()
    job: str | None = None  # a job never replaces what it wrote itself: two of its images made one name

    def may_replace(self, index: int, found) -> bool:
        """Whether the file found at output ``index`` (its ``os.stat_result``) may be replaced."""
        if self.overwrite == Overwrite.ALWAYS:
            return True
        if self.overwrite == Overwrite.NEVER:
            return False
        mine = self.owned[index] if index < len(self.owned) else None
        return (mine is not None and mine.size == found.st_size and mine.mtime_ns == found.st_mtime_ns
                and mine.ino in (None, found.st_ino) and mine.ctime_ns in (None, found.st_ctime_ns)
                and (self.job is None or mine.job != self.job))


@dataclass
class Output:
    """One output of an image: a file written (``path``) or, for an upload, the encoded bytes (``blob``)."""

    path: str | None
    width: int
    height: int
    bytes: int
    faces: list[dict] | None = None  # the boxes of a faces operation on the way (None: none ran)
    mtime_ns: int = 0  # of the file as written: the skip-existing manifest checks it is unchanged
    suffix: tuple[int, ...] = ()  # tile indices of the splits that made it
    blob: bytes | None = None
    sha256: str | None = None  # of the bytes written: imgsrv's record of owning the file
    ino: int = 0  # the file as written (with its ctime): imgsrv's record of it
    ctime_ns: int = 0


@dataclass(frozen=True)
class Expected:
    """What the skip-existing manifest recorded for a task's outputs."""

    input_hash: str
    outputs: tuple[Output, ...]  # as written then: the size and mtime show they are unchanged


@dataclass(frozen=True)
class Comparison:
    """How two images of the same size differ (POST /compare)."""

    width: int
    height: int
    different_pixels: int
    different_fraction: float
    mean_abs_diff: float


@dataclass
class Report:
    """The outcome of any task. A task never raises: every failure is a report with its code."""

    status: Status
    input_bytes: int = 0
    outputs: list[Output] = field(default_factory=list)
    error_code: ErrorCode | None = None
    error_message: str | None = None
    error_field: str | None = None  # the task's field the error is about (compare: "a", "b" or "output")
    elapsed_ms: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage (read, decode, ...) and operation
    input_hash: str | None = None  # of the input's bytes, for the skip-existing manifest
    format: str | None = None  # the format written (an upload's result)
    comparison: Comparison | None = None

    @classmethod
    def failure(cls, code: ErrorCode, message: str, **kw) -> "Report":
        return cls(status=Status.ERROR, error_code=code, error_message=message, **kw)


@dataclass(frozen=True)
class ImageTask:
    """Read one input, run the pipeline, write its outputs atomically."""

    input: str  # real absolute path
    outputs: tuple[str, ...]  # real absolute paths, one per item the pipeline yields
    pipeline: "Pipeline"
    max_pixels: int
    expected: Expected | None = None  # set when skip_existing may apply
    sync: bool = True  # flush each output to disk before its rename (jobs flush whole batches instead)
    rule: WriteRule = WriteRule()  # what may be replaced at the outputs
    format: str = ""  # of the outputs, from the extension the request named (checked by the planner)
    temp_tag: str = ""  # marks the temporary files (a job's: it removes only its own when it resumes)
    max_input_bytes: int | None = None  # a larger input file is refused before it is read

    @property
    def output_format(self) -> str:
        """The format of the outputs: as planned, else from their extension."""
        return self.format or format_of_path(self.outputs[0]) or ""


@dataclass(frozen=True)
class RenderTask:
    """Run a pipeline on uploaded bytes and return the encoded results (nothing touches the disk)."""

    data: bytes
    pipeline: "Pipeline"
    format: str | None  # None: the input's own format (PNG when it cannot be written)
    max_pixels: int
    max_answer_bytes: int | None = None  # the encoded outputs together


@dataclass(frozen=True)
class CompareTask:
    """Compare two images; write the highlighted difference when ``output`` is set."""

    a: str
    b: str
    output: str | None
    fuzz: float
    max_pixels: int
    rule: WriteRule = WriteRule()
    format: str = ""  # of the output
    max_input_bytes: int | None = None
    temp_tag: str = ""  # marks the temporary file (see ImageTask)


@dataclass(frozen=True)
class Ping:
    """A task that does nothing: starts a pool's worker before the first image. Its result is
    the worker's process id."""


Task = ImageTask | RenderTask | CompareTask | Ping


def written_paths(task: Task) -> tuple[str, ...]:
    """The files a task writes (real absolute paths)."""
    if isinstance(task, ImageTask):
        return task.outputs
    if isinstance(task, CompareTask) and task.output:
        return (task.output,)
    return ()


@dataclass(frozen=True)
class Totals:
    """What image reports add up to; outputs and bytes count the succeeded images only (the
    summary of /process and a job's counters alike)."""

    images: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    outputs: int = 0
    input_bytes: int = 0
    output_bytes: int = 0

    @classmethod
    def of(cls, reports: "Iterable[Report]") -> "Totals":
        reports = list(reports)
        ok = [r for r in reports if r.status == Status.OK]
        return cls(images=len(reports), succeeded=len(ok),
                   failed=sum(r.status == Status.ERROR for r in reports),
                   skipped=sum(r.status == Status.SKIPPED for r in reports),
                   outputs=sum(len(r.outputs) for r in ok), input_bytes=sum(r.input_bytes for r in ok),
                   output_bytes=sum(o.bytes for r in ok for o in r.outputs))


def compression_ratio(output_bytes: int, input_bytes: int) -> float | None:
    """Output bytes over input bytes (below 1: the outputs are smaller); None without input."""
    return round(output_bytes / input_bytes, 4) if input_bytes else None


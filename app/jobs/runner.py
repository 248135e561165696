"""Running a job: a list of images (given, or found in a folder) through one pipeline, in the
background, with every result recorded in the store.

The runner keeps a bounded number of images in flight (memory stays flat whatever the job's
size), writes results in batches, and can be stopped at any point: images in flight finish,
their results are recorded, and a later run goes on with the images that have none.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ErrorCode, ImgsrvError, WriteError
from ..files import FileSystemSync, clean_temp_files, walk_files
from ..operations import parse_operation
from ..pipeline import Pipeline
from ..plan import PlannedImage, mirrored_output
from ..service import Service
from ..tasks import JobStatus, Overwrite, Report, Status
from ..state import JobRow

log = logging.getLogger("imgsrv.jobs")

FLUSH_EVERY = 128  # results
FLUSH_SECONDS = 0.5
FETCH = 256  # pending items read at a time
ENUMERATE_BATCH = 1000  # files found, added to the store in one transaction


def temp_tag_of(job_id: str) -> str:
    """The mark of a job's temporary files' names: it removes only its own when it resumes."""
    return f"{job_id[:16]}-"


@dataclass
class Progress:
    """What a progress display needs after each result."""

    total: int | None
    done: int
    report: Report


class JobRunner:
    """Runs one job of the store to completion, cancellation or a checkpoint."""

    def __init__(self, service: Service, job_id: str, on_result: Callable[[Progress], None] | None = None,
                 window: int | None = None):
        self.service = service
        self.engine = service.engine
        self.store = service.store
        self.job_id = job_id
        self.on_result = on_result
        self.window = window or max(2, self.engine.executor.workers * 2)
        self._cancel = asyncio.Event()
        self._checkpoint = False
        self._buffer: list[tuple[int, Report, list[str]]] = []
        self._flush_lock = asyncio.Lock()
        self._flushing: asyncio.Task | None = None  # the batch being made durable and recorded
        self._sync = FileSystemSync()
        self._enumerated = False
        self._added = asyncio.Event()  # the enumeration added items, or ended
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pipeline: Pipeline | None = None
        self._source: str | None = None  # a folder job's source folder, real path
        self.total: int | None = None
        self.done = 0

    @property
    def temp_tag(self) -> str:
        """What marks this job's temporary files (see temp_tag_of)."""
        return temp_tag_of(self.job_id)

    def cancel(self) -> None:
        """Stop taking new images; the job ends ``cancelled``."""
        self._cancel.set()
        self._added.set()  # a runner waiting for the listing stops at once

    def checkpoint(self) -> None:
        """Stop taking new images and leave the job to be resumed at the next start."""
        self._checkpoint = True
        self.cancel()

    async def run(self) -> JobRow:
        self._loop = asyncio.get_running_loop()
        try:
            return await self._run()
        finally:
            self._sync.close()

    async def _run(self) -> JobRow:
        offload = self.engine.offload
        job = await offload(self.store.get_job, self.job_id)
        assert job is not None
        spec = json.loads(job.spec)
        try:
            pipeline = self.service.pipeline([parse_operation(op) for op in spec["operations"]],
                                             spec.get("metadata", "keep"))
        except Exception as exc:  # a spec written by an older version that no longer validates
            await offload(self.store.finish_job, self.job_id, JobStatus.FAILED, f"invalid operations: {exc}")
            return await offload(self.store.get_job, self.job_id)  # type: ignore[return-value]
        self._pipeline = pipeline
        if spec.get("source"):  # a folder job's outputs never land in its source folder, through a link either
            with contextlib.suppress(ImgsrvError):
                self._source = await offload(self.service.planner.input_path, spec["source"]["dir"], "source.dir")
        if spec.get("output_dir"):  # before the first write: see FileSystemSync
            with contextlib.suppress(ImgsrvError):
                self._sync.watch(self.service.planner.output_path(spec["output_dir"], "output_dir"))
        if job.started_at is not None:  # resumed: its writers killed mid-write may have left temporary files
            removed = await offload(self._clean_temp_files)
            if removed:
                log.info("job %s: %d stray temporary files removed", self.job_id, removed)
        await offload(self.store.start_job, self.job_id)
        log.info("job %s started: %s, %d of %s images done before", self.job_id,
                 ", ".join(op.op for op in pipeline.operations) or "no operations",  # type: ignore[attr-defined]
                 job.done, job.total if job.enumerated else "(counting)")
        self.done = job.done
        enumeration = None
        if job.enumerated:
            self._enumerated = True
            self.total = job.total
        else:
            enumeration = asyncio.ensure_future(offload(self._enumerate, spec))
            enumeration.add_done_callback(lambda _t: self._added.set())
        error = None
        try:
            await self._process(pipeline, spec, enumeration)
        except Exception as exc:
            log.exception("job %s stopped by an error", self.job_id)
            error = f"{type(exc).__name__}: {exc}"
            self._cancel.set()
        finally:
            if enumeration is not None and not enumeration.done():
                # stopped from outside (the server's shutdown) while listing: resume at the next start;
                # a cancelled job (or one that failed) ends as such
                self._checkpoint = self._checkpoint or (error is None and not self._cancel.is_set())
                await asyncio.shield(enumeration)
        await self._flush()
        if enumeration is not None and enumeration.done() and enumeration.exception():
            error = error or str(enumeration.exception())
        job = await offload(self.store.get_job, self.job_id)
        assert job is not None
        if self._checkpoint and error is None:
            log.info("job %s checkpointed at %d/%d images", self.job_id, job.done, job.total)
            return job
        if error is not None:
            status = JobStatus.FAILED
        elif self._cancel.is_set() or job.cancel:
            status = JobStatus.CANCELLED
        else:
            status = JobStatus.FAILED if job.failed else JobStatus.SUCCEEDED
        await offload(self.store.finish_job, self.job_id, status, error)
        log.info("job %s %s: %d images, %d succeeded, %d failed, %d skipped", self.job_id, status, job.total,
                 job.succeeded, job.failed, job.skipped)
        return await offload(self.store.get_job, self.job_id)  # type: ignore[return-value]

    def _clean_temp_files(self) -> int:
        """This job's temporary files left by writers killed mid-write, in the folders of its
        images without a result (blocking)."""
        planner = self.service.planner
        folders = []
        for rel in sorted(self.store.pending_output_folders(self.job_id)):
            try:
                folders.append(planner.output_path(rel or ".", "output"))
            except ImgsrvError:
                continue
        return clean_temp_files(folders, self.temp_tag)

    # -- enumeration (in a thread) ---------------------------------------------------------

    def _enumerate(self, spec: dict[str, Any]) -> None:
        src = spec["source"]
        folder = self.service.planner.input_path(src["dir"], "source.dir")
        seq = self.store.item_count(self.job_id)  # items of an interrupted enumeration are kept
        skip = seq
        batch: list[tuple[str, str]] = []
        # Small batches first, so that the workers start after a few files rather than after
        # the first thousand; then larger ones, so a huge folder costs few transactions.
        limit = 16
        for rel in walk_files(folder, src.get("pattern") or "*", bool(src.get("recursive"))):
            if skip:
                skip -= 1
                continue
            if self._cancel.is_set():
                return
            batch.append((os.path.join(src["dir"], rel), mirrored_output(rel, spec["output_dir"],
                                                                          spec.get("output_format"))))
            if len(batch) >= limit:
                self.store.add_items(self.job_id, seq, batch)
                seq += len(batch)
                batch = []
                limit = min(ENUMERATE_BATCH, limit * 4)
                self._wake()
        if batch:
            self.store.add_items(self.job_id, seq, batch)
            seq += len(batch)
        self.store.mark_enumerated(self.job_id)
        self.total = seq
        self._enumerated = True

    def _wake(self) -> None:
        """Tell the processing loop (from the enumeration thread) that items were added."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
                self._loop.call_soon_threadsafe(self._added.set)

    # -- processing -------------------------------------------------------------------------

    def _prepare(self, rows: Sequence[tuple[int, str, str]], pipeline: Pipeline, spec: dict[str, Any]
                 ) -> list[PlannedImage]:
        """Plan a batch of pending images (blocking: paths and the manifest)."""
        plan = self.service.planner.job_image
        skip, overwrite = bool(spec.get("skip_existing", True)), Overwrite(spec.get("overwrite", Overwrite.OWN))
        taken = self.store.earlier_writers(self.job_id, rows)
        return [plan(seq, inp, out, pipeline, skip_existing=skip, overwrite=overwrite, job=self.job_id,
                     temp_tag=self.temp_tag, taken_by=taken.get(seq), source=self._source)
                for seq, inp, out in rows]

    async def _process(self, pipeline: Pipeline, spec: dict[str, Any], enumeration: asyncio.Task | None) -> None:
        window = asyncio.Semaphore(self.window)
        in_flight = 0
        idle = asyncio.Event()
        idle.set()
        last_seq = -1
        last_flush = time.monotonic()

        def finished(p: PlannedImage, fut: asyncio.Future) -> None:
            nonlocal in_flight
            in_flight -= 1
            if in_flight == 0:
                idle.set()
            window.release()
            self._collect(p, fut.result())

        while not self._cancel.is_set():
            complete = self._enumerated  # read before the fetch: a fetch after it sees every item
            self._added.clear()  # before the fetch: items added after it set the event again
            rows = await self.engine.offload(self.store.pending_items, self.job_id, last_seq, FETCH)
            if not rows:
                if complete or enumeration is None or enumeration.done():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._added.wait(), 1.0)
                continue
            last_seq = rows[-1][0]
            prepared = await self.engine.offload(self._prepare, rows, pipeline, spec)
            for p in prepared:
                if p.task is None:
                    self._collect(p, p.failure)  # type: ignore[arg-type]
                    continue
                await window.acquire()
                # counted in the metrics once recorded (_save), not as it comes back
                fut = None if self._cancel.is_set() else await self.engine.submit_background(
                    p.task, self.job_id, self._cancel.is_set)
                if fut is None:
                    window.release()
                    break
                in_flight += 1
                idle.clear()
                fut.add_done_callback(lambda f, p=p: finished(p, f))
                if len(self._buffer) >= FLUSH_EVERY or time.monotonic() - last_flush > FLUSH_SECONDS:
                    last_flush = time.monotonic()
                    self._flush_soon()
            if self._cancel.is_set():
                break
            self._flush_soon()
        await idle.wait()
        if self._flushing is not None:
            await self._flushing  # its error, if any, stops the job

    def _collect(self, p: PlannedImage, rep: Report) -> None:
        self._buffer.append((p.index, rep, p.outputs))
        self.done += 1
        if self.on_result is not None:
            self.on_result(Progress(self.total if self._enumerated else None, self.done, rep))

    def _flush_soon(self) -> None:
        """Record the results so far in the background: submitting goes on meanwhile. The
        previous background flush's error, if any, is raised here and stops the job."""
        if self._flushing is not None and self._flushing.done():
            self._flushing.result()
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        async with self._flush_lock:
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, []
            try:
                await self.engine.offload(self._save, batch)
            except BaseException:
                self._buffer[:0] = batch  # not recorded: the final flush tries again
                raise

    def _save(self, batch: list[tuple[int, Report, list[str]]]) -> None:
        """Make the batch's outputs durable, then record the batch (blocking: in a thread).

        A result is recorded only once its files are on disk, so after a crash of the machine
        the store never claims an output that is not there.
        """
        folders = {os.path.dirname(o.path) for _seq, rep, _names in batch if rep.status == Status.OK
                   for o in rep.outputs if o.path}
        try:
            self._sync.sync(sorted(folders))
        except WriteError as exc:
            log.error("job %s: %s", self.job_id, exc.message)
            batch = [(seq, Report.failure(ErrorCode.WRITE_ERROR, exc.message, input_bytes=rep.input_bytes,
                                          elapsed_ms=rep.elapsed_ms) if rep.status == Status.OK else rep, names)
                     for seq, rep, names in batch]
        self.store.save_results(self.job_id, batch, self._pipeline.digest())  # type: ignore[union-attr]
        for _seq, rep, _names in batch:  # as recorded: a write-back error counts as one
            self.engine.observe(rep, self._pipeline)



"""Batch jobs: a job is a list of images (given, or found in a folder) run through one
pipeline in the background, with every result recorded in the store.

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
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .engine import Engine
from .errors import ImgsrvError, InvalidRequest, WriteError
from .imaging.codec import EXTENSIONS
from .operations import parse_operation
from .pipeline import Pipeline
from .planning import check_output_format
from .storage import FileSystemSync, clean_temp_files, output_names, resolve, walk_files
from .store import JobRow
from .worker import Report, Task

log = logging.getLogger("imgsrv.jobs")

FLUSH_EVERY = 128  # results
FLUSH_SECONDS = 0.5
FETCH = 256  # pending items read at a time
ENUMERATE_BATCH = 1000  # files found, added to the store in one transaction


def new_job_id() -> str:
    return uuid.uuid4().hex


def mirrored_output(rel: str, output_dir: str, output_format: str | None) -> str:
    """``DIR/REL`` goes to ``OUTPUT_DIR/REL``, with the extension of ``output_format`` when set."""
    if output_format:
        rel = os.path.splitext(rel)[0] + EXTENSIONS[output_format]
    return os.path.join(output_dir, rel)


@dataclass
class Progress:
    """What a progress display needs after each result."""

    total: int | None
    done: int
    report: Report


class JobRunner:
    """Runs one job of the store to completion, cancellation or a checkpoint."""

    def __init__(self, engine: Engine, job_id: str, on_result: Callable[[Progress], None] | None = None,
                 window: int | None = None):
        self.engine = engine
        self.store = engine.store
        self.job_id = job_id
        self.on_result = on_result
        self.window = window or max(2, engine.executor.workers * 2)
        self._cancel = asyncio.Event()
        self._checkpoint = False
        self._buffer: list[tuple[int, Report, list[str], str | None]] = []
        self._flush_lock = asyncio.Lock()
        self._flushing: asyncio.Task | None = None  # the batch being made durable and recorded
        self._sync = FileSystemSync()
        self._enumerated = False
        self._added = asyncio.Event()  # the enumeration added items, or ended
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pipeline: Pipeline | None = None
        self.total: int | None = None
        self.done = 0

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
        job = await asyncio.to_thread(self.store.get_job, self.job_id)
        assert job is not None
        spec = json.loads(job.spec)
        try:
            pipeline = Pipeline(tuple(op for op in map(parse_operation, spec["operations"]) if op is not None),
                                spec.get("metadata", "keep"))
        except Exception as exc:  # a spec written by an older version that no longer validates
            await asyncio.to_thread(self.store.finish_job, self.job_id, "failed", f"invalid operations: {exc}")
            return await asyncio.to_thread(self.store.get_job, self.job_id)  # type: ignore[return-value]
        self._pipeline = pipeline
        if spec.get("output_dir"):  # before the first write: see FileSystemSync
            with contextlib.suppress(ImgsrvError):
                self._sync.watch(resolve(str(self.engine.settings.data_root), spec["output_dir"], "output_dir"))
        await asyncio.to_thread(self.store.start_job, self.job_id)
        log.info("job %s started: %s, %d of %s images done before", self.job_id,
                 ", ".join(op.op for op in pipeline.operations) or "no operations",  # type: ignore[attr-defined]
                 job.done, job.total if job.enumerated else "(counting)")
        self.done = job.done
        enumeration = None
        if job.enumerated:
            self._enumerated = True
            self.total = job.total
        else:
            enumeration = asyncio.create_task(asyncio.to_thread(self._enumerate, spec, job))
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
                self._checkpoint = self._checkpoint or error is None
                await asyncio.shield(enumeration)
        await self._flush()
        if enumeration is not None and enumeration.done() and enumeration.exception():
            error = error or str(enumeration.exception())
        job = await asyncio.to_thread(self.store.get_job, self.job_id)
        assert job is not None
        if self._checkpoint and error is None:
            log.info("job %s checkpointed at %d/%d images", self.job_id, job.done, job.total)
            return job
        if error is not None:
            status = "failed"
        elif self._cancel.is_set() or job.cancel:
            status = "cancelled"
        else:
            status = "failed" if job.failed else "succeeded"
        await asyncio.to_thread(self.store.finish_job, self.job_id, status, error)
        log.info("job %s %s: %d images, %d succeeded, %d failed, %d skipped", self.job_id, status, job.total,
                 job.succeeded, job.failed, job.skipped)
        return await asyncio.to_thread(self.store.get_job, self.job_id)  # type: ignore[return-value]

    # -- enumeration (in a thread) ---------------------------------------------------------

    def _enumerate(self, spec: dict[str, Any], job: JobRow) -> None:
        src = spec["source"]
        root = str(self.engine.settings.data_root)
        folder = resolve(root, src["dir"], "source.dir")
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

    def _prepare(self, rows: Sequence[tuple[int, str, str]], pipeline: Pipeline,
                 skip_existing: bool) -> list[tuple[int, list[str], Task | Report]]:
        """Resolve paths and look up the manifest for a batch of pending images (blocking)."""
        s = self.engine.settings
        root = str(s.data_root)
        shape = pipeline.fanout_shape
        digest = pipeline.digest()
        out = []
        for seq, inp, outp in rows:
            names = output_names(outp, shape)
            try:
                in_real = resolve(root, inp, "input")
            except ImgsrvError as exc:
                out.append((seq, names, Report.failure("not_found", exc.message)))
                continue
            try:
                check_output_format(outp, "output")
                out_real = resolve(root, outp, "output")
                if in_real == out_real:
                    raise InvalidRequest("the output is the input; imgsrv never overwrites an input")
            except ImgsrvError as exc:
                out.append((seq, names, Report.failure("write_error", exc.message)))
                continue
            reals = output_names(out_real, shape)
            # no fdatasync per file: _save makes each batch durable with one syncfs before recording it
            task = Task(in_real, tuple(reals), pipeline, s.max_pixels, sync=False, planes=s.jpeg_planes)
            if skip_existing:
                found = self.store.expected(task.outputs, digest)
                if found is not None:
                    task = replace(task, expected=found)
            out.append((seq, names, task))
        return out

    async def _process(self, pipeline: Pipeline, spec: dict[str, Any], enumeration: asyncio.Task | None) -> None:
        loop = asyncio.get_running_loop()
        window = asyncio.Semaphore(self.window)
        in_flight = 0
        idle = asyncio.Event()
        idle.set()
        digest = pipeline.digest()
        last_seq = -1
        last_flush = time.monotonic()

        def finished(seq: int, names: list[str], rep: Report) -> None:
            nonlocal in_flight
            in_flight -= 1
            if in_flight == 0:
                idle.set()
            window.release()
            self._collect(seq, names, rep, digest)

        while not self._cancel.is_set():
            complete = self._enumerated  # read before the fetch: a fetch after it sees every item
            self._added.clear()  # before the fetch: items added after it set the event again
            rows = await asyncio.to_thread(self.store.pending_items, self.job_id, last_seq, FETCH)
            if not rows:
                if complete or enumeration is None or enumeration.done():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._added.wait(), 1.0)
                continue
            last_seq = rows[-1][0]
            prepared = await asyncio.to_thread(self._prepare, rows, pipeline, bool(spec.get("skip_existing", True)))
            for seq, names, work in prepared:
                if isinstance(work, Report):
                    self._collect(seq, names, work, digest)
                    continue
                await window.acquire()
                if self._cancel.is_set():
                    window.release()
                    break
                in_flight += 1
                idle.clear()
                fut = self.engine.executor.submit(work)
                fut.add_done_callback(lambda f, seq=seq, names=names: loop.call_soon_threadsafe(
                    finished, seq, names, f.result()))
                if len(self._buffer) >= FLUSH_EVERY or time.monotonic() - last_flush > FLUSH_SECONDS:
                    last_flush = time.monotonic()
                    self._flush_soon()
            if self._cancel.is_set():
                break
            self._flush_soon()
        await idle.wait()
        if self._flushing is not None:
            await self._flushing  # its error, if any, stops the job

    def _collect(self, seq: int, names: list[str], rep: Report, digest: str) -> None:
        self._buffer.append((seq, rep, names, digest))
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
                await asyncio.to_thread(self._save, batch)
            except BaseException:
                self._buffer[:0] = batch  # not recorded: the final flush tries again
                raise

    def _save(self, batch: list[tuple[int, Report, list[str], str | None]]) -> None:
        """Make the batch's outputs durable, then record the batch (blocking: in a thread).

        A result is recorded only once its files are on disk, so after a crash of the machine
        the store never claims an output that is not there.
        """
        folders = {os.path.dirname(o.path) for _seq, rep, _names, _digest in batch if rep.status == "ok"
                   for o in rep.outputs}
        try:
            self._sync.sync(sorted(folders))
        except WriteError as exc:
            log.error("job %s: %s", self.job_id, exc.message)
            batch = [(seq, Report.failure("write_error", exc.message, input_bytes=rep.input_bytes,
                                          elapsed_ms=rep.elapsed_ms) if rep.status == "ok" else rep, names, digest)
                     for seq, rep, names, digest in batch]
        self.store.save_results(self.job_id, batch)
        for _seq, rep, _names, _digest in batch:  # as recorded: a write-back error counts as one
            self.engine.observe(rep, self._pipeline)


class JobManager:
    """The server's running jobs: started on submit, resumed at start-up, checkpointed at shutdown."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._runners: dict[str, tuple[JobRunner, asyncio.Task]] = {}

    def start(self, job_id: str) -> None:
        runner = JobRunner(self.engine, job_id)
        task = asyncio.create_task(runner.run(), name=f"job-{job_id}")
        self._runners[job_id] = (runner, task)
        task.add_done_callback(lambda _t: self._runners.pop(job_id, None))

    async def resume_all(self) -> None:
        """Start again every job left queued or running by a previous server (after a crash too)."""
        for job in await asyncio.to_thread(self.engine.store.active_jobs):
            if job.cancel:
                await asyncio.to_thread(self.engine.store.finish_job, job.id, "cancelled")
                continue
            removed = await asyncio.to_thread(self._clean_temp_files, job)
            log.info("resuming job %s at %d/%d images (%d stray temporary files removed)", job.id, job.done,
                     job.total, removed)
            self.start(job.id)

    def _clean_temp_files(self, job: JobRow) -> int:
        """Temporary files of writers killed mid-write, in the folders this job writes to."""
        root = str(self.engine.settings.data_root)
        spec = json.loads(job.spec)
        if spec.get("output_dir"):
            rels = [spec["output_dir"]]
            recursive = True
        else:
            rels = sorted({os.path.dirname(o) for o in self.engine.store.pending_outputs(job.id)})
            recursive = False
        folders = []
        for rel in rels:
            try:
                folders.append(resolve(root, rel or ".", "output"))
            except ImgsrvError:
                continue
        return clean_temp_files(folders, recursive)

    async def cancel(self, job_id: str, wait: float = 60.0) -> None:
        await asyncio.to_thread(self.engine.store.request_cancel, job_id)
        entry = self._runners.get(job_id)
        if entry is None:
            job = await asyncio.to_thread(self.engine.store.get_job, job_id)
            if job is not None and job.status in ("queued", "running"):
                await asyncio.to_thread(self.engine.store.finish_job, job_id, "cancelled")
            return
        runner, task = entry
        runner.cancel()
        await asyncio.wait({task}, timeout=wait)

    async def shutdown(self) -> None:
        """Checkpoint every running job: in-flight images finish and are recorded; the jobs resume at the next start."""
        entries = list(self._runners.values())
        for runner, _task in entries:
            runner.checkpoint()
        if entries:
            await asyncio.wait({t for _r, t in entries}, timeout=120)


def submit_job(engine: Engine, *, operations: Sequence[Any], metadata: str = "keep", skip_existing: bool = True,
               images: Sequence[tuple[str, str]] | None = None, source: dict[str, Any] | None = None,
               output_dir: str | None = None, output_format: str | None = None) -> str:
    """Validate a job (raises RequestError: 403 / 422, nothing recorded) and record it as queued.

    ``operations`` are validated operations (None for one turned off). Either ``images``
    (input, output) pairs or a ``source`` folder ``{"dir", "pattern", "recursive"}`` with an
    ``output_dir``.
    """
    from .planning import build_pipeline, plan_images

    s = engine.settings
    root = str(s.data_root)
    pipeline = build_pipeline(operations, metadata, s.max_pixels)
    spec: dict[str, Any] = {"operations": pipeline.normalized(), "metadata": metadata,
                            "skip_existing": skip_existing}
    pairs: list[tuple[str, str]] = []
    if images is not None:
        pairs = [(p.input, p.output) for p in plan_images(images, pipeline, root, s.max_pixels)]
    else:
        assert source is not None and output_dir is not None
        folder = resolve(root, source["dir"], "source.dir")
        if not os.path.isdir(folder):
            raise InvalidRequest("the source folder does not exist or is not a folder", "source.dir")
        out_real = resolve(root, output_dir, "output_dir")
        if out_real == folder or (source.get("recursive") and os.path.commonpath([folder, out_real]) == folder):
            raise InvalidRequest("output_dir must not be the source folder or, for a recursive job, inside it",
                                 "output_dir")
        spec.update(source={"dir": source["dir"], "pattern": source.get("pattern") or "*",
                            "recursive": bool(source.get("recursive"))},
                    output_dir=output_dir, output_format=output_format)
    job_id = new_job_id()
    engine.store.create_job(job_id, spec)
    log.info("job %s queued: %s", job_id, f"{len(pairs)} images" if images is not None
             else f"folder {spec['source']['dir']!r} ({spec['source']['pattern']}) to {output_dir!r}")
    if images is not None:
        for start in range(0, len(pairs), 1000):
            engine.store.add_items(job_id, start, pairs[start:start + 1000])
        engine.store.mark_enumerated(job_id)
    return job_id

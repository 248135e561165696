"""The server's jobs: validated and recorded on submit, started, resumed at start-up,
cancelled on request, checkpointed at shutdown."""
from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from ..operations import Operation
from ..pipeline import Pipeline
from ..service import Service
from ..tasks import JobStatus, Overwrite
from .runner import JobRunner

log = logging.getLogger("imgsrv.jobs")

ADD_BATCH = 1000  # images of a list added to the store in one transaction


def new_job_id() -> str:
    return uuid.uuid4().hex


def submit_job(service: Service, *, operations: Sequence[Operation | None], metadata: str = "keep",
               skip_existing: bool = True, overwrite: Overwrite = Overwrite.OWN,
               images: Sequence[tuple[str, str]] | None = None, created_by: str | None = None,
               source: dict[str, Any] | None = None, output_dir: str | None = None,
               output_format: str | None = None) -> str:
    """Validate a job (raises RequestError: 403 / 422, nothing recorded) and record it as queued.

    ``operations`` are validated operations (None for one turned off). Either ``images``
    (input, output) pairs or a ``source`` folder ``{"dir", "pattern", "recursive"}`` with an
    ``output_dir``.
    """
    pipeline = service.pipeline(operations, metadata)
    spec: dict[str, Any] = {"operations": pipeline.normalized(), "metadata": metadata,
                            "skip_existing": skip_existing, "overwrite": overwrite}
    pairs: list[tuple[str, str]] = []
    if images is not None:
        # Checked as named (paths, formats, two images with one output, an output that is another's
        # input): neither a split's tiles nor the record of written files are looked at here, so a
        # small body cannot make the server plan millions of names; the job checks both per image.
        checked = service.planner.images(images, Pipeline(), overwrite=Overwrite.ALWAYS)
        pairs = [(p.input, p.output) for p in checked]
    else:
        assert source is not None and output_dir is not None
        service.planner.folder_job(source["dir"], bool(source.get("recursive")), output_dir)
        spec.update(source={"dir": source["dir"], "pattern": source.get("pattern") or "*",
                            "recursive": bool(source.get("recursive"))},
                    output_dir=output_dir, output_format=output_format)
    job_id = new_job_id()
    store = service.store
    store.create_job(job_id, spec, created_by)
    log.info("job %s queued: %s", job_id, f"{len(pairs)} images" if images is not None
             else f"folder {spec['source']['dir']!r} ({spec['source']['pattern']}) to {output_dir!r}")
    if images is not None:
        for start in range(0, len(pairs), ADD_BATCH):
            store.add_items(job_id, start, pairs[start:start + ADD_BATCH])
        store.mark_enumerated(job_id)
    return job_id


class JobManager:
    """The server's jobs: at most IMGSRV_MAX_JOBS run at once, the others wait as queued, in
    the order they came; resumed at start-up, checkpointed at shutdown."""

    def __init__(self, service: Service):
        self.service = service
        self._runners: dict[str, tuple[JobRunner, asyncio.Task]] = {}
        self._waiting: collections.deque[str] = collections.deque()
        self._stopping = False  # at shutdown the queued jobs stay queued: the next start runs them

    def start(self, job_id: str) -> None:
        """Run the job now, or once a running one ends."""
        if job_id not in self._runners and job_id not in self._waiting:
            self._waiting.append(job_id)
        self._start_waiting()

    def _start_waiting(self) -> None:
        while self._waiting and len(self._runners) < self.service.settings.max_jobs:
            job_id = self._waiting.popleft()
            runner = JobRunner(self.service, job_id)
            task = asyncio.create_task(runner.run(), name=f"job-{job_id}")
            self._runners[job_id] = (runner, task)
            task.add_done_callback(lambda _t, job_id=job_id: self._ended(job_id))

    def _ended(self, job_id: str) -> None:
        self._runners.pop(job_id, None)
        if not self._stopping:
            self._start_waiting()
            asyncio.get_running_loop().create_task(self.forget_old())

    async def forget_old(self) -> None:
        """Forget the jobs that finished longer ago than the retention period."""
        days = self.service.settings.job_retention_days
        if days:
            removed = await self.service.engine.offload(self.service.store.delete_finished_before,
                                                        time.time() - days * 86400)
            if removed:
                log.info("%d jobs finished more than %g days ago forgotten", removed, days)

    async def resume_all(self) -> None:
        """Start again every job left queued or running by a previous server (after a crash too)."""
        await self.forget_old()
        offload, store = self.service.engine.offload, self.service.store
        for job in await offload(store.active_jobs):
            if job.cancel:
                await offload(store.finish_job, job.id, JobStatus.CANCELLED)
                continue
            log.info("resuming job %s at %d/%d images", job.id, job.done, job.total)
            self.start(job.id)

    async def cancel(self, job_id: str, wait: float = 60.0) -> None:
        offload, store = self.service.engine.offload, self.service.store
        await offload(store.request_cancel, job_id)
        entry = self._runners.get(job_id)
        if job_id in self._waiting:
            self._waiting.remove(job_id)
        if entry is None:
            job = await offload(store.get_job, job_id)
            if job is not None and JobStatus(job.status).active:
                await offload(store.finish_job, job_id, JobStatus.CANCELLED)
            return
        runner, task = entry
        runner.cancel()
        await asyncio.wait({task}, timeout=wait)

    async def shutdown(self) -> None:
        """Checkpoint every running job: in-flight images finish and are recorded; the jobs resume at the next start."""
        self._stopping = True
        entries = list(self._runners.values())
        for runner, _task in entries:
            runner.checkpoint()
        if entries:
            await asyncio.wait({t for _r, t in entries}, timeout=120)

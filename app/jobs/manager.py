"""The server's jobs: validated and recorded on submit, started, resumed at start-up,
cancelled on request, checkpointed at shutdown."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import Sequence
from typing import Any

from ..errors import ImgsrvError
from ..files import clean_temp_files, resolve
from ..operations import Operation
from ..service import Service
from ..tasks import JobStatus
from .runner import JobRunner
from ..state import JobRow

log = logging.getLogger("imgsrv.jobs")

ADD_BATCH = 1000  # images of a list added to the store in one transaction


def new_job_id() -> str:
    return uuid.uuid4().hex


def submit_job(service: Service, *, operations: Sequence[Operation | None], metadata: str = "keep",
               skip_existing: bool = True, images: Sequence[tuple[str, str]] | None = None,
               source: dict[str, Any] | None = None, output_dir: str | None = None,
               output_format: str | None = None) -> str:
    """Validate a job (raises RequestError: 403 / 422, nothing recorded) and record it as queued.

    ``operations`` are validated operations (None for one turned off). Either ``images``
    (input, output) pairs or a ``source`` folder ``{"dir", "pattern", "recursive"}`` with an
    ``output_dir``.
    """
    pipeline = service.pipeline(operations, metadata)
    spec: dict[str, Any] = {"operations": pipeline.normalized(), "metadata": metadata,
                            "skip_existing": skip_existing}
    pairs: list[tuple[str, str]] = []
    if images is not None:
        pairs = [(p.input, p.output) for p in service.planner.images(images, pipeline)]
    else:
        assert source is not None and output_dir is not None
        service.planner.folder_job(source["dir"], bool(source.get("recursive")), output_dir)
        spec.update(source={"dir": source["dir"], "pattern": source.get("pattern") or "*",
                            "recursive": bool(source.get("recursive"))},
                    output_dir=output_dir, output_format=output_format)
    job_id = new_job_id()
    store = service.store
    store.create_job(job_id, spec)
    log.info("job %s queued: %s", job_id, f"{len(pairs)} images" if images is not None
             else f"folder {spec['source']['dir']!r} ({spec['source']['pattern']}) to {output_dir!r}")
    if images is not None:
        for start in range(0, len(pairs), ADD_BATCH):
            store.add_items(job_id, start, pairs[start:start + ADD_BATCH])
        store.mark_enumerated(job_id)
    return job_id


class JobManager:
    """The server's running jobs: started on submit, resumed at start-up, checkpointed at shutdown."""

    def __init__(self, service: Service):
        self.service = service
        self._runners: dict[str, tuple[JobRunner, asyncio.Task]] = {}

    def start(self, job_id: str) -> None:
        runner = JobRunner(self.service, job_id)
        task = asyncio.create_task(runner.run(), name=f"job-{job_id}")
        self._runners[job_id] = (runner, task)
        task.add_done_callback(lambda _t: self._runners.pop(job_id, None))

    async def resume_all(self) -> None:
        """Start again every job left queued or running by a previous server (after a crash too)."""
        offload, store = self.service.engine.offload, self.service.store
        for job in await offload(store.active_jobs):
            if job.cancel:
                await offload(store.finish_job, job.id, JobStatus.CANCELLED)
                continue
            removed = await offload(self._clean_temp_files, job)
            log.info("resuming job %s at %d/%d images (%d stray temporary files removed)", job.id, job.done,
                     job.total, removed)
            self.start(job.id)

    def _clean_temp_files(self, job: JobRow) -> int:
        """Temporary files of writers killed mid-write, in the folders this job writes to."""
        root = str(self.service.settings.data_root)
        spec = json.loads(job.spec)
        if spec.get("output_dir"):
            rels = [spec["output_dir"]]
            recursive = True
        else:
            rels = sorted({os.path.dirname(o) for o in self.service.store.pending_outputs(job.id)})
            recursive = False
        folders = []
        for rel in rels:
            try:
                folders.append(resolve(root, rel or ".", "output"))
            except ImgsrvError:
                continue
        return clean_temp_files(folders, recursive)

    async def cancel(self, job_id: str, wait: float = 60.0) -> None:
        offload, store = self.service.engine.offload, self.service.store
        await offload(store.request_cancel, job_id)
        entry = self._runners.get(job_id)
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
        entries = list(self._runners.values())
        for runner, _task in entries:
            runner.checkpoint()
        if entries:
            await asyncio.wait({t for _r, t in entries}, timeout=120)

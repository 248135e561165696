"""Background jobs: POST /jobs, GET /jobs, GET /jobs/{id}, GET /jobs/{id}/results, DELETE /jobs/{id}."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from ...errors import UnknownResource
from ...jobs.manager import submit_job
from ...state import ItemRow, JobRow
from ...service import Service
from ...tasks import JobStatus, Status, Totals
from ..bodies import openapi_body, read_json
from ..deps import Caller, CallerDep, JobsDep, ServiceDep
from ..schemas import (JOB_EXAMPLE, ErrorInfo, ImageResult, JobCreated, JobInfo, JobLinks, JobList, JobRequest,
                       JobResults, OutputResult, Summary)

# The largest integer every JSON client holds exactly (JavaScript's Number.MAX_SAFE_INTEGER);
# beyond SQLite's 64-bit integers an offset would not even reach the database.
MAX_OFFSET = 2 ** 53 - 1

router = APIRouter(prefix="/jobs", tags=["jobs"])

NOT_FOUND = {404: {"description": "no job with this id"}}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def _links(job_id: str) -> JobLinks:
    return JobLinks(self=f"/jobs/{job_id}", results=f"/jobs/{job_id}/results")


def job_info(job: JobRow) -> JobInfo:
    end = job.finished_at or time.time()
    rate = None
    if job.resumed_at is not None:
        span = max(end - job.resumed_at, 1e-6)
        rate = round((job.done - job.done_at_resume) / span, 3)
    remaining = max(job.total - job.done, 0)
    if not JobStatus(job.status).active:
        eta = 0.0
    elif rate:
        eta = round(remaining / rate, 1)
    else:
        eta = None
    elapsed = (end - job.started_at) * 1000.0 if job.started_at else 0.0
    summary = Summary.of(Totals(images=job.total, succeeded=job.succeeded, failed=job.failed, skipped=job.skipped,
                                outputs=job.outputs, input_bytes=job.input_bytes, output_bytes=job.output_bytes),
                         elapsed)
    return JobInfo(id=job.id, status=job.status, created_by=job.created_by, total=job.total, done=job.done, succeeded=job.succeeded,
                   failed=job.failed, skipped=job.skipped,
                   progress=round(job.done / job.total, 4) if job.total else (1.0 if job.finished_at else 0.0),
                   images_per_second=rate, eta_seconds=eta, created_at=_iso(job.created_at),
                   started_at=_iso(job.started_at), finished_at=_iso(job.finished_at), summary=summary,
                   error=job.error, links=_links(job.id))


def _result(row: ItemRow) -> ImageResult:
    return ImageResult(input=row.input, status=row.status, input_bytes=row.input_bytes or 0,
                       outputs=[OutputResult(**o) for o in row.outputs],
                       error=ErrorInfo(code=row.error_code, message=row.error_message or "")
                       if row.status == Status.ERROR else None,
                       elapsed_ms=row.elapsed_ms or 0.0)


async def _get(service: Service, job_id: str, caller: Caller) -> JobRow:
    """The job, if the caller may see it: its own (another key's job is a 404), or any for an admin."""
    job = await service.engine.offload(service.store.get_job, job_id)
    if job is None or not caller.sees(job.created_by):
        raise UnknownResource(f"no job with id {job_id!r}")
    return job


JOB_BODY = openapi_body(JobRequest, {
    "folder": {"summary": "a folder of images", "value": JOB_EXAMPLE},
    "images": {"summary": "a list of images (the /process body)", "value": {
        "images": [{"input": "testimages/astronaut.jpg", "output": "testoutput/jobs/astronaut.jpg"}],
        "operations": ["faces=blur"]}}})


@router.post("", status_code=202, response_model=JobCreated, openapi_extra=JOB_BODY,
             responses={403: {"description": "a path leads outside the data root"},
                        413: {"description": "a body larger than IMGSRV_MAX_BODY_BYTES"},
                        422: {"description": "invalid body, operation, path or folder"}})
async def create_job(request: Request, response: Response, service: ServiceDep, jobs: JobsDep,
                     caller: CallerDep) -> JobCreated:
    """Start a batch in the background; answers at once with the job's id and links.

    Each input ``DIR/REL`` of a folder job goes to ``OUTPUT_DIR/REL``. Images whose outputs
    are up to date are skipped (``options.skip_existing`` defaults to true for jobs).
    """
    body = await read_json(request, JobRequest)
    job_id = await service.engine.offload(lambda: submit_job(
        service, operations=body.operations, metadata=body.options.metadata,
        skip_existing=body.options.skip_existing, overwrite=body.options.overwrite,
        images=[(im.input, im.output) for im in body.images] if body.images is not None else None,
        source=body.source.model_dump() if body.source is not None else None,
        output_dir=body.output_dir, output_format=body.output_format, created_by=caller.key))
    jobs.start(job_id)
    response.headers["Location"] = f"/jobs/{job_id}"
    return JobCreated(id=job_id, status=JobStatus.QUEUED, links=_links(job_id))


@router.get("", response_model=JobList)
async def list_jobs(service: ServiceDep, caller: CallerDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> JobList:
    """Recent jobs, newest first."""
    rows = await service.engine.offload(service.store.list_jobs, limit, offset, caller.only)
    return JobList(jobs=[job_info(j) for j in rows])


@router.get("/{job_id}", response_model=JobInfo, responses=NOT_FOUND)
async def get_job(job_id: str, service: ServiceDep, caller: CallerDep) -> JobInfo:
    """Counts, progress, images per second and the estimated time left."""
    return job_info(await _get(service, job_id, caller))


@router.get("/{job_id}/results", response_model=JobResults, responses=NOT_FOUND)
async def job_results(job_id: str, service: ServiceDep, caller: CallerDep, offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                      status: Status | None = None) -> JobResults:
    """A page of per-image results in job order, optionally only those with one status."""
    await _get(service, job_id, caller)
    total, rows = await service.engine.offload(service.store.results, job_id, offset, limit, status)
    return JobResults(job_id=job_id, offset=offset, limit=limit, total=total, results=[_result(r) for r in rows])


@router.delete("/{job_id}", response_model=JobInfo, responses=NOT_FOUND)
async def cancel_job(job_id: str, service: ServiceDep, jobs: JobsDep, caller: CallerDep) -> JobInfo:
    """Cancel a queued or running job: no new image starts, images in flight finish (no
    partial files); answers the job as it ends.

    A job that has ended is deleted: its record and results are forgotten (the files it wrote
    stay); answers the job as it was. Finished jobs are also forgotten by themselves after
    IMGSRV_JOB_RETENTION_DAYS.
    """
    job = await _get(service, job_id, caller)
    if JobStatus(job.status).active:
        await jobs.cancel(job_id)
        return job_info(await _get(service, job_id, caller))
    await service.engine.offload(service.store.delete_job, job_id)
    return job_info(job)

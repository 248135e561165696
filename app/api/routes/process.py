"""POST /process (and py-image-server's POST /items/), POST /plan."""
from __future__ import annotations

import math
import time
from collections.abc import Sequence

from fastapi import APIRouter, Request

from ...errors import TooManyImages
from ...pipeline import Pipeline
from ...plan import PlannedImage
from ...service import Service
from ...tasks import Output, Report, Status, Totals
from ..bodies import openapi_body, read_json
from ..deps import ServiceDep
from ..schemas import (
    PROCESS_EXAMPLE,
    ErrorInfo,
    ImageResult,
    OutputResult,
    PlannedImageModel,
    PlanResponse,
    ProcessRequest,
    ProcessResponse,
    Summary,
)

router = APIRouter(tags=["process"])

REFUSALS = {
    403: {"description": "a path leads outside the data root"},
    413: {"description": "more images than IMGSRV_MAX_IMAGES_PER_REQUEST; use a job"},
    422: {"description": "invalid body, operation or parameter; the field is named"},
    429: {"description": "the worker queue is full; see Retry-After"},
}

PROCESS_BODY = openapi_body(ProcessRequest, {
    "quadrants": {"summary": "py-image-server request", "value": PROCESS_EXAMPLE},
    "camera-trap": {"summary": "camera-trap clean-up (crop the info bar, black out the logo)", "value": {
        "images": [{"input": "testimages/coffee.jpg", "output": "testoutput/coffee_clean.jpg"}],
        "operations": ["crop=bottom:40", "redact=0,-60,120,60", "quality=75"]}},
    "faces": {"summary": "blur faces", "value": {
        "images": [{"input": "testimages/astronaut.jpg", "output": "testoutput/astronaut_anon.jpg"}],
        "operations": ["faces=blur"]}},
})


def plan_request(body: ProcessRequest, service: Service,
                 skip_existing: bool = False) -> tuple[Pipeline, list[PlannedImage]]:
    """The pipeline, and every image planned: paths and names checked, the manifest looked up
    with ``skip_existing`` (blocking file-system look-ups: call off the event loop; the image
    count is checked before)."""
    pipeline = service.pipeline(body.operations, body.options.metadata)
    outputs, limit = len(body.images) * math.prod(pipeline.fanout_shape), service.settings.max_request_outputs
    if outputs > limit:
        raise TooManyImages(f"{outputs} outputs in one request; at most {limit} (IMGSRV_MAX_REQUEST_OUTPUTS; "
                            "submit a job for more)")
    return pipeline, service.planner.images([(im.input, im.output) for im in body.images], pipeline,
                                            skip_existing=skip_existing, overwrite=body.options.overwrite)


def _outputs(names: Sequence[str], outputs: Sequence[Output]) -> list[OutputResult]:
    return [OutputResult(path=name, width=o.width, height=o.height, bytes=o.bytes, faces=o.faces)
            for name, o in zip(names, outputs)]


def build_response(planned: Sequence[PlannedImage], reports: Sequence[Report], elapsed_ms: float) -> ProcessResponse:
    results = []
    for p, rep in zip(planned, reports):
        results.append(ImageResult(
            input=p.input, status=rep.status, input_bytes=rep.input_bytes, outputs=_outputs(p.outputs, rep.outputs),
            error=ErrorInfo(code=rep.error_code, message=rep.error_message) if rep.status == Status.ERROR else None,
            elapsed_ms=rep.elapsed_ms))
    return ProcessResponse(results=results, summary=Summary.of(Totals.of(reports), elapsed_ms))


async def read_process_body(request: Request, service: Service) -> ProcessRequest:
    """The body of /process, /items/ and /plan (413 over IMGSRV_MAX_IMAGES_PER_REQUEST)."""
    return await read_json(request, ProcessRequest, service.settings.max_images_per_request)


async def process_request(body: ProcessRequest, service: Service) -> ProcessResponse:
    start = time.perf_counter()
    engine = service.engine
    # Admission first: when the queue is full, answer 429 before spending anything on the request.
    engine.admit(len(body.images))
    try:
        pipeline, planned = await engine.offload(plan_request, body, service, body.options.skip_existing)
    except BaseException:
        engine.release(len(body.images))
        raise
    reports = await engine.run([p.task for p in planned], pipeline)  # type: ignore[misc]
    await engine.offload(service.store.record, reports, pipeline.digest())
    return build_response(planned, reports, (time.perf_counter() - start) * 1000.0)


@router.post("/process", response_model=ProcessResponse, responses=REFUSALS, openapi_extra=PROCESS_BODY)
async def process(request: Request, service: ServiceDep) -> ProcessResponse:
    """Run the operations on every image; one result per image, in request order.

    A bad image gets status ``error`` with a code and does not stop the others. A refused
    request (422, 403, 413, 429) writes nothing.
    """
    return await process_request(await read_process_body(request, service), service)


@router.post("/items/", response_model=ProcessResponse, responses=REFUSALS, openapi_extra=PROCESS_BODY)
async def items(request: Request, service: ServiceDep) -> ProcessResponse:
    """The original py-image-server route: the same as ``POST /process``."""
    return await process_request(await read_process_body(request, service), service)


@router.post("/plan", response_model=PlanResponse, responses={k: REFUSALS[k] for k in (403, 413, 422)},
             openapi_extra=PROCESS_BODY)
async def plan(request: Request, service: ServiceDep) -> PlanResponse:
    """The normalised operations and the files each image would write; no image is read or written."""
    pipeline, planned = await service.engine.offload(plan_request, await read_process_body(request, service), service)
    return PlanResponse(operations=pipeline.normalized(), outputs=sum(len(p.outputs) for p in planned),
                        images=[PlannedImageModel(input=p.input, output=p.output, outputs=p.outputs) for p in planned])

"""POST /render (upload an image, get the result back) and POST /compare (image diff)."""
from __future__ import annotations

import io
import json
import os
import zipfile
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import TypeAdapter

from ...errors import InvalidRequest
from ...formats import ALIASES, CONTENT_TYPE, EXTENSION, RENDER_FORMATS, Format, parse_format
from ...plan import tile_suffix
from ...service import Service
from ...tasks import Status
from ..bodies import validate
from ..deps import ServiceDep
from ..errors import image_error_response
from ..schemas import MAX_OPERATIONS, CompareRequest, CompareResponse, OperationItem

router = APIRouter(tags=["images"])

_OPERATIONS = TypeAdapter(list[OperationItem])
#: the names the form's ``format`` field takes: each format, then its aliases
FORMAT_NAMES = [str(name) for fmt in RENDER_FORMATS for name in (fmt, *(a for a, f in ALIASES.items() if f == fmt))]

RENDER_FORM = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "the image"},
            # A repeated field is an array in multipart: one field holding the operations, or one
            # field per operation.
            "operations": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                           "default": "resize=0.5",
                           "description": 'a JSON array of operations as in /process (["resize=0.5", {"op": '
                                          '"blur", "kernel": 5}]), or one operation (resize=0.5); the field may '
                                          "repeat, one operation each"},
            "format": {"type": "string", "enum": FORMAT_NAMES,
                       "description": "output format; default: the input's"},
        }}}},
}


def content_disposition(kind: str, filename: str) -> str:
    """``inline`` or ``attachment`` with ``filename``: plain ASCII as it is, any other name as
    RFC 5987's ``filename*`` (UTF-8, percent-encoded) beside an ASCII stand-in for old clients."""
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    if plain == filename:
        return f'{kind}; filename="{filename}"'
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def operations_of(fields: list) -> list:
    """The operations of the form: one field holding a JSON array (as in /process), or one field
    per operation (how Swagger UI and ``curl -F operations=... -F operations=...`` send an array),
    each a string form or a JSON object."""
    ops: list = []
    for part in fields:
        text = part.data.decode("utf-8", "replace").strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except ValueError:
            value = text  # a plain string form: resize=0.5
        if isinstance(value, list):
            ops.extend(value)
        else:
            ops.append(value)
    return ops


@router.post("/render", openapi_extra={"requestBody": RENDER_FORM},
             responses={200: {"description": "the image, or a zip of every output when the pipeline fans out",
                              "content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}, "application/zip": {}}},
                        413: {"description": "the upload is larger than IMGSRV_MAX_UPLOAD_BYTES"},
                        422: {"description": "invalid operations or format, or an image that cannot be processed"},
                        429: {"description": "the worker queue is full"}})
async def render(request: Request, service: ServiceDep) -> Response:
    """Upload one image and the operations; get the resulting image back (nothing is stored).

    A pipeline that fans out (split) answers a zip holding every output, named
    ``STEM_I.EXT`` after the uploaded file's name.
    """
    length, most = request.headers.get("content-length", ""), service.settings.max_upload_bytes
    held = min(int(length), most) if length.isdigit() else most
    service.engine.hold_upload(held)  # uploads wait in memory: their bytes together are bounded (429)
    try:
        return await _render(request, service)
    finally:
        service.engine.drop_upload(held)


async def _render(request: Request, service: Service) -> Response:
    from ..uploads import read_form

    # an upload needs its file, a format and the operations, each in one field or one per operation
    parts = await read_form(request, service.settings.max_upload_bytes, max_parts=MAX_OPERATIONS + 2)
    if len(parts.get("file", [])) != 1 or not parts["file"][0].data:
        raise InvalidRequest("the form needs one non-empty 'file' field with the image", "file")
    given = operations_of(parts.get("operations", []))
    if len(given) > MAX_OPERATIONS:
        raise InvalidRequest(f"{len(given)} operations; at most {MAX_OPERATIONS} in one request", "operations")
    ops = validate(_OPERATIONS.validate_python, given, ("operations",))
    fmt: Format | None = None
    if "format" in parts:
        fmt = parse_format(parts["format"][-1].data.decode("utf-8", "replace"))
        if fmt not in RENDER_FORMATS:
            raise InvalidRequest(f"format must be {', '.join(RENDER_FORMATS[:-1])} or {RENDER_FORMATS[-1]}", "format")
    pipeline = service.pipeline(ops)
    upload = parts["file"][0]
    task = service.planner.upload(bytes(upload.data), pipeline, fmt)
    upload.data = bytearray()
    rep = await service.engine.run_one(task, pipeline)
    if rep.status != Status.OK:
        return image_error_response(rep.error_code, rep.error_message, "file")  # type: ignore[arg-type]
    stem = os.path.splitext(os.path.basename(upload.filename or "image"))[0] or "image"
    written = Format(rep.format)
    ext = EXTENSION[written]
    if not pipeline.fanout_shape:
        out = rep.outputs[0]
        headers = {"Content-Disposition": content_disposition("inline", stem + ext), "X-Image-Width": str(out.width),
                   "X-Image-Height": str(out.height)}
        if out.faces is not None:
            headers["X-Faces"] = json.dumps(out.faces)
        return Response(out.blob, media_type=CONTENT_TYPE[written], headers=headers)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for out in rep.outputs:
            zf.writestr(stem + tile_suffix(out.suffix) + ext, out.blob)  # type: ignore[arg-type]
    return Response(buf.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": content_disposition("attachment", stem + ".zip")})


@router.post("/compare", response_model=CompareResponse,
             responses={403: {"description": "a path leads outside the data root"},
                        422: {"description": "invalid body, an image missing or undecodable, or sizes differ"},
                        429: {"description": "the worker queue is full; see Retry-After"}})
async def compare(body: CompareRequest, service: ServiceDep):
    """Count the pixels that differ between two images of the same size (ImageMagick ``compare -fuzz``).

    Two pixels differ when the distance of their colours is above ``fuzz`` percent of 255.
    With ``output``, a diff image is written: a faded copy of ``a`` with changed pixels in red.
    """
    task = await service.engine.offload(service.planner.compare, body.a, body.b, body.output, body.fuzz,
                                        body.overwrite)
    rep = await service.engine.run_one(task, observe=False)  # not an image processed: no image metrics
    if rep.outputs:
        await service.engine.offload(service.store.record_written, rep.outputs)
    if rep.status != Status.OK or rep.comparison is None:
        return image_error_response(rep.error_code, rep.error_message, rep.error_field or "a")  # type: ignore[arg-type]
    diff = rep.comparison
    return CompareResponse(width=diff.width, height=diff.height, different_pixels=diff.different_pixels,
                           different_fraction=diff.different_fraction, mean_abs_diff=diff.mean_abs_diff,
                           output=body.output, output_bytes=rep.outputs[0].bytes if rep.outputs else None)

"""POST /render (upload an image, get the result back) and POST /compare (image diff)."""
from __future__ import annotations

import io
import json
import os
import zipfile

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from ...errors import InvalidRequest
from ...imaging.codec import CONTENT_TYPES, EXTENSIONS, FORMATS
from ...planning import build_pipeline
from ...storage import resolve
from ...worker import CompareTask, RenderTask
from ..deps import EngineDep
from ..errors import validation_response
from ..schemas import CompareRequest, CompareResponse, OperationItem

router = APIRouter(tags=["images"])

_OPERATIONS = TypeAdapter(list[OperationItem])
RENDER_FORMATS = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png", "webp": "webp"}

# Per-image error codes of a single-image endpoint to HTTP statuses.
STATUS_OF_CODE = {"not_found": 422, "decode_error": 422, "too_large": 422, "invalid_operation": 422,
                  "write_error": 422, "worker_crashed": 500, "timeout": 504}

RENDER_FORM = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "the image"},
            "operations": {"type": "string", "default": "resize=0.5",
                           "description": 'a JSON array of operations as in /process (["resize=0.5", {"op": '
                                          '"blur", "kernel": 5}]), or one operation; the field may repeat, '
                                          "one operation each"},
            "format": {"type": "string", "enum": list(RENDER_FORMATS),
                       "description": "output format; default: the input's"},
        }}}},
}


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


def _image_error(code: str, message: str, field: str) -> Response:
    status = STATUS_OF_CODE.get(code, 422)
    if status != 422:
        return Response(json.dumps({"detail": message, "code": code}), status_code=status,
                        media_type="application/json")
    return validation_response([{"loc": ("body", *field.split(".")), "msg": message, "type": code}])


@router.post("/render", openapi_extra={"requestBody": RENDER_FORM},
             responses={200: {"description": "the image, or a zip of every output when the pipeline fans out",
                              "content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}, "application/zip": {}}},
                        413: {"description": "the upload is larger than IMGSRV_MAX_UPLOAD_BYTES"},
                        422: {"description": "invalid operations or format, or an image that cannot be processed"},
                        429: {"description": "the worker queue is full"}})
async def render(request: Request, engine: EngineDep) -> Response:
    """Upload one image and the operations; get the resulting image back (nothing is stored).

    A pipeline that fans out (split) answers a zip holding every output, named
    ``STEM_I.EXT`` after the uploaded file's name.
    """
    from ..uploads import read_form

    s = engine.settings
    parts = await read_form(request, s.max_upload_bytes)
    if len(parts.get("file", [])) != 1 or not parts["file"][0].data:
        raise InvalidRequest("the form needs one non-empty 'file' field with the image", "file")
    try:
        ops = _OPERATIONS.validate_python(operations_of(parts.get("operations", [])))
    except ValidationError as exc:
        return validation_response([{**e, "loc": ("body", "operations", *e["loc"])} for e in exc.errors()])
    fmt = None
    if "format" in parts:
        fmt = RENDER_FORMATS.get(parts["format"][-1].data.decode("utf-8", "replace"))
        if fmt is None:
            raise InvalidRequest("format must be jpeg, png or webp", "format")
    pipeline = build_pipeline(ops, "keep", s.max_pixels)
    upload = parts["file"][0]
    task = RenderTask(bytes(upload.data), pipeline, fmt, s.max_pixels, s.jpeg_planes)
    upload.data = bytearray()
    rep = await engine.run_one(task, pipeline)
    if rep.status != "ok":
        return _image_error(rep.error_code, rep.error_message, "file")
    stem = os.path.splitext(os.path.basename(upload.filename or "image"))[0] or "image"
    ext = EXTENSIONS[rep.format]
    if not pipeline.fanout_shape:
        out = rep.outputs[0]
        headers = {"Content-Disposition": f'inline; filename="{stem}{ext}"', "X-Image-Width": str(out.width),
                   "X-Image-Height": str(out.height)}
        if out.faces is not None:
            headers["X-Faces"] = json.dumps(out.faces)
        return Response(out.blob, media_type=CONTENT_TYPES[rep.format], headers=headers)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for out in rep.outputs:
            zf.writestr(stem + "".join(f"_{i}" for i in out.suffix) + ext, out.blob)
    return Response(buf.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{stem}.zip"'})


def _plan_compare(body: CompareRequest, engine) -> CompareTask:
    s = engine.settings
    root = str(s.data_root)
    a = resolve(root, body.a, "a")
    b = resolve(root, body.b, "b")
    out = None
    if body.output is not None:
        if os.path.splitext(body.output)[1].lower() not in FORMATS:
            raise InvalidRequest(f"the output's extension is not one of {', '.join(sorted(FORMATS))}", "output")
        out = resolve(root, body.output, "output")
        if out in (a, b):
            raise InvalidRequest("the output is one of the inputs; imgsrv never overwrites an input", "output")
    return CompareTask(a, b, out, body.fuzz, s.max_pixels)


@router.post("/compare", response_model=CompareResponse,
             responses={403: {"description": "a path leads outside the data root"},
                        422: {"description": "invalid body, an image missing or undecodable, or sizes differ"},
                        429: {"description": "the worker queue is full; see Retry-After"}})
async def compare(body: CompareRequest, engine: EngineDep):
    """Count the pixels that differ between two images of the same size (ImageMagick ``compare -fuzz``).

    Two pixels differ when the distance of their colours is above ``fuzz`` percent of 255.
    With ``output``, a diff image is written: a faded copy of ``a`` with changed pixels in red.
    """
    task = await engine.offload(_plan_compare, body, engine)
    rep = await engine.run_one(task, observe=False)  # not an image processed: no image metrics
    if rep.status != "ok":
        return _image_error(rep.error_code, rep.error_message, rep.which or "a")
    return CompareResponse(width=rep.width, height=rep.height, different_pixels=rep.different_pixels,
                           different_fraction=rep.different_fraction, mean_abs_diff=rep.mean_abs_diff,
                           output=body.output, output_bytes=rep.output_bytes)

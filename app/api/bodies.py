"""JSON request bodies that cannot stall the event loop.

FastAPI parses and validates a body in one go on the event loop: a large one (100,000 images
in a few megabytes) holds every other request meanwhile, and a thread would not help (the
validation holds the GIL). The routes that take large bodies read the bytes (bounded by
IMGSRV_MAX_BODY_BYTES, see middleware.BodyLimit), refuse a request over its image limit from
the parsed JSON before validating anything (413), and validate a long ``images`` list in
chunks, giving the event loop back between them. Errors answer exactly as FastAPI's would (a
422 naming the field). The model and its examples are declared in the OpenAPI schema by hand
(``openapi_body``), so /docs and clients see the same body as before.
"""
from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError

from ..errors import TooManyImages
from .schemas import ImageSpec

M = TypeVar("M", bound=BaseModel)
_REF = "#/components/schemas/{model}"
CHUNK = 500  # images validated between two turns of the event loop
_IMAGES = TypeAdapter(list[ImageSpec])


def openapi_body(model: type[BaseModel], examples: dict[str, Any]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route whose JSON body is ``model`` (see declare_bodies)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": _REF.format(model=model.__name__)}, "examples": examples}}}}


def declare_bodies(schema: dict[str, Any], models: list[type[BaseModel]]) -> None:
    """Add the models that routes read with ``read_json`` (and what they refer to) to an
    OpenAPI schema's components, where FastAPI would have put them."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        own = model.model_json_schema(ref_template=_REF, mode="validation")
        for name, definition in own.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault(model.__name__, own)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_json(request: Request, model: type[M], max_images: int | None = None) -> M:
    """The request's body as ``model`` (RequestValidationError: 422; TooManyImages: 413 when its
    ``images`` are more than ``max_images``, before anything is validated)."""
    content_type = request.headers.get("content-type")
    raw = await request.body()
    if content_type and not _is_json(content_type):
        raise RequestValidationError([{"type": "model_attributes_type", "loc": ("body",), "input": None,
                                       "msg": "Input should be a valid dictionary or object to extract fields from"}])
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "input": None, "msg": "Field required"}])
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos), "input": {},
                                       "msg": "JSON decode error", "ctx": {"error": exc.msg}}]) from None
    except UnicodeDecodeError:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "input": {},
                                       "msg": "the body is not valid JSON (UTF-8)"}]) from None
    images = data.get("images") if isinstance(data, dict) else None
    if max_images is not None and isinstance(images, list) and len(images) > max_images:
        raise TooManyImages(f"{len(images)} images in one request; at most {max_images} (submit a job for more)")
    # as FastAPI validates a body (from attributes too): null, a list or a number is model_attributes_type
    whole = partial(model.model_validate, from_attributes=True)
    if not isinstance(images, list) or len(images) <= CHUNK:
        return validate(whole, data)
    head = validate(whole, {**data, "images": images[:1]})
    specs: list[ImageSpec] = []
    errors: list[Any] = []  # every chunk's, as FastAPI would list them all
    for start in range(0, len(images), CHUNK):
        await asyncio.sleep(0)  # other requests go on between the chunks
        try:
            specs += validate(_IMAGES.validate_python, images[start:start + CHUNK], ("images",), start)
        except RequestValidationError as exc:
            errors += exc.errors()
    if errors:
        raise RequestValidationError(errors)
    return head.model_copy(update={"images": specs})


def validate(check, data: Any, where: tuple = (), offset: int = 0) -> Any:
    """``check(data)``, its errors as FastAPI's 422 (RequestValidationError), their place in the
    body after ``where`` (an item's index counted from ``offset``)."""
    try:
        return check(data)
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            loc = e["loc"]
            if where and loc and isinstance(loc[0], int):
                loc = (*where, loc[0] + offset, *loc[1:])
            errors.append({**e, "loc": ("body", *loc)})
        raise RequestValidationError(errors) from None

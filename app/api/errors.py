"""Domain errors to HTTP answers, in one place: the status of every error code is here.

Field errors (422, 403) answer FastAPI's usual shape, ``{"detail": [{"loc", "msg", "type"}]}``,
with a ``field`` in the request's own spelling (``operations[2].kernel``) added to each entry
and a one-line ``message``. Other refusals (413, 429, 404) answer ``{"detail": TEXT}``.
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ErrorCode, QueueFull, RefusalCode, RequestError, Unauthorized
from ..operations import OPERATIONS

#: a refused request's status, by its code
STATUS_OF_REFUSAL: dict[RefusalCode, int] = {
    RefusalCode.INVALID_REQUEST: 422,
    RefusalCode.FORBIDDEN_PATH: 403,
    RefusalCode.REQUEST_TOO_LARGE: 413,
    RefusalCode.QUEUE_FULL: 429,
    RefusalCode.NOT_FOUND: 404,
    RefusalCode.UNAUTHORIZED: 401,
    RefusalCode.BAD_HOST: 400,
}

#: the status of a single-image endpoint (/render, /compare) whose image failed, by its code;
#: /process answers 200 whatever its images' codes
STATUS_OF_IMAGE_ERROR: dict[ErrorCode, int] = {
    ErrorCode.NOT_FOUND: 422,
    ErrorCode.DECODE_ERROR: 422,
    ErrorCode.TOO_LARGE: 422,
    ErrorCode.INVALID_OPERATION: 422,
    ErrorCode.WRITE_ERROR: 422,
    ErrorCode.OUTPUT_EXISTS: 422,
    ErrorCode.WORKER_CRASHED: 500,
    ErrorCode.TIMEOUT: 504,
}


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """``('body', 'operations', 2, 'blur', 'kernel')`` -> ``operations[2].kernel``.

    The discriminator tag pydantic puts after an operation's index is left out.
    """
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "form"):
        parts = parts[1:]
    out = ""
    prev: Any = None
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif isinstance(prev, int) and p in OPERATIONS and "operations" in out:
            pass  # the union's tag, not a field
        else:
            out += ("." if out else "") + str(p)
        prev = p
    return out or "body"


def _entry(loc: list[Any], msg: str, typ: str, field: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": typ, "field": field}


def validation_response(errors: list[dict[str, Any]]) -> JSONResponse:
    detail = []
    for err in errors:
        # a body that is not JSON: pydantic's location is the character position, not a field
        field = "body" if err.get("type") == "json_invalid" else field_name(err.get("loc", ()))
        msg = err.get("msg", "invalid")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        detail.append(_entry(list(err.get("loc", ())), msg, err.get("type", "value_error"), field))
    message = "; ".join(f"{d['field']}: {d['msg']}" for d in detail[:5])
    return JSONResponse({"detail": jsonable_encoder(detail), "message": message}, status_code=422)


def request_error_response(exc: RequestError) -> JSONResponse:
    headers = {}
    if isinstance(exc, QueueFull):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if exc.field is not None:
        loc = ["body", *_loc_of(exc.field)]
        body: dict[str, Any] = {"detail": [_entry(loc, exc.message, exc.code, exc.field)],
                                "message": f"{exc.field}: {exc.message}"}
    else:
        body = {"detail": exc.message, "code": exc.code}
    return JSONResponse(body, status_code=STATUS_OF_REFUSAL[exc.code], headers=headers)


def image_error_response(code: ErrorCode, message: str, field: str) -> JSONResponse:
    """The answer of a single-image endpoint whose image failed: 422 naming ``field``, or the
    code's own status (a crashed worker, a time limit)."""
    status = STATUS_OF_IMAGE_ERROR.get(code, 422)
    if status != 422:
        return JSONResponse({"detail": message, "code": code}, status_code=status)
    return validation_response([{"loc": ("body", *field.split(".")), "msg": message, "type": code}])


def _loc_of(field: str) -> list[Any]:
    """``images[0].input`` -> ``['images', 0, 'input']``."""
    loc: list[Any] = []
    for part in field.replace("]", "").replace("[", ".").split("."):
        if part:
            loc.append(int(part) if part.isdigit() else part)
    return loc


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        # FastAPI answers 400 for a body it cannot decode at all (not UTF-8); that is a body
        # that is not JSON, which the contract answers with 422 like any other.
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            return validation_response([{"loc": ("body",), "type": "json_invalid",
                                         "msg": "the body is not valid JSON (UTF-8)"}])
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(list(exc.errors()))

    @app.exception_handler(RequestError)
    async def _request_error(_request: Request, exc: RequestError) -> JSONResponse:
        return request_error_response(exc)

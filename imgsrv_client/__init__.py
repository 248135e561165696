"""A small Python client for the imgsrv HTTP API, on httpx (sync and async).

Usage::

    from imgsrv_client import AsyncClient, Client, ValidationError

    with Client("http://127.0.0.1:8888", timeout=60) as c:
        out = c.process([("testimages/cyclo1.jpg", "testoutput/cyclo1.jpg")], ["resize=0.5", "blur=5"])
        print(out["summary"]["succeeded"])

        r = c.render("photo.jpg", ["resize=0.5"], format="png")
        open("small.png", "wb").write(r.content)       # r.content_type == "image/png"

        job_id = c.submit_job(source={"dir": "camera", "pattern": "*.JPG"}, output_dir="clean",
                              operations=["crop=bottom:100"])
        job = c.wait(job_id, progress=lambda j: print(j["done"], "/", j["total"]))

        try:
            c.process([("a.jpg", "b.jpg")], [{"op": "blur", "kernel": 4}])
        except ValidationError as exc:
            print(exc.status_code, exc.code, exc.field, exc.message)   # 422 ... operations[0].kernel ...

    async with AsyncClient("http://127.0.0.1:8888") as c:
        health = await c.health()

Refusals raise an ``ImgsrvError`` subclass carrying the HTTP status, the server's error code
and the field it names; network failures raise httpx's own ``httpx.TransportError``.
The client does no image processing: it only moves bytes and JSON.
"""
from __future__ import annotations

import asyncio
import inspect
import io
import json
import os
import time
import zipfile
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Union

import httpx

__all__ = ["Client", "AsyncClient", "RenderResult", "ImgsrvError", "ValidationError", "ForbiddenPath", "Unauthorized",
           "TooLarge", "QueueFull", "NotFound", "ServerError", "JobTimeout"]

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")

Operation = Union[str, Mapping[str, Any]]
ImageSpec = Union[Mapping[str, str], Sequence[str]]
FileInput = Union[bytes, bytearray, memoryview, str, os.PathLike, BinaryIO]


# -- errors ------------------------------------------------------------------------------------


class ImgsrvError(Exception):
    """Base class of every error the server answers (or the client raises on its behalf)."""

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None,
                 field: str | None = None, response: httpx.Response | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.field = field
        self.response = response

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field and not self.message.startswith(f"{self.field}:") else ""
        head = f"{self.status_code} " if self.status_code is not None else ""
        tag = f"[{self.code}] " if self.code else ""
        return f"{head}{tag}{where}{self.message}"


class ValidationError(ImgsrvError):
    """422: the body, an operation, a parameter or an image was refused."""


class ForbiddenPath(ImgsrvError):
    """403: a path leads outside the server's data root."""


class Unauthorized(ImgsrvError):
    """401: no API key, or a wrong one (``api_key=`` or IMGSRV_API_KEY)."""


class TooLarge(ImgsrvError):
    """413: too many images in one request, or an upload over the size limit."""


class QueueFull(ImgsrvError):
    """429: the worker queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class NotFound(ImgsrvError):
    """404: no such job (or route)."""


class ServerError(ImgsrvError):
    """5xx: the server failed (a worker crashed, a time limit, a bug)."""


class JobTimeout(ImgsrvError):
    """wait() gave up before the job ended; ``job`` is its last known state."""

    def __init__(self, message: str, *, job: dict | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.job = job


_BY_STATUS: dict[int, type[ImgsrvError]] = {401: Unauthorized, 422: ValidationError, 403: ForbiddenPath, 413: TooLarge,
                                             429: QueueFull, 404: NotFound}


def _error_from(response: httpx.Response) -> ImgsrvError:
    """The typed error for a refused response."""
    status = response.status_code
    code = field_name = None
    message = response.reason_phrase or f"HTTP {status}"
    try:
        body = response.json()
    except ValueError:
        body = None
        text = response.text.strip()
        if text:
            message = text[:500]
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            first = detail[0]
            code = first.get("type")
            field_name = first.get("field")
            if field_name is None and isinstance(first.get("loc"), list):
                field_name = ".".join(str(p) for p in first["loc"][1:]) or None
            message = body.get("message") or first.get("msg") or message
        elif isinstance(detail, str):
            message = detail
        elif body.get("message"):
            message = str(body["message"])
        if isinstance(body.get("code"), str):
            code = body["code"]
    kw = {"status_code": status, "code": code, "field": field_name, "response": response}
    if status == 429:
        retry = response.headers.get("retry-after")
        try:
            retry_after = float(retry) if retry is not None else None
        except ValueError:
            retry_after = None
        return QueueFull(message, retry_after=retry_after, **kw)
    if status >= 500:
        return ServerError(message, **kw)
    return _BY_STATUS.get(status, ImgsrvError)(message, **kw)


def _check(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    raise _error_from(response)


# -- results -----------------------------------------------------------------------------------


@dataclass
class RenderResult:
    """What POST /render answered: one image, or a zip of every output when the pipeline fans out."""

    content: bytes
    content_type: str
    is_zip: bool
    width: int | None = None
    height: int | None = None
    filename: str | None = None
    faces: list[dict] | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    def files(self) -> dict[str, bytes]:
        """The outputs by name: the zip's entries, or the one image under its name."""
        if not self.is_zip:
            return {self.filename or "image": self.content}
        with zipfile.ZipFile(io.BytesIO(self.content)) as zf:
            return {name: zf.read(name) for name in zf.namelist()}


def _render_result(response: httpx.Response) -> RenderResult:
    ctype = response.headers.get("content-type", "").split(";")[0].strip()
    h = response.headers

    def as_int(name: str) -> int | None:
        v = h.get(name)
        return int(v) if v is not None and v.strip().isdigit() else None

    filename = None
    disp = h.get("content-disposition", "")
    if "filename=" in disp:
        filename = disp.split("filename=", 1)[1].split(";")[0].strip().strip('"') or None
    faces = json.loads(h["x-faces"]) if "x-faces" in h else None
    return RenderResult(response.content, ctype, ctype == "application/zip", as_int("x-image-width"),
                        as_int("x-image-height"), filename, faces, dict(h))


# -- request building (shared by both clients) -------------------------------------------------


def _images(images: Iterable[ImageSpec]) -> list[dict[str, str]]:
    out = []
    for im in images:
        if isinstance(im, Mapping):
            out.append(dict(im))
        else:
            inp, outp = im
            out.append({"input": os.fspath(inp), "output": os.fspath(outp)})
    return out


def _process_body(images: Iterable[ImageSpec], operations: Sequence[Operation] | None,
                  options: Mapping[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"images": _images(images), "operations": list(operations or [])}
    if options:
        body["options"] = dict(options)
    return body


def _upload(file: FileInput) -> tuple[str, bytes]:
    """(filename, bytes) of what render() was given: bytes, a path or a binary file object."""
    if isinstance(file, (bytes, bytearray, memoryview)):
        return "image", bytes(file)
    if isinstance(file, (str, os.PathLike)):
        path = os.fspath(file)
        with open(path, "rb") as fh:
            return os.path.basename(path) or "image", fh.read()
    name = os.path.basename(getattr(file, "name", "") or "") or "image"
    return name, file.read()


def _render_request(file: FileInput, operations: Sequence[Operation] | None, format: str | None,
                    filename: str | None) -> dict[str, Any]:
    name, data = _upload(file)
    form = {"operations": json.dumps(list(operations or []))}
    if format is not None:
        form["format"] = format
    return {"files": {"file": (filename or name, data, "application/octet-stream")}, "data": form}


def _compare_body(a: str, b: str, output: str | None, fuzz: float) -> dict[str, Any]:
    body: dict[str, Any] = {"a": a, "b": b, "fuzz": fuzz}
    if output is not None:
        body["output"] = output
    return body


def _results_params(offset: int, limit: int, status: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"offset": offset, "limit": limit}
    if status is not None:
        params["status"] = status
    return params


def _timeout_error(job_id: str, timeout: float, job: dict | None) -> JobTimeout:
    state = f" (status {job['status']}, {job['done']} of {job['total']} done)" if job else ""
    return JobTimeout(f"job {job_id} did not end within {timeout:g} s{state}", code="timeout", job=job)


# -- the clients -------------------------------------------------------------------------------


def _with_key(api_key: str | None, httpx_kwargs: dict[str, Any]) -> dict[str, Any]:
    """httpx's keywords with ``Authorization: Bearer KEY`` (the key given, or IMGSRV_API_KEY)."""
    key = api_key if api_key is not None else os.environ.get("IMGSRV_API_KEY")
    if not key:
        return httpx_kwargs
    return {**httpx_kwargs, "headers": {**dict(httpx_kwargs.get("headers") or {}), "Authorization": f"Bearer {key}"}}


class Client:
    """Synchronous client: ``Client("http://127.0.0.1:8888", timeout=60, api_key="SECRET")``; the key
    defaults to the environment's IMGSRV_API_KEY; extra keywords go to httpx.Client."""

    def __init__(self, base_url: str = "http://127.0.0.1:8888", timeout: float | httpx.Timeout | None = 60.0,
                 api_key: str | None = None, **httpx_kwargs: Any):
        self.http = httpx.Client(base_url=base_url, timeout=timeout, **_with_key(api_key, httpx_kwargs))

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _json(self, method: str, url: str, **kw: Any) -> Any:
        return _check(self.http.request(method, url, **kw)).json()

    # images

    def process(self, images: Iterable[ImageSpec], operations: Sequence[Operation] | None = None,
                options: Mapping[str, Any] | None = None) -> dict:
        """POST /process: ``images`` as dicts or (input, output) pairs; the results and summary."""
        return self._json("POST", "/process", json=_process_body(images, operations, options))

    def plan(self, images: Iterable[ImageSpec], operations: Sequence[Operation] | None = None,
             options: Mapping[str, Any] | None = None) -> dict:
        """POST /plan: normalised operations and the output paths, nothing read or written."""
        return self._json("POST", "/plan", json=_process_body(images, operations, options))

    def render(self, file: FileInput, operations: Sequence[Operation] | None = None, format: str | None = None,
               filename: str | None = None) -> RenderResult:
        """POST /render: upload bytes, a path or a file object; the resulting image (or zip)."""
        r = _check(self.http.post("/render", **_render_request(file, operations, format, filename)))
        return _render_result(r)

    def compare(self, a: str, b: str, output: str | None = None, fuzz: float = 10) -> dict:
        """POST /compare: pixel difference of two server-side images; writes a diff image to ``output``."""
        return self._json("POST", "/compare", json=_compare_body(a, b, output, fuzz))

    # jobs

    def submit_job(self, **job_body: Any) -> str:
        """POST /jobs with the given body fields (images= or source= and output_dir=, operations=, ...); the id."""
        return self._json("POST", "/jobs", json=job_body)["id"]

    def job(self, job_id: str) -> dict:
        """GET /jobs/{id}: status, counts, progress."""
        return self._json("GET", f"/jobs/{job_id}")

    def jobs(self, limit: int = 50, offset: int = 0) -> list[dict]:
        """GET /jobs: recent jobs, newest first."""
        return self._json("GET", "/jobs", params={"limit": limit, "offset": offset})["jobs"]

    def results(self, job_id: str, offset: int = 0, limit: int = 100, status: str | None = None) -> dict:
        """GET /jobs/{id}/results: one page of per-image results."""
        return self._json("GET", f"/jobs/{job_id}/results", params=_results_params(offset, limit, status))

    def cancel(self, job_id: str) -> dict:
        """DELETE /jobs/{id}: cancel; the job as it ends."""
        return self._json("DELETE", f"/jobs/{job_id}")

    def wait(self, job_id: str, poll: float = 0.2, timeout: float | None = None,
             progress: Callable[[dict], Any] | None = None) -> dict:
        """Poll the job until it ends; ``progress(job)`` is called with every state seen. Its last state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = None
        while True:
            job = self.job(job_id)
            if progress is not None:
                progress(job)
            if job["status"] in TERMINAL_STATUSES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise _timeout_error(job_id, timeout, job)  # type: ignore[arg-type]
            time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))

    # service

    def health(self) -> dict:
        """GET /health."""
        return self._json("GET", "/health")

    def operations(self) -> list[dict]:
        """GET /operations: every operation with its parameters' JSON schema."""
        return self._json("GET", "/operations")["operations"]

    def metrics(self) -> str:
        """GET /metrics: the Prometheus text."""
        return _check(self.http.get("/metrics")).text


class AsyncClient:
    """Asynchronous client with the same methods as ``Client``, to be awaited."""

    def __init__(self, base_url: str = "http://127.0.0.1:8888", timeout: float | httpx.Timeout | None = 60.0,
                 api_key: str | None = None, **httpx_kwargs: Any):
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout, **_with_key(api_key, httpx_kwargs))

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _json(self, method: str, url: str, **kw: Any) -> Any:
        return _check(await self.http.request(method, url, **kw)).json()

    async def process(self, images: Iterable[ImageSpec], operations: Sequence[Operation] | None = None,
                      options: Mapping[str, Any] | None = None) -> dict:
        """POST /process."""
        return await self._json("POST", "/process", json=_process_body(images, operations, options))

    async def plan(self, images: Iterable[ImageSpec], operations: Sequence[Operation] | None = None,
                   options: Mapping[str, Any] | None = None) -> dict:
        """POST /plan."""
        return await self._json("POST", "/plan", json=_process_body(images, operations, options))

    async def render(self, file: FileInput, operations: Sequence[Operation] | None = None,
                     format: str | None = None, filename: str | None = None) -> RenderResult:
        """POST /render."""
        r = _check(await self.http.post("/render", **_render_request(file, operations, format, filename)))
        return _render_result(r)

    async def compare(self, a: str, b: str, output: str | None = None, fuzz: float = 10) -> dict:
        """POST /compare."""
        return await self._json("POST", "/compare", json=_compare_body(a, b, output, fuzz))

    async def submit_job(self, **job_body: Any) -> str:
        """POST /jobs; the id."""
        return (await self._json("POST", "/jobs", json=job_body))["id"]

    async def job(self, job_id: str) -> dict:
        """GET /jobs/{id}."""
        return await self._json("GET", f"/jobs/{job_id}")

    async def jobs(self, limit: int = 50, offset: int = 0) -> list[dict]:
        """GET /jobs."""
        return (await self._json("GET", "/jobs", params={"limit": limit, "offset": offset}))["jobs"]

    async def results(self, job_id: str, offset: int = 0, limit: int = 100, status: str | None = None) -> dict:
        """GET /jobs/{id}/results."""
        return await self._json("GET", f"/jobs/{job_id}/results", params=_results_params(offset, limit, status))

    async def cancel(self, job_id: str) -> dict:
        """DELETE /jobs/{id}."""
        return await self._json("DELETE", f"/jobs/{job_id}")

    async def wait(self, job_id: str, poll: float = 0.2, timeout: float | None = None,
                   progress: Callable[[dict], Any | Awaitable[Any]] | None = None) -> dict:
        """Poll until the job ends; ``progress`` may be a plain function or a coroutine function."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            job = await self.job(job_id)
            if progress is not None:
                ret = progress(job)
                if inspect.isawaitable(ret):
                    await ret
            if job["status"] in TERMINAL_STATUSES:
                return job
            if deadline is not None and loop.time() >= deadline:
                raise _timeout_error(job_id, timeout, job)  # type: ignore[arg-type]
            await asyncio.sleep(poll if deadline is None else max(0.0, min(poll, deadline - loop.time())))

    async def health(self) -> dict:
        """GET /health."""
        return await self._json("GET", "/health")

    async def operations(self) -> list[dict]:
        """GET /operations."""
        return (await self._json("GET", "/operations"))["operations"]

    async def metrics(self) -> str:
        """GET /metrics."""
        return _check(await self.http.get("/metrics")).text

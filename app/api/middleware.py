"""Pure ASGI middleware: one log line per request with a request id and the HTTP metrics;
the early 429 of the routes that need a worker."""
from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import TooManyImages
from .errors import request_error_response

log = logging.getLogger("imgsrv.http")


_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9._-]")


def printable(text: str) -> str:
    """``text`` as one field of a log line: control characters (a decoded ``%0A`` in a path),
    spaces and backslashes escaped, so a request can neither break a line of the log nor add
    fields to it (``key=...``)."""
    return _CONTROL.sub(lambda m: "\\\\" if m.group() == "\\" else f"\\x{ord(m.group()):02x}", text)


class RequestLog:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        rid = _NOT_TOKEN.sub("_", rid or uuid.uuid4().hex[:16])[:64]  # a token: it cannot fake a log field
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or scope.get("imgsrv.shed") or "(unmatched)"
            key = scope.get("state", {}).get("key") or "-"
            log.info("%s key=%s %s %s %d %.1f ms", rid, key, scope["method"], printable(scope["path"]),
                     status, elapsed * 1000.0)
            service = getattr(getattr(scope.get("app"), "state", None), "service", None)
            if service is not None:
                service.engine.metrics.observe_request(route, scope["method"], status, elapsed, key)


class ShedLoad:
    """Answer 429 before the body is read when the worker queue is already full.

    The routes in ``paths`` check admission again once the body is parsed (with the real image
    count); this check only makes the refusal cheap: under overload most requests are refused,
    and parsing and validating their bodies first would take the event loop away from the
    requests that were admitted. An upload refused here is not read at all.
    """

    def __init__(self, app: ASGIApp, paths: frozenset[str]):
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
        if path in self.paths:
            service = getattr(scope["app"].state, "service", None)
            refused = service.engine.refusal(1) if service is not None else None
            if refused is not None:
                scope["imgsrv.shed"] = path
                await request_error_response(refused)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def route_path(scope: Scope) -> str:
    """The path the app's routes see: without the ``root_path`` a proxy mounts the app under."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


class BodyLimit:
    """413 for a request body over ``limit`` bytes (IMGSRV_MAX_BODY_BYTES), before it is read whole.

    A larger Content-Length is refused before any byte is read; a body without one (chunked)
    is read up to the limit only. Uploads (``unlimited``: /render) have their own limits
    (app.api.uploads), by route: a client's Content-Type does not choose.
    """

    def __init__(self, app: ASGIApp, limit: int, unlimited: frozenset[str]):
        self.app = app
        self.limit = limit
        self.unlimited = unlimited

    def _too_large(self) -> TooManyImages:
        return TooManyImages(f"the body is larger than IMGSRV_MAX_BODY_BYTES ({self.limit} bytes); submit a job "
                             "for many images")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH")
                or route_path(scope) in self.unlimited):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await request_error_response(self._too_large())(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([], message, receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await request_error_response(self._too_large())(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)


def _replay(chunks: list[bytes], last: Message | None, receive: Receive) -> Receive:
    """A receive that gives the body read so far in one message, then what ``receive`` gives."""
    pending: list[Message] = [last] if last is not None else [
        {"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()
    return replay

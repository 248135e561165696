"""The early 429 of ShedLoad, on the ASGI level: which requests it answers, and how."""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from app.api.app import SHED_PATHS as PATHS
from app.api.middleware import ShedLoad
from app.errors import QueueFull


class Engine:
    def __init__(self, full: bool):
        self.full = full
        self.asked: list[int] = []

    def refusal(self, count: int = 1):
        self.asked.append(count)
        return QueueFull("8 images are in the queue; at most 8 may wait for a worker", retry_after=3) \
            if self.full else None


def call(method: str, path: str, full: bool, root_path: str = "", asked: list | None = None
         ) -> tuple[int, dict, bytes, bool]:
    """Send one request through ShedLoad; (status, headers, body, whether the app behind ran).
    ``asked`` receives the image counts ShedLoad asked the engine about."""
    reached = []
    engine = Engine(full)

    async def app(scope, receive, send):
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ran"})

    sent: list[dict] = []

    async def receive():
        pytest.fail("ShedLoad must not read the body")

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": root_path + path, "root_path": root_path,
             "headers": [], "query_string": b"", "app": SimpleNamespace(state=SimpleNamespace(service=SimpleNamespace(engine=engine)))}
    asyncio.run(ShedLoad(app, paths=PATHS)(scope, receive if full else None, send))
    if asked is not None:
        asked.extend(engine.asked)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body, bool(reached)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_full_queue_is_refused_before_the_body_with_retry_after(path):
    asked: list[int] = []
    status, headers, body, ran = call("POST", path, full=True, asked=asked)
    assert (status, ran) == (429, False)
    assert asked == [1], "the body is unread: ShedLoad can only ask whether one more image fits"
    assert headers["retry-after"] == "3"
    assert json.loads(body) == {"detail": "8 images are in the queue; at most 8 may wait for a worker",
                                "code": "queue_full"}


@pytest.mark.parametrize("method, path", [("GET", "/process"), ("POST", "/plan"), ("POST", "/jobs"),
                                          ("GET", "/health"), ("POST", "/processx")])
def test_other_requests_pass_through_even_when_full(method, path):
    assert call(method, path, full=True)[::3] == (200, True)


def test_with_room_in_the_queue_everything_passes_through():
    assert call("POST", "/process", full=False)[::3] == (200, True)


def test_behind_a_root_path_the_route_is_still_recognised():
    status, _headers, _body, ran = call("POST", "/process", full=True, root_path="/imgsrv")
    assert (status, ran) == (429, False)

"""Dependencies, declared once as Annotated aliases, and the service behind them.

The lifespan starts the service (the worker pool, the state store) and the jobs. An app used
without its lifespan (``TestClient(app)`` without ``with``, as the original py-image-server's
tests do) starts them on first use instead, once, and stops them when the interpreter exits.
"""
from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from ..jobs.manager import JobManager
from ..service import Service

_START_LOCK = threading.Lock()  # guards the first use of apps without a lifespan


def start_service(app: FastAPI, close_at_exit: bool = False) -> Service:
    """The app's service and jobs, started now if they are not yet (blocking: the pool warms
    up). ``close_at_exit``: no lifespan will stop them; the interpreter's exit does."""
    with _START_LOCK:
        if app.state.service is None:
            app.state.service = Service(app.state.settings)
            app.state.jobs = JobManager(app.state.service)
            if close_at_exit:
                atexit.register(app.state.service.close)
        return app.state.service


# async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request.
async def get_service(request: Request) -> Service:
    service = request.app.state.service
    if service is None:  # an app used without its lifespan
        service = await run_in_threadpool(start_service, request.app, True)
    return service


async def get_jobs(request: Request, _service: "ServiceDep") -> JobManager:  # the service first: it makes the jobs
    return request.app.state.jobs


@dataclass(frozen=True)
class Caller:
    """Who makes a request: the name of its API key (None without keys) and whether it is an admin."""

    key: str | None
    admin: bool

    @property
    def only(self) -> str | None:
        """The key whose jobs this caller sees, None for all."""
        return None if self.admin else self.key

    def sees(self, created_by: str | None) -> bool:
        return self.admin or created_by == self.key


async def get_caller(request: Request) -> Caller:
    key = request.scope.get("state", {}).get("key")
    return Caller(key, request.app.state.keys.is_admin(key))


ServiceDep = Annotated[Service, Depends(get_service)]
JobsDep = Annotated[JobManager, Depends(get_jobs)]
CallerDep = Annotated[Caller, Depends(get_caller)]

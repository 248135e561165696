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

from ..config import Settings, get_settings
from ..jobs.manager import JobManager
from ..service import Service

_START_LOCK = threading.Lock()  # guards the first use of apps without a lifespan


def start_service(app: FastAPI, settings: Settings | None) -> Service:
    """The app's service, started now if it is not yet (blocking: the pool warms up)."""
    with _START_LOCK:
        service = getattr(app.state, "service", None)
        if service is None:
            service = Service(settings or get_settings())
            app.state.service = service
            app.state.jobs = JobManager(service)
            app.state.started_on_first_use = True
            atexit.register(service.close)
        return service


# async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request.
async def get_service(request: Request) -> Service:
    service = getattr(request.app.state, "service", None)
    if service is None:
        service = await run_in_threadpool(start_service, request.app, request.app.state.settings)
    return service


async def get_jobs(request: Request, service: "ServiceDep") -> JobManager:
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

"""create_app(): the FastAPI application; its lifespan owns the worker pool and the state store."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..operations import OPERATIONS
from ..config import Settings, get_settings
from ..imaging import planar
from . import errors
from .access import LOOPBACK_NAMES, Authenticate, Keys, TrustedHosts, declare_security
from .bodies import declare_bodies
from .deps import get_service, start_service
from .schemas import JobRequest, ProcessRequest
from .middleware import BodyLimit, RequestLog, ShedLoad
from .routes import images, jobs, meta, process

log = logging.getLogger("imgsrv")

# The routes that queue images: with the worker queue full, they answer 429 before reading the body.
SHED_PATHS = frozenset({"/process", "/items/", "/render", "/compare"})


def log_jpeg_planes(s: Settings) -> None:
    """Say whether JPEG-to-JPEG crops and fills can skip the colour conversions (imaging.planar)."""
    if not s.jpeg_planes:
        log.info("JPEG planes: off (IMGSRV_JPEG_PLANES=false)")
    elif (problem := planar.unavailable()) is None:
        log.info("JPEG planes: on (libturbojpeg)")
    else:
        log.warning("JPEG planes: off, %s; JPEG crops and redactions decode to BGR (install libturbojpeg, "
                    "see the README)", problem)

DESCRIPTION = "Image processing on a pool of workers; the operations: " + ", ".join(OPERATIONS) + """.

Paths in requests are on the server, relative to the data root (`IMGSRV_DATA_ROOT`).
Operations are objects (`{"op": "blur", "kernel": 5}`) or strings (`blur=5`,
`crop=bottom:100`, `faces=action:blur,min_neighbors:3`); `GET /operations` lists them all.
"""


def allowed_hosts(s: Settings, test_client: bool) -> frozenset[str]:
    """IMGSRV_ALLOWED_HOSTS, or the loopback names and the bound address; with ``test_client``
    also ``testserver``, the host name Starlette's TestClient sends."""
    if s.allowed_hosts:
        return frozenset(h.strip().lower() for h in s.allowed_hosts.split(",") if h.strip())
    return frozenset({*LOOPBACK_NAMES, s.host.lower().strip("[]"), *(["testserver"] if test_client else [])})


def create_app(settings: Settings | None = None, *, test_client: bool = True) -> FastAPI:
    """The application; nothing is started until its lifespan runs (settings are read from
    the environment now when not given). ``test_client``: answer TestClient's ``testserver``
    host too (``from main import app``); ``python main.py`` serves without it."""
    settings = settings or get_settings()
    keys = Keys(settings.api_keys, settings.api_keys_file, settings.admin_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = await run_in_threadpool(start_service, app)
        await app.state.jobs.resume_all()
        log.info("imgsrv %s: data root %s, %s executor with %d workers", __version__, settings.data_root,
                 settings.executor, service.engine.executor.workers)
        log_jpeg_planes(settings)
        try:
            yield
        finally:
            await app.state.jobs.shutdown()
            await run_in_threadpool(service.close)
            app.state.service = None

    # Swagger UI's assets come from the fastapi-offline package and are served by the app
    # itself: /docs works with no internet access.
    app = FastAPIOffline(title="imgsrv", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                         swagger_ui_parameters={"tryItOutEnabled": False, "displayRequestDuration": True})
    app.state.settings = settings
    app.state.keys = keys
    app.state.service = None
    errors.install(app)
    # the last added runs first: RequestLog logs and counts the early 429s and 413s too
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, unlimited=frozenset({"/render"}))
    app.add_middleware(ShedLoad, paths=SHED_PATHS)
    app.add_middleware(Authenticate, keys=keys)  # before the body is read, after the Host is checked
    app.add_middleware(TrustedHosts, allowed=allowed_hosts(settings, test_client))
    app.add_middleware(RequestLog)
    generate = app.openapi

    def openapi() -> dict:
        """FastAPI's schema, with the bodies read off the event loop and the API keys declared."""
        if app.openapi_schema is None:
            schema = generate()
            declare_bodies(schema, [ProcessRequest, JobRequest])
            declare_security(schema, keys)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(process.router)
    app.include_router(images.router)
    app.include_router(jobs.router)
    app.include_router(meta.router)

    @app.get("/metrics", tags=["service"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
    async def metrics(request: Request) -> Response:
        """Requests, images processed and failed by operation, processing-time histograms, queue depth, jobs."""
        service = await get_service(request)
        body = await service.engine.offload(service.engine.metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app

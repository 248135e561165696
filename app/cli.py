"""Command line: ``python main.py [serve] [--host H --port P --workers N]`` and ``python main.py run ...``."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from pydantic import ValidationError

from .config import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(threadName)s %(name)s: %(message)s"


def _settings(overrides: dict) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        sys.exit(f"imgsrv: invalid setting: {problems}")


def _prepare(settings: Settings) -> None:
    """Before OpenCV is imported anywhere: its decoder limit follows the pixel budget."""
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(max(settings.max_pixels, 1)))


def serve(args: argparse.Namespace) -> int:
    settings = _settings({"host": args.host, "port": args.port, "workers": args.workers,
                          "executor": args.executor, "data_root": args.data_root})
    _prepare(settings)
    import uvicorn

    from .api.app import create_app

    log_config = uvicorn.config.LOGGING_CONFIG | {}
    log_config = {**log_config, "formatters": {
        "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": LOG_FORMAT, "use_colors": False},
        "access": {"()": "uvicorn.logging.AccessFormatter", "use_colors": False,
                   "fmt": "%(asctime)s %(levelname)s %(processName)s %(threadName)s access: "
                          '%(client_addr)s "%(request_line)s" %(status_code)s'}},
        "loggers": {**log_config["loggers"], "imgsrv": {"handlers": ["default"], "level": settings.log_level.upper(),
                                                        "propagate": False}}}
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=log_config,
                log_level=settings.log_level, timeout_graceful_shutdown=30)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python main.py", description="imgsrv image-processing service")
    sub = parser.add_subparsers(dest="command")

    def serve_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", help="address to listen on (default 127.0.0.1, IMGSRV_HOST)")
        p.add_argument("--port", type=int, help="port (default 8888, IMGSRV_PORT)")
        p.add_argument("--workers", type=int, help="worker pool size (default: CPU cores, IMGSRV_WORKERS)")
        p.add_argument("--executor", help="process, thread or dask://HOST:PORT (IMGSRV_EXECUTOR)")
        p.add_argument("--data-root", help="folder every request path resolves under (IMGSRV_DATA_ROOT)")

    serve_options(parser)
    serve_options(sub.add_parser("serve", help="serve the HTTP API (the default)"))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    return serve(args)

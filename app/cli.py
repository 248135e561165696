"""Command line: ``python main.py [serve] [--host H --port P --workers N]`` and ``python main.py run ...``."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys

from pydantic import ValidationError

from .config import Settings
from .tasks import Overwrite

LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(threadName)s %(name)s: %(message)s"


class UsageError(Exception):
    """Invalid arguments or settings: the message is shown and the exit code is 2."""


def _settings(overrides: dict) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise UsageError(f"invalid setting: {problems}") from None


def _prepare(settings: Settings) -> None:
    """Before OpenCV is imported anywhere in this process: its decoder limit follows the pixel budget."""
    from .render.setup import limit_decoder

    limit_decoder(settings.max_pixels)


def serve(args: argparse.Namespace) -> int:
    settings = _settings({"host": args.host, "port": args.port, "workers": args.workers,
                          "executor": args.executor, "data_root": args.data_root,
                          "limit_concurrency": args.limit_concurrency, "timeout_keep_alive": args.timeout_keep_alive,
                          "graceful_timeout": args.graceful_timeout})
    _prepare(settings)
    import uvicorn

    from .api.access import KeysError, is_loopback
    from .api.app import create_app

    try:
        app = create_app(settings, test_client=False)
    except KeysError as exc:
        raise UsageError(str(exc)) from None
    keys = app.state.keys
    if not keys.enabled and not is_loopback(settings.host) and not settings.allow_anonymous:
        raise UsageError(f"--host {settings.host} would serve other machines with no access control: set "
                         "IMGSRV_API_KEYS (name:secret,...) or IMGSRV_API_KEYS_FILE, or IMGSRV_ALLOW_ANONYMOUS=true "
                         "to serve them anyway")

    log_config = uvicorn.config.LOGGING_CONFIG | {}
    log_config = {**log_config, "formatters": {
        "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": LOG_FORMAT, "use_colors": False},
        "access": {"()": "uvicorn.logging.AccessFormatter", "use_colors": False,
                   "fmt": "%(asctime)s %(levelname)s %(processName)s %(threadName)s access: "
                          '%(client_addr)s "%(request_line)s" %(status_code)s'}},
        "loggers": {**log_config["loggers"], "imgsrv": {"handlers": ["default"], "level": settings.log_level.upper(),
                                                        "propagate": False}}}
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler
    # it found: make that a clean exit (status 0) rather than death by signal.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # keys rotate without a restart: kill -HUP re-reads the file (and without one, changes nothing)
    signal.signal(signal.SIGHUP, lambda *_: _reload_keys(keys))
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=log_config,
                log_level=settings.log_level, access_log=False, limit_concurrency=settings.limit_concurrency,
                timeout_keep_alive=settings.timeout_keep_alive, timeout_graceful_shutdown=settings.graceful_timeout)
    return 0


def _reload_keys(keys) -> None:
    log = logging.getLogger("imgsrv.access")
    if keys.file is None:
        log.info("SIGHUP: no IMGSRV_API_KEYS_FILE to re-read")
        return
    try:
        log.info("API keys re-read on SIGHUP: %d in force", keys.reload())
    except ValueError as exc:  # a broken file: the keys in force stay
        log.error("API keys not re-read, the previous ones stay in force: %s", exc)


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} GB"  # pragma: no cover


def run(args: argparse.Namespace) -> int:
    """Process a folder on this machine, with the engine the server uses, and a progress bar."""
    import asyncio
    import time

    output_format = _format(args.format)
    source = os.path.abspath(args.source)
    output_dir = os.path.abspath(args.output_dir)
    # The command line acts with the user's own rights: paths are not confined unless IMGSRV_DATA_ROOT says so.
    # Its state (the manifest, the job record) is never in the output folder: IMGSRV_STATE_DIR, by default
    # .imgsrv under the data root, which defaults to the current folder.
    state_dir = args.state_dir or os.environ.get("IMGSRV_STATE_DIR") or os.path.join(
        os.environ.get("IMGSRV_DATA_ROOT") or os.getcwd(), ".imgsrv")
    settings = _settings({"workers": args.workers, "executor": args.executor, "state_dir": state_dir,
                          "data_root": os.environ.get("IMGSRV_DATA_ROOT") or "/"})
    _prepare(settings)
    from tqdm import tqdm

    from .errors import RequestError
    from .jobs.manager import submit_job
    from .jobs.runner import JobRunner
    from .operations import parse_operation
    from .service import Service
    from .tasks import Status, compression_ratio

    operations = []
    for text in args.op:
        try:
            operations.append(parse_operation(text))
        except ValidationError as exc:
            detail = "; ".join((".".join(str(p) for p in e["loc"][1:]) + ": " if len(e["loc"]) > 1 else "")
                               + e["msg"].removeprefix("Value error, ") for e in exc.errors())
            print(f"imgsrv: --op {text!r}: {detail}", file=sys.stderr)
            return 2

    # Pool processes inherit "ignore SIGINT": Ctrl-C reaches only this process, which stops cleanly.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    interrupted = False
    try:
        service = Service(settings)
    except RuntimeError as exc:  # an executor that cannot start (an unreachable Dask cluster, ...)
        signal.signal(signal.SIGINT, previous)
        print(f"imgsrv: {exc}", file=sys.stderr)
        return 2
    # From here until the workers are stopped, Ctrl-C asks the job to stop (while the pool
    # starts, above, it is ignored). A plain handler rather than the loop's own: asyncio puts
    # Python's handler back when its loop closes, and a Ctrl-C after that would break off the
    # shutdown with a traceback.
    running: list = []  # (loop, stop) while the job runs
    pressed_early = False  # Ctrl-C before the job started: it stops as soon as it starts

    def on_sigint(_signum, _frame) -> None:
        nonlocal pressed_early
        if running:
            loop, stop = running[0]
            with contextlib.suppress(RuntimeError):  # the loop has closed: already on the way out
                loop.call_soon_threadsafe(stop)
        else:
            pressed_early = True

    signal.signal(signal.SIGINT, on_sigint)
    try:
        try:
            job_id = submit_job(service, operations=operations, metadata=args.metadata,
                                skip_existing=not args.no_skip, overwrite=Overwrite(args.overwrite),
                                source={"dir": source, "pattern": args.pattern, "recursive": args.recursive},
                                output_dir=output_dir, output_format=output_format)
        except RequestError as exc:
            print(f"imgsrv: {exc.field + ': ' if exc.field else ''}{exc.message}", file=sys.stderr)
            return 2
        bar = tqdm(unit="img", dynamic_ncols=True, disable=args.quiet, smoothing=0.1)
        counts = dict.fromkeys(Status, 0)

        def on_result(p) -> None:
            if p.total is not None and bar.total != p.total:
                bar.total = p.total
                bar.refresh()
            counts[p.report.status] += 1
            bar.set_postfix(ok=counts[Status.OK], failed=counts[Status.ERROR], skipped=counts[Status.SKIPPED],
                            refresh=False)
            bar.update(1)

        async def go():
            runner = JobRunner(service, job_id, on_result)

            def stop() -> None:
                nonlocal interrupted
                if not running:  # the job ended before this Ctrl-C was handled
                    return
                if not interrupted:
                    interrupted = True
                    bar.write("imgsrv: interrupted; finishing the images in flight (run again to resume)")
                runner.cancel()

            running.append((asyncio.get_running_loop(), stop))
            if pressed_early:
                stop()
            try:
                return await runner.run()
            finally:
                running.clear()  # a Ctrl-C after the last image does not make a finished job "interrupted"

        start = time.perf_counter()
        job = asyncio.run(go())
        elapsed = time.perf_counter() - start
        bar.close()
        _n, failures = service.store.results(job_id, 0, 10, Status.ERROR) if job.failed else (0, [])
        if not interrupted:
            # the run's record is done with: its summary is printed, and what it wrote stays in the
            # manifest and the record of written files, which the next run resumes from
            service.store.delete_job(job_id)
    finally:
        service.close()
        # Once interrupted, further Ctrl-C are ignored: the process is on its way out (and Python
        # resets its own handlers as it exits, which would let one kill it).
        signal.signal(signal.SIGINT, signal.SIG_IGN if interrupted else previous)

    ratio = compression_ratio(job.output_bytes, job.input_bytes)
    ratio = f"{ratio:.3f}" if ratio is not None else "n/a"
    print(f"images {job.done} of {job.total}: {job.succeeded} succeeded, {job.failed} failed, {job.skipped} skipped")
    print(f"input {_human(job.input_bytes)}, output {_human(job.output_bytes)}, compression ratio {ratio}")
    print(f"{job.done / elapsed if elapsed else 0:.1f} images/s in {elapsed:.1f} s")
    for row in failures:
        print(f"  failed: {row.input}: {row.error_code}: {row.error_message}", file=sys.stderr)
    if job.failed > len(failures):
        print(f"  ... and {job.failed - len(failures)} more", file=sys.stderr)
    if interrupted:
        return 130
    return 1 if job.failed else 0


def _format(value: str | None) -> str | None:
    from .formats import Format, parse_format

    if value is None:
        return None
    fmt = parse_format(value)
    if fmt is None:
        *names, last = Format
        raise UsageError(f"--format must be {', '.join(names)} or {last}, not {value!r}")
    return fmt


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python main.py", description="imgsrv image-processing service")
    sub = parser.add_subparsers(dest="command")

    def serve_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", help="address to listen on (default 127.0.0.1, IMGSRV_HOST)")
        p.add_argument("--port", type=int, help="port (default 8888, IMGSRV_PORT)")
        p.add_argument("--workers", type=int, help="worker pool size (default: CPU cores, IMGSRV_WORKERS)")
        p.add_argument("--executor", help="process, thread or dask://HOST:PORT (IMGSRV_EXECUTOR)")
        p.add_argument("--data-root", help="folder every request path resolves under (IMGSRV_DATA_ROOT)")
        p.add_argument("--limit-concurrency", type=int,
                       help="connections at once; beyond it uvicorn answers 503 at once (IMGSRV_LIMIT_CONCURRENCY)")
        p.add_argument("--timeout-keep-alive", type=float,
                       help="seconds an idle keep-alive connection stays open (default 5, IMGSRV_TIMEOUT_KEEP_ALIVE)")
        p.add_argument("--graceful-timeout", type=float,
                       help="seconds requests in flight get to finish at SIGTERM (default 30, IMGSRV_GRACEFUL_TIMEOUT)")

    serve_options(parser)
    serve_options(sub.add_parser("serve", help="serve the HTTP API (the default)"))

    r = sub.add_parser("run", help="process a folder on this machine, without a server",
                       description="Process every image of a folder and write the results under --output-dir, "
                                   "mirroring sub-folders. Resumable: images whose outputs are up to date are "
                                   "skipped. Exit code 0 when every image succeeded or was skipped, 1 when any "
                                   "failed, 2 for invalid arguments, 130 when interrupted.")
    r.add_argument("--source", required=True, help="folder of input images")
    r.add_argument("--pattern", default="*", help="glob on file names (default *)")
    r.add_argument("--recursive", action="store_true", help="also process sub-folders")
    r.add_argument("--output-dir", required=True, help="folder for the results")
    r.add_argument("--op", action="append", default=[], metavar="OPERATION",
                   help="an operation in string form, e.g. crop=bottom:100 (repeat, applied in order)")
    r.add_argument("--format", help="output format: jpeg, png, webp, tiff, bmp (default: the input's)")
    r.add_argument("--workers", type=int, help="worker pool size (default: CPU cores)")
    r.add_argument("--executor", help="process (default), thread or dask://HOST:PORT")
    r.add_argument("--metadata", choices=("keep", "strip"), default="keep", help="EXIF of JPEG inputs")
    r.add_argument("--no-skip", action="store_true", help="process every image even when its outputs are up to date")
    r.add_argument("--overwrite", choices=[o.value for o in Overwrite], default=Overwrite.OWN.value,
                   help="a file already at an output path: own (default) replaces only a file imgsrv wrote and "
                        "that is unchanged since, never replaces none, always replaces any")
    r.add_argument("--state-dir", help="where the manifest and the job record live (default IMGSRV_STATE_DIR, "
                                       "or .imgsrv in the data root: IMGSRV_DATA_ROOT or the current folder)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
            return run(args)
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
        return serve(args)
    except UsageError as exc:
        print(f"imgsrv: {exc}", file=sys.stderr)
        return 2

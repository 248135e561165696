"""Pool backends behind one interface: ``submit(task) -> Future[Report]`` that never fails.
Every backend runs ``app.render.worker.execute`` after ``app.render.setup.init_worker``.

- ``process`` (default): a pebble ProcessPool. A worker that dies (segfault, OOM kill) fails
  only the task it held, with ``worker_crashed``; pebble starts a new worker and the pool
  keeps serving. A task over the time limit is ``timeout`` and its worker is replaced.
- ``thread``: a thread pool in the server process (OpenCV releases the GIL); no crash
  isolation, and a task over the time limit is reported but cannot be stopped.
- ``dask://HOST:PORT``: the workers of a Dask cluster (app.execute.dask).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from concurrent.futures import TimeoutError as FutureTimeout

from pebble import ProcessExpired, ProcessPool

from ..errors import ErrorCode
from ..files import clean_temp_files
from ..render.setup import init_worker, limit_decoder
from ..render.worker import execute
from ..tasks import CompareTask, ImageTask, Ping, Report, Task, written_paths

log = logging.getLogger("imgsrv.executor")


def with_own_temp_tag(task: Task) -> Task:
    """The task with a temporary-file tag of its own, after its job's (if any): what a worker
    killed mid-write leaves behind names this task alone, so it can be removed at once."""
    if isinstance(task, (ImageTask, CompareTask)):
        return replace(task, temp_tag=f"{task.temp_tag}{secrets.token_hex(4)}-")
    return task


def remove_left_behind(task: Task) -> None:
    """Remove the temporary files of a task whose worker was killed (crash, time limit, lost):
    it died before it could. Only this task's (its tag); nothing else in the folders."""
    folders = sorted({os.path.dirname(path) for path in written_paths(task)})
    if folders and getattr(task, "temp_tag", ""):
        removed = clean_temp_files(folders, task.temp_tag)
        if removed:
            log.info("removed %d temporary file(s) a killed worker left", removed)


class WorkerLost(Exception):
    """The worker running a task died (raised by backends that detect it themselves)."""


class Executor:
    """A pool of workers running tasks; ``submit`` never fails, every outcome is a report."""

    kind = "base"

    def __init__(self, workers: int, task_timeout: float | None = None, max_pixels: int = 100_000_000):
        self.workers = workers
        self.max_pixels = max_pixels  # the decoder limit init_worker sets
        self.task_timeout = task_timeout
        self.crashes = 0  # workers lost (crash or time limit) and replaced
        self._lock = threading.Lock()

    def submit(self, task: Task) -> "Future[Report]":
        """Run ``task.run()`` on a worker; the future's result is the task's report, failures included."""
        out: Future = Future()
        task = with_own_temp_tag(task)
        try:
            inner = self._submit(task)
        except Exception as exc:  # the pool itself refused (shutting down, ...)
            out.set_result(Report.failure(ErrorCode.WORKER_CRASHED, f"the worker pool is unavailable: {exc}"))
            return out
        inner.add_done_callback(lambda f: out.set_result(self._report(task, f)))
        return out

    def _report(self, task: Task, fut: Future):
        try:
            return fut.result()
        except FutureTimeout:
            self._count_crash()
            remove_left_behind(task)
            return Report.failure(ErrorCode.TIMEOUT, f"the image took longer than {self.task_timeout:g} s; "
                                                     "its worker was replaced")
        except ProcessExpired as exc:
            self._count_crash()
            log.warning("a worker died while processing an image (exit code %s); a new one takes its place",
                        exc.exitcode)
            remove_left_behind(task)
            return Report.failure(ErrorCode.WORKER_CRASHED,
                                  f"the worker processing this image died (exit code {exc.exitcode})")
        except WorkerLost as exc:
            self._count_crash()
            log.warning("%s", exc)
            remove_left_behind(task)
            return Report.failure(ErrorCode.WORKER_CRASHED, str(exc))
        except Exception as exc:  # a bug in the worker, or the pool broke
            log.exception("a task failed unexpectedly")
            return Report.failure(ErrorCode.WORKER_CRASHED, f"the worker failed: {type(exc).__name__}: {exc}")

    def warm_up(self) -> None:
        """Start every worker now rather than at the first image."""
        for fut in [self.submit(Ping()) for _ in range(self.workers)]:
            fut.result(timeout=120)

    def _count_crash(self) -> None:
        with self._lock:
            self.crashes += 1

    def _submit(self, task: Task) -> Future:  # pragma: no cover - abstract
        raise NotImplementedError

    def shutdown(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class ProcessExecutor(Executor):
    kind = "process"

    def __init__(self, workers: int, task_timeout: float | None = None, max_pixels: int = 100_000_000):
        super().__init__(workers, task_timeout, max_pixels)
        # Workers are forked from a clean fork server, not from the server process with its
        # event loop and threads; the fork server preloads the worker code (and OpenCV) once,
        # so the decoder's limit must be in its environment when it starts.
        limit_decoder(max_pixels)
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["app.render.worker"])
        self._pool = ProcessPool(max_workers=workers, initializer=init_worker, initargs=(max_pixels, True),
                                 context=ctx)
        self.ready: set[int] = set()  # the workers (pids) that answered in the last complete wait
        self._crashes_when_ready = 0

    def _submit(self, task: Task) -> Future:
        return self._pool.schedule(execute, args=(task,), timeout=self.task_timeout)

    def warm_up(self, timeout: float = 120.0) -> None:
        """Start every worker now, and return once each one has answered."""
        problem = self._wait_for_every_worker(timeout)
        if problem is not None:
            self._pool.stop()
            self._pool.join()
            raise RuntimeError(f"the worker pool could not start: {problem}")

    def _wait_for_every_worker(self, timeout: float) -> str | None:
        """Ping until every worker has answered once; the problem if they did not, else None.

        One fast worker can answer every ping while another is still starting (at start-up, or
        a replacement for a worker that crashed or timed out). pebble's shutdown unlinks the
        channel locks before it stops the workers, so a worker still unpickling those locks
        dies printing a traceback. Waiting for all of them first narrows that to a worker
        replaced during the shutdown itself.
        """
        deadline = time.monotonic() + timeout
        ready: set[int] = set()
        while True:
            left = deadline - time.monotonic()
            futures = [self.submit(Ping()) for _ in range(self.workers)]
            done, _ = wait(futures, timeout=max(left, 0))
            answers = [f.result() for f in done]
            broken = [a for a in answers if not isinstance(a, int)]  # a failure Report instead of a pid
            if broken:
                return f"{broken[0].error_code}: {broken[0].error_message}"
            ready.update(answers)
            if len(ready) >= self.workers:
                self.ready, self._crashes_when_ready = ready, self.crashes
                return None
            if time.monotonic() >= deadline:
                return f"only {len(ready)} of {self.workers} workers answered within {timeout:g} s"
            time.sleep(0.05)

    def shutdown(self) -> None:
        if self.crashes != self._crashes_when_ready:  # a replacement worker may still be starting
            problem = self._wait_for_every_worker(timeout=10)
            if problem:
                log.warning("shutting the pool down without waiting for every worker: %s", problem)
        self._pool.close()
        try:
            self._pool.join(timeout=30)
        except TimeoutError:
            log.warning("stopping the workers: a task was still running 30 s after the pool was closed")
            self._pool.stop()
            self._pool.join()


class ThreadExecutor(Executor):
    kind = "thread"

    def __init__(self, workers: int, task_timeout: float | None = None, max_pixels: int = 100_000_000):
        super().__init__(workers, task_timeout, max_pixels)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imgsrv-worker",
                                        initializer=init_worker, initargs=(max_pixels,))

    def _submit(self, task: Task) -> Future:
        return self._pool.submit(execute, task)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

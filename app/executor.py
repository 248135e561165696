"""Pool backends behind one interface: ``submit(task) -> Future[Report]`` that never fails.

- ``process`` (default): a pebble ProcessPool. A worker that dies (segfault, OOM kill) fails
  only the task it held, with ``worker_crashed``; pebble starts a new worker and the pool
  keeps serving. A task over the time limit is ``timeout`` and its worker is replaced.
- ``thread``: a thread pool in the server process (OpenCV releases the GIL); no crash
  isolation, and a task over the time limit is reported but cannot be stopped.
"""
from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout

from pebble import ProcessExpired, ProcessPool

from .worker import Ping, Report, Task, execute, init_worker

log = logging.getLogger("imgsrv.executor")


class WorkerLost(Exception):
    """The worker running a task died (raised by backends that detect it themselves)."""


class Executor:
    """A pool of workers running tasks; ``submit`` never fails, every outcome is a report."""

    kind = "base"

    def __init__(self, workers: int, task_timeout: float | None = None):
        self.workers = workers
        self.task_timeout = task_timeout
        self.crashes = 0  # workers lost (crash or time limit) and replaced
        self._lock = threading.Lock()

    def submit(self, task: Task) -> "Future[Report]":
        """Run ``task.run()`` on a worker; the future's result is the task's report, failures included."""
        out: Future = Future()
        try:
            inner = self._submit(task)
        except Exception as exc:  # the pool itself refused (shutting down, ...)
            out.set_result(task.failed("worker_crashed", f"the worker pool is unavailable: {exc}"))
            return out
        inner.add_done_callback(lambda f: out.set_result(self._report(task, f)))
        return out

    def _report(self, task, fut: Future):
        try:
            return fut.result()
        except FutureTimeout:
            self._count_crash()
            return task.failed("timeout", f"the image took longer than {self.task_timeout:g} s; "
                                          "its worker was replaced")
        except ProcessExpired as exc:
            self._count_crash()
            log.warning("a worker died while processing an image (exit code %s); a new one takes its place",
                        exc.exitcode)
            return task.failed("worker_crashed", f"the worker processing this image died (exit code {exc.exitcode})")
        except WorkerLost as exc:
            self._count_crash()
            log.warning("%s", exc)
            return task.failed("worker_crashed", str(exc))
        except Exception as exc:  # a bug in the worker, or the pool broke
            log.exception("a task failed unexpectedly")
            return task.failed("worker_crashed", f"the worker failed: {type(exc).__name__}: {exc}")

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

    def __init__(self, workers: int, task_timeout: float | None = None):
        super().__init__(workers, task_timeout)
        # Workers are forked from a clean fork server, not from the server process with its
        # event loop and threads; the server preloads the worker code once.
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["app.worker"])
        self._pool = ProcessPool(max_workers=workers, initializer=init_worker, context=ctx)
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
            broken = [a for a in answers if not isinstance(a, int)]
            if broken:
                return broken[0]
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

    def __init__(self, workers: int, task_timeout: float | None = None):
        super().__init__(workers, task_timeout)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imgsrv-worker",
                                        initializer=init_worker)

    def _submit(self, task: Task) -> Future:
        return self._pool.submit(execute, task)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


def make_executor(kind: str, workers: int, task_timeout: float | None = None, data_root: str = "/") -> Executor:
    if kind == "process":
        return ProcessExecutor(workers, task_timeout)
    if kind == "thread":
        return ThreadExecutor(workers, task_timeout)
    if kind.startswith("dask://"):
        from .dask_executor import DaskExecutor  # optional dependency

        return DaskExecutor(kind, workers, task_timeout, data_root)
    raise ValueError(f"unknown executor {kind!r}")

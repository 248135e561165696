"""The engine: the only door to the worker pool, for requests, jobs and the CLI alike.

It admits work (the queue limit behind ``429``), submits tasks, offloads the blocking calls of
the event loop (file-system look-ups, SQLite) to its own threads, and counts every finished
image in the metrics.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..config import Settings
from ..errors import QueueFull
from ..metrics import Metrics
from ..pipeline import Pipeline
from ..tasks import Report, Task
from . import Executor, make_executor

T = TypeVar("T")


class Engine:
    def __init__(self, settings: Settings, metrics: Metrics | None = None, executor: Executor | None = None):
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.executor = executor or make_executor(settings.executor, settings.workers, settings.task_timeout,
                                                  str(settings.data_root), settings.max_pixels)
        self.executor.warm_up()
        self._pending = 0  # admitted images not finished
        self._lock = threading.Lock()
        # Blocking work of the event loop: one hop to this pool costs a fraction of anyio's
        # run_in_threadpool, which matters at hundreds of requests/s.
        self._io = ThreadPoolExecutor(max_workers=16, thread_name_prefix="imgsrv-io")

    @property
    def pending(self) -> int:
        return self._pending

    async def offload(self, fn: Callable[..., T], *args) -> T:
        """Run a blocking call (file-system look-ups, SQLite) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    # -- admission --------------------------------------------------------------------------

    def refusal(self, count: int = 1) -> QueueFull | None:
        """The 429 that admitting ``count`` more images would get now, or None if they fit."""
        if self._pending + count - self.executor.workers <= self.settings.max_queue:
            return None
        return QueueFull(f"{self._pending} images are in the queue; at most {self.settings.max_queue} "
                         f"may wait for a worker", retry_after=self.retry_after())

    def admit(self, count: int) -> None:
        """Reserve room for ``count`` images or refuse with 429 when too many would wait."""
        with self._lock:
            refused = self.refusal(count)
            if refused is not None:
                raise refused
            self._pending += count

    def release(self, count: int) -> None:
        with self._lock:
            self._pending -= count

    def retry_after(self) -> int:
        """Seconds after which a refused client may try again: a rough drain time of the queue."""
        return max(1, min(60, self._pending // max(1, self.executor.workers * 20)))

    # -- submission -------------------------------------------------------------------------

    def observe(self, report: Report, pipeline: Pipeline | None) -> None:
        """Count one finished image in the metrics."""
        names = [op.op for op in pipeline.operations] if pipeline is not None else []  # type: ignore[attr-defined]
        self.metrics.observe_image(report.status, names, report.timings, report.error_code)

    def submit(self, task: Task, *, admitted: bool, pipeline: Pipeline | None = None,
               observe: bool = True) -> "asyncio.Future[Report]":
        """Run ``task`` on the pool; its report. An ``admitted`` task's room is released as it
        finishes; with ``observe`` its image is counted then (jobs count theirs once recorded)."""
        fut = self.executor.submit(task)

        def done(f) -> None:
            if admitted:
                self.release(1)  # room frees up image by image
            if observe:
                self.observe(f.result(), pipeline)

        fut.add_done_callback(done)
        return asyncio.wrap_future(fut)

    async def run(self, tasks: Sequence[Task], pipeline: Pipeline | None) -> list[Report]:
        """Run admitted tasks (``admit`` first); their reports in order."""
        return list(await asyncio.gather(*(self.submit(t, admitted=True, pipeline=pipeline) for t in tasks)))

    async def run_one(self, task: Task, pipeline: Pipeline | None = None, observe: bool = True) -> Report:
        """Admit and run one task (an upload, a comparison); its report."""
        self.admit(1)
        return await self.submit(task, admitted=True, pipeline=pipeline, observe=observe)

    def close(self) -> None:
        self._io.shutdown(wait=True)
        self.executor.shutdown()

"""The engine: the only door to the worker pool, for requests, jobs and the CLI alike.

It admits work (the queue limit behind ``429``), submits tasks, offloads the blocking calls of
the event loop (file-system look-ups, SQLite) to its own threads, and counts every finished
image in the metrics.

Requests and jobs share the pool. A request's images are admitted at once (or refused with
429); a job's wait for room: jobs together keep at most twice as many images in the pool as it
has workers, less the requests' images in flight, so a request waits behind a few job images,
never behind a whole job; and each running job gets its share of that room, so a small job
is not held behind a big one.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
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
        self._pending = 0  # admitted images (requests) not finished
        self._background = 0  # jobs' images in the pool
        self._upload_bytes = 0  # uploads held in memory (/render)
        self._by_job: collections.Counter[str] = collections.Counter()  # the same, by job
        self._asking: collections.Counter[str] = collections.Counter()  # jobs waiting for room
        self._lock = threading.Lock()
        self._room: asyncio.Event | None = None  # set when an image finishes: jobs may submit again
        self._room_loop: asyncio.AbstractEventLoop | None = None
        # Blocking work of the event loop: one hop to this pool costs a fraction of anyio's
        # run_in_threadpool, which matters at hundreds of requests/s.
        self._io = ThreadPoolExecutor(max_workers=16, thread_name_prefix="imgsrv-io")

    @property
    def pending(self) -> int:
        """Images submitted to the pool and not finished: requests' and jobs' (the queue depth)."""
        return self._pending + self._background

    async def offload(self, fn: Callable[..., T], *args) -> T:
        """Run a blocking call (file-system look-ups, SQLite) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    # -- admission --------------------------------------------------------------------------

    def refusal(self, count: int = 1) -> QueueFull | None:
        """The 429 that admitting ``count`` more images would get now, or None if they fit."""
        queued = self.pending
        if queued + count - self.executor.workers <= self.settings.max_queue:
            return None
        return QueueFull(f"{queued} images are in the queue; at most {self.settings.max_queue} "
                         f"may wait for a worker", retry_after=self.retry_after())

    def admit(self, count: int) -> None:
        """Reserve room for ``count`` images or refuse with 429 when too many would wait."""
        with self._lock:
            refused = self.refusal(count)
            if refused is not None:
                raise refused
            self._pending += count

    def hold_upload(self, size: int) -> None:
        """Reserve room for an upload of ``size`` bytes held in memory, or refuse with 429."""
        with self._lock:
            limit = self.settings.max_upload_queue_bytes
            if self._upload_bytes and self._upload_bytes + size > limit:
                raise QueueFull(f"{self._upload_bytes} bytes of uploads are held already; at most {limit} "
                                f"(IMGSRV_MAX_UPLOAD_QUEUE_BYTES)", retry_after=self.retry_after())
            self._upload_bytes += size

    def drop_upload(self, size: int) -> None:
        with self._lock:
            self._upload_bytes -= size

    def release(self, count: int) -> None:
        with self._lock:
            self._pending -= count
        self._wake()

    def _wake(self) -> None:
        """Tell the jobs waiting for room (from any thread) that an image finished."""
        loop, room = self._room_loop, self._room
        if loop is not None and room is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(room.set)

    def _background_room(self, job: str) -> bool:
        room = max(1, 2 * self.executor.workers - self._pending)
        jobs = len(set(self._by_job) | set(self._asking))
        return self._background < room and self._by_job[job] < max(1, room // max(1, jobs))

    def retry_after(self) -> int:
        """Seconds after which a refused client may try again: a rough drain time of the queue."""
        return max(1, min(60, self.pending // max(1, self.executor.workers * 20)))

    # -- submission -------------------------------------------------------------------------

    def observe(self, report: Report, pipeline: Pipeline | None) -> None:
        """Count one finished image in the metrics."""
        names = [op.op for op in pipeline.operations] if pipeline is not None else []  # type: ignore[attr-defined]
        self.metrics.observe_image(report.status, names, report.timings, report.error_code)

    def submit(self, task: Task, *, pipeline: Pipeline | None = None, observe: bool = True) -> "asyncio.Future[Report]":
        """Run an admitted ``task`` (``admit`` first) on the pool; its report. Its room is released
        as it finishes; with ``observe`` its image is counted then (jobs count theirs once recorded)."""
        fut = self.executor.submit(task)

        def done(f) -> None:
            self.release(1)  # room frees up image by image
            if observe:
                self.observe(f.result(), pipeline)

        fut.add_done_callback(done)
        return asyncio.wrap_future(fut)

    async def submit_background(self, task: Task, job: str, stopped: Callable[[], bool]
                                ) -> "asyncio.Future[Report] | None":
        """Submit ``task`` of ``job`` once there is room (see the module's docstring); None when
        ``stopped()`` turns true while it waits. Counted in the metrics by the job, once recorded."""
        loop = asyncio.get_running_loop()
        if self._room_loop is not loop:
            self._room, self._room_loop = asyncio.Event(), loop
        room = self._room
        assert room is not None
        while True:
            room.clear()  # before the check: an image finishing after it sets it again
            with self._lock:
                if self._background_room(job):
                    self._background += 1
                    self._by_job[job] += 1
                    break
                self._asking[job] += 1
            try:
                if stopped():
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(room.wait(), 0.5)
            finally:
                with self._lock:
                    self._asking[job] -= 1
                    if not self._asking[job]:
                        del self._asking[job]
        fut = self.executor.submit(task)

        def done(_f) -> None:
            with self._lock:
                self._background -= 1
                self._by_job[job] -= 1
                if not self._by_job[job]:
                    del self._by_job[job]
            self._wake()

        fut.add_done_callback(done)
        return asyncio.wrap_future(fut)

    async def run(self, tasks: Sequence[Task], pipeline: Pipeline | None) -> list[Report]:
        """Run admitted tasks (``admit`` first); their reports in order."""
        return list(await asyncio.gather(*(self.submit(t, pipeline=pipeline) for t in tasks)))

    async def run_one(self, task: Task, pipeline: Pipeline | None = None, observe: bool = True) -> Report:
        """Admit and run one task (an upload, a comparison); its report."""
        self.admit(1)
        return await self.submit(task, pipeline=pipeline, observe=observe)

    def close(self) -> None:
        self._io.shutdown(wait=True)
        self.executor.shutdown()

"""The engine the API, the job runner and the CLI share: an executor, the manifest, and the
admission limit of the worker queue."""
from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .config import Settings
from .errors import QueueFull
from .executor import Executor, make_executor
from .metrics import Metrics
from .pipeline import Pipeline
from .planning import PlannedImage
from .store import Store
from .worker import Report

T = TypeVar("T")


class Engine:
    def __init__(self, settings: Settings, executor: Executor | None = None, store: Store | None = None):
        self.settings = settings
        self.executor = executor or make_executor(settings.executor, settings.workers, settings.task_timeout,
                                                  str(settings.data_root))
        self.store = store or Store(settings.state_dir)  # type: ignore[arg-type]
        self.executor.warm_up()
        self._pending = 0  # images submitted by /process and not finished
        self._lock = threading.Lock()
        self.metrics = Metrics()
        self.metrics.bind(lambda: self._pending, lambda: self.executor.crashes, self.store.jobs_by_status)
        # Blocking work of the request handlers (path look-ups, the manifest): one hop to this pool
        # costs a fraction of anyio's run_in_threadpool, which matters at hundreds of requests/s.
        self._io = ThreadPoolExecutor(max_workers=16, thread_name_prefix="imgsrv-io")

    def observe(self, report, pipeline: Pipeline | None) -> None:
        """Count one finished image in the metrics."""
        names = [op.op for op in pipeline.operations] if pipeline is not None else []  # type: ignore[attr-defined]
        self.metrics.observe_image(report.status, names, report.timings, report.error_code)

    @property
    def pending(self) -> int:
        return self._pending

    async def offload(self, fn: Callable[..., T], *args) -> T:
        """Run a blocking call (file-system look-ups, SQLite) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

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

    def with_expectations(self, planned: Sequence[PlannedImage], skip_existing: bool) -> None:
        """Attach the manifest's record to tasks whose outputs may be up to date (blocking: run in a thread)."""
        if not skip_existing or not planned:
            return
        digest = planned[0].task.pipeline.digest()
        for p in planned:
            found = self.store.expected(p.task.outputs, digest)
            if found is not None:
                p.task = dataclasses.replace(p.task, expected=found)

    def record(self, planned: Sequence[PlannedImage], reports: Sequence[Report]) -> None:
        """Remember what the succeeded images wrote (blocking: run in a thread)."""
        for p, rep in zip(planned, reports):
            if rep.status == "ok" and rep.input_hash:
                self.store.record(rep.input_hash, p.task.pipeline.digest(), rep.outputs)

    async def run(self, planned: Sequence[PlannedImage]) -> list[Report]:
        """Run admitted images on the pool; results in request order. Each image's admission
        is released as it finishes."""
        futures = [self._submit(p.task, p.task.pipeline) for p in planned]
        return list(await asyncio.gather(*futures))

    def _submit(self, task, pipeline: Pipeline | None, observe: bool = True) -> asyncio.Future:
        fut = self.executor.submit(task)

        def done(f) -> None:
            self.release(1)  # room frees up image by image
            if observe:
                self.observe(f.result(), pipeline)

        fut.add_done_callback(done)
        return asyncio.wrap_future(fut)

    async def run_one(self, task, pipeline: Pipeline | None = None, observe: bool = True):
        """Admit and run one task (render, compare); its report."""
        self.admit(1)
        return await self._submit(task, pipeline, observe)

    def close(self) -> None:
        self._io.shutdown(wait=True)
        self.executor.shutdown()
        self.store.close()

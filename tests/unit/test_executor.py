"""The process pool's start-up: the engine is handed over only once every worker answers.

A pool shut down while one of its workers is still starting (the command line stopping at an
invalid argument right after start-up) makes that worker die with a traceback on stderr.
"""
from __future__ import annotations

import os
from concurrent.futures import Future
from typing import Literal

import pytest

from app.execute.backends import Executor, ProcessExecutor
from app.operations import Operation
from app.pipeline import Pipeline
from app.tasks import ImageTask
from tests import images


def test_warm_up_returns_once_every_worker_has_answered():
    executor = ProcessExecutor(workers=2)
    try:
        executor.warm_up()
        assert len(executor.ready) == 2, executor.ready
        assert os.getpid() not in executor.ready
        for pid in executor.ready:
            os.kill(pid, 0)  # alive: raises ProcessLookupError otherwise
    finally:
        executor.shutdown()


class _FakeExecutor(ProcessExecutor):
    """Two workers behind a fake pool. Ping ``n`` gets ``answers(n)``: a pid, or an exception."""

    def __init__(self, answers) -> None:
        Executor.__init__(self, workers=2)
        self.answers, self.pings = answers, 0
        self.ready, self._crashes_when_ready = set(), 0
        self.calls: list[str] = []
        self.join_times_out = False

    def _submit(self, task) -> Future:
        answer = self.answers(self.pings)
        self.pings += 1
        fut: Future = Future()
        if isinstance(answer, BaseException):
            fut.set_exception(answer)
        else:
            fut.set_result(answer)
        return fut

    @property
    def _pool(self):
        outer = self

        class Pool:
            def close(self) -> None:
                outer.calls.append("close")

            def stop(self) -> None:
                outer.calls.append("stop")

            def join(self, timeout: float | None = None) -> None:
                outer.calls.append(f"join({timeout})")
                if timeout is not None and outer.join_times_out:
                    raise TimeoutError("Tasks are still being executed")
        return Pool()


def test_warm_up_keeps_asking_until_the_late_worker_answers():
    executor = _FakeExecutor(lambda n: 1001 if n < 7 else 1002)  # the second worker answers from ping 8 on
    executor.warm_up(timeout=10)
    assert executor.ready == {1001, 1002}
    assert executor.pings == 8
    assert executor.calls == [], "a pool that started is left running"


def test_warm_up_gives_up_at_the_time_limit_and_stops_the_pool():
    executor = _FakeExecutor(lambda n: 4242)  # the same worker answers every time: the other never starts
    with pytest.raises(RuntimeError, match="could not start: only 1 of 2 workers answered within 0.3 s"):
        executor.warm_up(timeout=0.3)
    assert executor.pings > 2, "one round of pings answered by one worker is not enough"
    assert executor.calls == ["stop", "join(None)"], "a pool that failed to start is stopped, not left running"


def test_warm_up_fails_when_the_pool_is_broken():
    """Workers that die as they start (pebble: "All workers expired") fail the start-up, not every image."""
    executor = _FakeExecutor(lambda n: RuntimeError("All workers expired"))
    with pytest.raises(RuntimeError, match="could not start: worker_crashed: .*All workers expired"):
        executor.warm_up(timeout=5)
    assert executor.pings == 2
    assert executor.calls == ["stop", "join(None)"]


def test_shutdown_stops_a_pool_whose_task_outlives_the_grace_period(caplog):
    executor = _FakeExecutor(lambda n: 1001)
    executor.join_times_out = True
    executor.shutdown()
    assert executor.pings == 0, "no replacement worker: nothing to wait for"
    assert executor.calls == ["close", "join(30)", "stop", "join(None)"]
    assert "still running 30 s after the pool was closed" in caplog.text


class Crash(Operation):
    """An operation whose worker dies, as with a segfaulting decoder."""

    op: Literal["crash"] = "crash"

    def transform(self, image, ctx):
        os._exit(86)  # not 1, which any worker that fails to start exits with


def test_a_crashed_worker_is_replaced_and_shutdown_waits_for_the_replacement(tmp_path):
    executor = ProcessExecutor(workers=2)
    crash = ImageTask(str(images.testimage("chelsea.jpg")), (str(tmp_path / "x.png"),), Pipeline((Crash(),)), 10**8)
    try:
        executor.warm_up()
        first = set(executor.ready)
        report = executor.submit(crash).result(timeout=60)
        assert report.error_code == "worker_crashed" and "exit code 86" in report.error_message, report
    finally:
        executor.shutdown()
    assert len(executor.ready) == 2 and executor.ready - first, \
        f"shutdown should wait for the replacement worker: {first} -> {executor.ready}"

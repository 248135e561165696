"""The process pool's start-up: the engine is handed over only once every worker answers.

A pool shut down while one of its workers is still starting (the command line stopping at an
invalid argument right after start-up) makes that worker die with a traceback on stderr.
"""
from __future__ import annotations

import os
from concurrent.futures import Future

import pytest

from app.executor import Executor, ProcessExecutor


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


class _FakePool(ProcessExecutor):
    """Two workers behind a fake pool whose pings all get ``answer`` (a pid, or an exception)."""

    def __init__(self, answer) -> None:
        Executor.__init__(self, workers=2)
        self.answer, self.pings = answer, 0
        self.stopped = self.joined = False

    def _submit(self, task) -> Future:
        self.pings += 1
        fut: Future = Future()
        if isinstance(self.answer, BaseException):
            fut.set_exception(self.answer)
        else:
            fut.set_result(self.answer)
        return fut

    @property
    def _pool(self):
        outer = self

        class Pool:
            def stop(self) -> None:
                outer.stopped = True

            def join(self) -> None:
                outer.joined = outer.stopped
        return Pool()


def test_warm_up_keeps_asking_until_the_late_worker_answers_and_gives_up_at_the_time_limit():
    executor = _FakePool(4242)  # the same worker answers every time: the other never starts
    with pytest.raises(RuntimeError, match="could not start: only 1 of 2 workers answered within 0.3 s"):
        executor.warm_up(timeout=0.3)
    assert executor.pings > 2, "one round of pings answered by one worker is not enough"
    assert executor.stopped and executor.joined, "a pool that failed to start is stopped, not left running"


def test_warm_up_fails_when_the_pool_is_broken():
    """Workers that die as they start (pebble: "All workers expired") fail the start-up, not every image."""
    executor = _FakePool(RuntimeError("All workers expired"))
    with pytest.raises(RuntimeError, match="could not start: worker_crashed: .*All workers expired"):
        executor.warm_up(timeout=5)
    assert executor.pings == 2
    assert executor.stopped and executor.joined


class Crash:
    """A task whose worker dies, as with a segfaulting decoder."""

    def run(self) -> None:
        os._exit(1)

    def failed(self, code: str, message: str) -> tuple[str, str]:
        return code, message


def test_a_crashed_worker_is_replaced_and_shutdown_waits_for_the_replacement():
    executor = ProcessExecutor(workers=2)
    try:
        executor.warm_up()
        first = set(executor.ready)
        code, message = executor.submit(Crash()).result(timeout=60)
        assert code == "worker_crashed" and "exit code 1" in message, message
    finally:
        executor.shutdown()
    assert len(executor.ready) == 2 and executor.ready - first, \
        f"shutdown should wait for the replacement worker: {first} -> {executor.ready}"

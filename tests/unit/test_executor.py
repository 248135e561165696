"""The process pool's start-up: the engine is handed over only once every worker answers;
and what a worker killed mid-write leaves behind is removed, and nothing else.

A pool shut down while one of its workers is still starting (the command line stopping at an
invalid argument right after start-up) makes that worker die with a traceback on stderr.
"""
from __future__ import annotations

import os
from concurrent.futures import Future
from dataclasses import replace
from typing import Literal

import pytest

from app.execute.backends import Executor, ProcessExecutor, remove_left_behind, with_own_temp_tag
from app.files import TEMP_PREFIX, clean_temp_files
from app.jobs.runner import temp_tag_of
from app.operations import Operation
from app.pipeline import Pipeline
from app.tasks import ImageTask, Ping
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


# -- temporary files of a worker killed mid-write ---------------------------------------------------


def test_each_task_gets_a_temp_tag_of_its_own_after_its_jobs(tmp_path):
    job = "0123456789abcdef0123456789abcdef"
    task = ImageTask(str(images.testimage("chelsea.jpg")), (str(tmp_path / "x.png"),), Pipeline(()), 10**8,
                     temp_tag=temp_tag_of(job))
    first, second = with_own_temp_tag(task), with_own_temp_tag(task)
    assert first.temp_tag.startswith(temp_tag_of(job)) and second.temp_tag.startswith(temp_tag_of(job))
    assert first.temp_tag != second.temp_tag, "two tasks of one job share a tag"
    # a resumed job finds what a killed task of it left
    (tmp_path / f"{TEMP_PREFIX}{first.temp_tag}0a1b2c3d4e5f").write_bytes(b"half")
    assert clean_temp_files([str(tmp_path)], temp_tag_of(job)) == 1


def test_what_a_killed_task_left_is_removed_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    task = with_own_temp_tag(ImageTask(str(images.testimage("chelsea.jpg")),
                                       (str(out / "t_0.png"), str(out / "t_1.png")), Pipeline(()), 10**8))
    other = with_own_temp_tag(replace(task, temp_tag=""))
    mine = [out / f"{TEMP_PREFIX}{task.temp_tag}{n}" for n in ("0a1b2c3d4e5f", "f5e4d3c2b1a0")]
    others = [out / f"{TEMP_PREFIX}{other.temp_tag}0a1b2c3d4e5f",  # another request's image, still writing
              out / f"{TEMP_PREFIX}{temp_tag_of('fedcba9876543210fedcba98')}0a1b2c3d-0a1b2c3d4e5f",  # a job's
              out / f"{TEMP_PREFIX}0a1b2c3d4e5f",  # an untagged writer's
              out / "t_0.png", out / "photo.jpg"]
    for path in mine + others:
        path.write_bytes(b"x")
    remove_left_behind(task)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in others)


def test_a_task_without_a_tag_of_its_own_or_without_files_removes_nothing(tmp_path):
    (tmp_path / f"{TEMP_PREFIX}0a1b2c3d4e5f").write_bytes(b"x")
    remove_left_behind(with_own_temp_tag(Ping()))
    # not tagged by its backend: its files cannot be told from other writers', so none goes
    remove_left_behind(ImageTask(str(images.testimage("chelsea.jpg")), (str(tmp_path / "x.png"),), Pipeline(()), 10**8))
    assert [p.name for p in tmp_path.iterdir()] == [f"{TEMP_PREFIX}0a1b2c3d4e5f"]

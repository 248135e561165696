"""Jobs write outputs without an fdatasync per file and make each batch durable with one
syncfs before recording it: a result is never recorded before its file is on disk."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from app.config import Settings
from app.errors import WriteError
from app.operations import parse_operation
from app.files import FileSystemSync
from app.jobs.manager import submit_job
import app.jobs.runner
from app.jobs.runner import JobRunner
from app.render.worker import run_image
from app.service import Service
from tests import images


@pytest.fixture
def service(root):
    os.makedirs(os.path.join(root, "in"))
    for i in range(5):
        images.jpeg(os.path.join(root, "in"), f"img{i}.jpg")
    eng = Service(Settings(data_root=root, executor="thread", workers=2))
    yield eng
    eng.close()


def run_job(service: Service) -> str:
    return run_job_with(service).job_id


def run_job_with(service: Service) -> JobRunner:
    job_id = submit_job(service, operations=[parse_operation("grayscale")],
                             source={"dir": "in", "pattern": "*.jpg", "recursive": False}, output_dir="out")
    runner = JobRunner(service, job_id)
    asyncio.run(runner.run())
    return runner


def test_outputs_are_synced_once_per_batch_before_they_are_recorded(service, monkeypatch):
    events: list[tuple[str, object]] = []
    tasks_sync: list[bool] = []
    executor = service.engine.executor
    real_submit = executor.submit
    monkeypatch.setattr(executor, "submit", lambda task: (tasks_sync.append(task.sync), real_submit(task))[1])
    monkeypatch.setattr(FileSystemSync, "sync", lambda self, folders: events.append(("sync", sorted(folders))))
    real_save = service.store.save_results
    monkeypatch.setattr(service.store, "save_results",
                        lambda job_id, batch, pipeline: (events.append(("save", len(batch))),
                                                         real_save(job_id, batch, pipeline))[1])
    job_id = run_job(service)

    job = service.store.get_job(job_id)
    assert (job.status, job.succeeded) == ("succeeded", 5)
    assert tasks_sync == [False] * 5  # no fdatasync per file in a job
    out = os.path.join(str(service.settings.data_root), "out")
    saves = [i for i, (kind, _) in enumerate(events) if kind == "save"]
    assert sum(events[i][1] for i in saves) == 5
    assert [kind for kind, _ in events] == ["sync", "save"] * len(saves), events  # one sync per batch, first
    assert all(arg == [out] for kind, arg in events if kind == "sync"), events
    assert sorted(os.listdir(out)) == [f"img{i}.jpg" for i in range(5)]


def test_a_write_back_error_fails_the_batch_instead_of_recording_it_done(service, monkeypatch):
    def broken(self, folders):
        raise WriteError("flushing the outputs in out to disk failed: Input/output error")

    monkeypatch.setattr(FileSystemSync, "sync", broken)
    job_id = run_job(service)
    job = service.store.get_job(job_id)
    assert (job.status, job.succeeded, job.failed) == ("failed", 0, 5)
    _total, rows = service.store.results(job_id, 0, 10, "error")
    assert {r.error_code for r in rows} == {"write_error"}
    assert all("Input/output error" in r.error_message for r in rows)
    # the metrics count what was recorded, not what the workers first reported
    sample = service.engine.metrics.registry.get_sample_value
    assert sample("imgsrv_images_total", {"status": "error"}) == 5
    assert sample("imgsrv_images_total", {"status": "ok"}) in (None, 0)
    assert sample("imgsrv_images_failed_total", {"operation": "grayscale", "code": "write_error"}) == 5


def test_a_failed_save_stops_the_job_and_its_batch_is_recorded_by_the_last_try(service, monkeypatch):
    """A store error in a background flush must not be lost: the job ends failed, saying why,
    and the results of that batch are saved by the final flush instead of being dropped."""
    real_save = service.store.save_results
    calls = {"n": 0}

    def flaky(job_id, batch, pipeline):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("database or disk is full")
        return real_save(job_id, batch, pipeline)

    monkeypatch.setattr(service.store, "save_results", flaky)
    monkeypatch.setattr(app.jobs.runner, "FLUSH_EVERY", 1)  # a background flush after the first results
    runner = run_job_with(service)
    job = service.store.get_job(runner.job_id)
    assert (job.status, job.error) == ("failed", "OSError: database or disk is full")
    assert calls["n"] >= 2
    total, rows = service.store.results(runner.job_id, 0, 10, None)
    # every result the runner collected is recorded, the refused batch included
    assert runner.done == 5 and job.done == total == runner.done, (runner.done, job.done, total)
    assert job.succeeded == job.done
    assert {r.status for r in rows} == {"ok"}


def test_process_requests_flush_each_output_file(service, monkeypatch):
    """/process answers 'ok' per image: its tasks fdatasync every output, unlike jobs."""
    from app.plan import Planner, build_pipeline

    root = Path(service.settings.data_root)
    pipeline = build_pipeline([parse_operation("split=True")], "keep", service.settings.max_pixels)
    [planned] = Planner(str(root), service.settings.max_pixels).images([("in/img0.jpg", "single/out.jpg")], pipeline)
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd))[1])
    report = run_image(planned.task)
    assert report.status == "ok" and len(report.outputs) == 4, report
    assert len(synced) == 4

"""Ctrl-C in ``python main.py run`` at the edges of the job, in-process so that the moment of
the press is exact (the e2e tests in tests/e2e/test_cli.py press it from outside)."""
from __future__ import annotations

import os
import shutil
import signal

import pytest

import app.jobs.manager
import app.jobs.runner
from app.cli import build_parser, run
from tests import images


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        shutil.copy(images.testimage("coffee.jpg"), src / f"c{i}.jpg")
    return src


@pytest.fixture
def restore_sigint():
    saved = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, saved)


def _run(src, out) -> int:
    return run(build_parser().parse_args(["run", "--source", str(src), "--output-dir", str(out), "--quiet",
                                          "--workers", "1", "--op", "grayscale"]))


def test_ctrl_c_while_the_job_is_created_stops_it_before_any_image(folder, tmp_path, monkeypatch, capsys,
                                                                   restore_sigint):
    submit = app.jobs.manager.submit_job

    def submit_then_ctrl_c(*args, **kwargs):
        job_id = submit(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return job_id

    monkeypatch.setattr(app.jobs.manager, "submit_job", submit_then_ctrl_c)
    out = tmp_path / "out"
    assert _run(folder, out) == 130
    stdout = capsys.readouterr().out
    assert "interrupted" in stdout and "0 succeeded" in stdout, stdout
    assert not [p for p in out.rglob("*.jpg")], "no image may be processed after an early Ctrl-C"
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "once interrupted, Ctrl-C stays ignored"


def test_ctrl_c_after_the_last_image_does_not_make_a_finished_job_interrupted(folder, tmp_path, monkeypatch, capsys,
                                                                              restore_sigint):
    run_job = app.jobs.runner.JobRunner.run

    async def run_then_ctrl_c(self):
        job = await run_job(self)
        os.kill(os.getpid(), signal.SIGINT)
        return job

    monkeypatch.setattr(app.jobs.runner.JobRunner, "run", run_then_ctrl_c)
    out = tmp_path / "out"
    previous = signal.getsignal(signal.SIGINT)
    assert _run(folder, out) == 0
    stdout = capsys.readouterr().out
    assert "4 succeeded" in stdout and "interrupted" not in stdout, stdout
    assert len(list(out.rglob("*.jpg"))) == 4
    assert signal.getsignal(signal.SIGINT) is previous, "a normal end puts the caller's handler back"

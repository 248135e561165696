"""SPEC "CLI": ``python main.py run --source DIR --output-dir OUT --op ...`` in a subprocess.

Summary, exit codes (0 clean, 1 when an image failed, 2 invalid arguments, 130 on Ctrl-C),
resumability, mirrored outputs, --pattern / --recursive / --format.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import PROJECT_ROOT, TESTIMAGES
from .helpers import size_of, temp_files
from .jobs_helpers import (check_decodable, cli_args, cli_env, files_under, run_cli, slow_folder,
                           summary_counts)
from tests import images as gen

TREE = {"a.jpg": ("astronaut.jpg", 512, 512), "sub/b.jpg": ("chelsea.jpg", 451, 300),
        "sub/deeper/c.png": ("camera.png", 512, 512)}


def make_tree(src: Path) -> Path:
    for rel, (name, _w, _h) in TREE.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TESTIMAGES / name, src / rel)
    return src


def outputs(out: Path) -> dict[str, int]:
    """The files the CLI wrote (its state folder aside): relative path -> mtime_ns."""
    return files_under(out, skip_state=True) if out.exists() else {}


def both(p: subprocess.CompletedProcess) -> str:
    return p.stdout + "\n" + p.stderr


def test_clean_folder_exits_0_and_prints_the_summary(tmp_path):
    src, out = make_tree(tmp_path / "src"), tmp_path / "out"
    p = run_cli("--source", str(src), "--output-dir", str(out), "--op", "crop=bottom:40", "--recursive",
                "--workers", "2")
    assert p.returncode == 0, both(p)
    assert summary_counts(p.stdout) == {"succeeded": 3, "failed": 0, "skipped": 0}, p.stdout
    low = p.stdout.lower()
    assert "compression ratio" in low and "images/s" in low, p.stdout
    assert re.search(r"images\s*:?\s*3\b", low), "the summary should say how many images there were"
    assert sorted(outputs(out)) == sorted(TREE), "outputs must mirror the source tree"
    for rel, (_n, w, h) in TREE.items():
        assert size_of(out / rel) == (w, h - 40), rel
    assert temp_files(out) == []


def test_second_run_skips_everything_and_exits_0(tmp_path):
    src, out = make_tree(tmp_path / "src"), tmp_path / "out"
    args = ("--source", str(src), "--output-dir", str(out), "--op", "grayscale", "--op", "rotate=180",
            "--recursive", "--workers", "2")
    first = run_cli(*args)
    assert first.returncode == 0, both(first)
    written = outputs(out)
    assert len(written) == 3
    time.sleep(0.05)
    second = run_cli(*args)
    assert second.returncode == 0, both(second)
    assert summary_counts(second.stdout) == {"succeeded": 0, "failed": 0, "skipped": 3}, second.stdout
    assert outputs(out) == written, "a skipped image's output was rewritten"
    # a changed pipeline is redone
    third = run_cli(*args[:-2], "--op", "flip=vertical", "--workers", "2")
    assert third.returncode == 0, both(third)
    assert summary_counts(third.stdout)["succeeded"] == 3, third.stdout


def test_pattern_format_and_non_recursive(tmp_path):
    src = make_tree(tmp_path / "src")
    out = tmp_path / "png"
    p = run_cli("--source", str(src), "--output-dir", str(out), "--op", "resize=width:100", "--recursive",
                "--pattern", "*.jpg", "--format", "png", "--workers", "2")
    assert p.returncode == 0, both(p)
    assert summary_counts(p.stdout) == {"succeeded": 2, "failed": 0, "skipped": 0}, p.stdout
    assert sorted(outputs(out)) == ["a.png", "sub/b.png"]
    for rel in ("a.png", "sub/b.png"):
        assert (out / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{rel} is not a PNG"
        assert size_of(out / rel)[0] == 100
    flat = tmp_path / "flat"
    p = run_cli("--source", str(src), "--output-dir", str(flat), "--op", "grayscale", "--workers", "2")
    assert p.returncode == 0, both(p)
    assert sorted(outputs(flat)) == ["a.jpg"], "without --recursive sub-folders are ignored"


@pytest.fixture
def with_corrupt(tmp_path):
    src = make_tree(tmp_path / "src")
    gen.truncated_jpeg(src / "sub", 0.5, name="broken_half.jpg")
    return src, tmp_path / "out"


def test_corrupt_file_exits_1_lists_it_and_the_rerun_still_fails_it(with_corrupt):
    src, out = with_corrupt
    args = ("--source", str(src), "--output-dir", str(out), "--op", "crop=bottom:40", "--recursive",
            "--workers", "2")
    p = run_cli(*args)
    assert p.returncode == 1, f"an image failed: exit code 1 expected, got {p.returncode}\n{both(p)}"
    assert summary_counts(p.stdout) == {"succeeded": 3, "failed": 1, "skipped": 0}, p.stdout
    assert "broken_half.jpg" in both(p), "the failed image should be listed"
    assert "decode" in both(p).lower(), "the failure should say why (decode_error)"
    assert sorted(outputs(out)) == sorted(TREE), "the good images are written, the broken one is not"
    written = outputs(out)
    time.sleep(0.05)
    again = run_cli(*args)
    assert again.returncode == 1, f"the broken file still fails: exit code 1 expected\n{both(again)}"
    assert summary_counts(again.stdout) == {"succeeded": 0, "failed": 1, "skipped": 3}, again.stdout
    assert "broken_half.jpg" in both(again)
    assert outputs(out) == written, "the good images must be skipped, not rewritten"


@pytest.mark.parametrize("op, names", [
    ("blur=kernel:4", ["blur=kernel:4", "kernel"]),
    ("emboss=3", ["emboss"]),
    ("crop=bottom:-5", ["bottom"]),
    ("rotate=45", ["angle"]),
])
def test_invalid_op_exits_2_naming_the_problem_and_writes_nothing(tmp_path, op, names):
    src, out = make_tree(tmp_path / "src"), tmp_path / "out"
    p = run_cli("--source", str(src), "--output-dir", str(out), "--op", "grayscale", "--op", op)
    assert p.returncode == 2, f"invalid --op {op!r}: exit code 2 expected, got {p.returncode}\n{both(p)}"
    for name in names:
        assert name in p.stderr, f"the message should name {name!r}: {p.stderr!r}"
    assert "Traceback" not in p.stderr, p.stderr
    assert not out.exists() or outputs(out) == {}, "nothing may be written for invalid arguments"


@pytest.mark.parametrize("extra, names", [
    (["--format", "gif"], ["format", "gif"]),
    (["--workers", "0"], ["workers"]),
    (["--executor", "bogus"], ["executor"]),
], ids=["format", "workers", "executor"])
def test_invalid_arguments_exit_2_not_1(tmp_path, extra, names):
    """The CLI's own help: "2 for invalid arguments"; 1 means an image failed."""
    src, out = make_tree(tmp_path / "src"), tmp_path / "out"
    p = run_cli("--source", str(src), "--output-dir", str(out), "--op", "grayscale", *extra)
    for name in names:
        assert name in p.stderr, f"the message should name {name!r}: {p.stderr!r}"
    assert outputs(out) == {}, "nothing may be written for invalid arguments"
    assert p.returncode == 2, f"{' '.join(extra)}: exit code 2 expected, got {p.returncode}\n{both(p)}"


def test_missing_source_folder_exits_2(tmp_path):
    p = run_cli("--source", str(tmp_path / "nope"), "--output-dir", str(tmp_path / "out"), "--op", "grayscale")
    assert p.returncode == 2, both(p)
    assert "source" in p.stderr.lower() and "Traceback" not in p.stderr, p.stderr


def test_ctrl_c_exits_130_leaves_no_partial_file_and_the_next_run_resumes(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    rels = slow_folder(src, 30)
    args = cli_args("--source", str(src), "--output-dir", str(out), "--op", "blur=kernel:101", "--workers", "2")
    proc = subprocess.Popen(args, cwd=PROJECT_ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while len([n for n in outputs(out) if not os.path.basename(n).startswith(".imgsrv-tmp-")]) < 3:
            assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()}"
            assert time.monotonic() < deadline, "the run wrote nothing in 90 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, f"Ctrl-C: exit code 130 expected, got {proc.returncode}\n{stdout}\n{stderr}"
    assert temp_files(out) == [], "Ctrl-C left temporary files"
    first = outputs(out)
    assert 3 <= len(first) < len(rels), f"{len(first)} of {len(rels)} images written before Ctrl-C"
    for rel in first:
        check_decodable(out / rel, (2000, 1500))
    counts = summary_counts(stdout)
    assert counts["failed"] == 0, f"Ctrl-C must not fail the images in flight:\n{stdout}\n{stderr}"
    assert counts["succeeded"] == len(first), f"{len(first)} files written, summary says:\n{stdout}"

    again = run_cli(*args[3:])
    assert again.returncode == 0, both(again)
    assert summary_counts(again.stdout) == {"succeeded": len(rels) - len(first), "failed": 0,
                                            "skipped": len(first)}, again.stdout
    final = outputs(out)
    assert sorted(final) == sorted(rels)
    assert {k: final[k] for k in first} == first, "images done before Ctrl-C were processed again"
    assert temp_files(out) == []


def test_ctrl_c_pressed_again_and_again_still_stops_cleanly(tmp_path):
    """An impatient user: Ctrl-C every 20 ms until the process is gone, through the shutdown."""
    src, out = tmp_path / "src", tmp_path / "out"
    slow_folder(src, 12)
    args = cli_args("--source", str(src), "--output-dir", str(out), "--op", "blur=kernel:101", "--workers", "2")
    proc = subprocess.Popen(args, cwd=PROJECT_ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not outputs(out):
            assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()}"
            assert time.monotonic() < deadline, "the run wrote nothing in 90 s"
            time.sleep(0.02)
        presses = 0
        while proc.poll() is None and time.monotonic() < deadline:
            os.killpg(proc.pid, signal.SIGINT)
            presses += 1
            time.sleep(0.02)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert presses > 1, "the test should press Ctrl-C more than once"
    assert proc.returncode == 130, f"exit code 130 expected, got {proc.returncode}\n{stdout}\n{stderr}"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert temp_files(out) == [], "Ctrl-C left temporary files"
    assert summary_counts(stdout)["failed"] == 0, stdout

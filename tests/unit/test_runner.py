"""The job runner: every image of a job gets one recorded result, the files it names are
written (or left alone), and a job stopped or resumed at any point goes on where it was."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from app.config import Settings
from app.files import TEMP_PREFIX
from app.jobs.manager import submit_job
from app.jobs.runner import JobRunner, Progress, temp_tag_of
from app.operations import parse_operation
from app.service import Service
from app.tasks import Overwrite
from tests import images


@pytest.fixture
def service(root):
    svc = Service(Settings(data_root=root, executor="thread", workers=2))
    yield svc
    svc.close()


def photos(root, folder="in", n=3, ext="jpg"):
    for i in range(n):
        if ext == "jpg":
            images.jpeg(Path(root, folder), f"img{i}.jpg", source=("astronaut.jpg", "chelsea.jpg")[i % 2])
        else:
            images.gray_png(Path(root, folder), f"img{i}.{ext}")


def folder_job(service, ops=("grayscale",), **kw) -> str:
    source = {"dir": kw.pop("dir", "in"), "pattern": kw.pop("pattern", "*"), "recursive": kw.pop("recursive", False)}
    return submit_job(service, operations=[parse_operation(op) for op in ops], source=source,
                      output_dir=kw.pop("output_dir", "out"), **kw)


def run(service, job_id, **kw):
    runner = JobRunner(service, job_id, **kw)
    return asyncio.run(runner.run()), runner


def results(service, job_id, status=None):
    return service.store.results(job_id, 0, 1000, status)[1]


def test_a_folder_job_writes_every_image_and_records_each_result(service, root):
    photos(root, n=3)
    photos(root, "in/sub", n=2)
    Path(root, "in", "notes.txt").write_text("not an image")
    seen: list[Progress] = []
    job_id = folder_job(service, pattern="*.jpg", recursive=True, output_format="png")
    job, runner = run(service, job_id, on_result=seen.append)
    assert (job.status, job.total, job.done, job.succeeded, job.failed, job.skipped, job.enumerated) == \
        ("succeeded", 5, 5, 5, 0, 0, 1)
    assert job.outputs == 5 and job.error is None and job.started_at <= job.finished_at
    rows = results(service, job_id)
    assert [(r.input, r.output) for r in rows] == [
        (os.path.join("in", f"img{i}.jpg"), os.path.join("out", f"img{i}.png")) for i in range(3)] + [
        (os.path.join("in", "sub", f"img{i}.jpg"), os.path.join("out", "sub", f"img{i}.png")) for i in range(2)]
    sizes = {os.path.join(d, f): os.path.getsize(os.path.join(d, f))
             for d, _, fs in os.walk(os.path.join(root, "out")) for f in fs}
    assert len(sizes) == 5 and all(name.endswith(".png") for name in sizes)
    assert job.output_bytes == sum(sizes.values())
    assert job.input_bytes == sum(os.path.getsize(os.path.join(root, r.input)) for r in rows)
    assert [r.outputs[0]["bytes"] for r in rows] == [sizes[os.path.join(root, r.output)] for r in rows]
    decoded = images.decode_bytes(Path(root, "out", "img0.png").read_bytes())
    assert decoded.ndim == 2, "grayscale was applied"
    assert [p.done for p in seen] == [1, 2, 3, 4, 5] and seen[-1].total == 5
    assert runner.done == 5 and runner.total == 5
    assert {p.report.status for p in seen} == {"ok"}


def test_a_job_of_many_files_lists_them_all_in_growing_batches(service, root):
    folder = Path(root, "in")
    folder.mkdir()
    data = images.jpeg_bytes("chelsea.jpg", quality=30)
    for i in range(90):
        (folder / f"p{i:03}.jpg").write_bytes(data)
    added: list[int] = []
    real = service.store.add_items
    service.store.add_items = lambda job_id, start, pairs: (added.append(len(pairs)), real(job_id, start, pairs))[1]
    job_id = folder_job(service, ops=("resize=0.1",))
    job, runner = run(service, job_id)
    assert (job.status, job.total, job.succeeded) == ("succeeded", 90, 90)
    assert added == [16, 64, 10], "16 first, so the workers start early; then four times as many"
    assert runner.total == 90
    assert [r.seq for r in results(service, job_id)] == list(range(90))
    assert sorted(os.listdir(Path(root, "out"))) == [f"p{i:03}.jpg" for i in range(90)]


def test_two_inputs_mapped_to_one_output_write_it_once(service, root):
    images.jpeg(Path(root, "in"), "a.jpg")
    images.gray_png(Path(root, "in"), "a.png")
    job_id = folder_job(service, output_format="jpeg")
    job, _ = run(service, job_id)
    assert (job.status, job.succeeded, job.failed) == ("failed", 1, 1)
    [bad] = results(service, job_id, "error")
    assert bad.error_code == "output_exists" and bad.input == os.path.join("in", "a.png")
    assert bad.error_message == (f"{os.path.join('in', 'a.jpg')} and {os.path.join('in', 'a.png')} both map to the "
                                 f"output {os.path.join('out', 'a.jpg')}; the first one keeps it")
    assert os.listdir(Path(root, "out")) == ["a.jpg"]


def test_a_job_run_again_skips_what_is_done_and_protects_what_it_did_not_write(service, root):
    photos(root, n=2)
    first, _ = run(service, folder_job(service))
    assert first.succeeded == 2
    again, _ = run(service, folder_job(service))
    assert (again.status, again.skipped, again.succeeded) == ("succeeded", 2, 0)
    redo, _ = run(service, folder_job(service, skip_existing=False))
    assert (redo.status, redo.succeeded) == ("succeeded", 2), "imgsrv's own outputs may be replaced"
    Path(root, "out", "img0.jpg").write_bytes(b"the user's own")
    never, _ = run(service, folder_job(service, skip_existing=False))
    assert (never.status, never.failed, never.succeeded) == ("failed", 1, 1)
    assert Path(root, "out", "img0.jpg").read_bytes() == b"the user's own"
    always, _ = run(service, folder_job(service, skip_existing=False, overwrite=Overwrite.ALWAYS))
    assert always.succeeded == 2 and Path(root, "out", "img0.jpg").read_bytes() != b"the user's own"


def test_a_job_with_images_named_writes_them_and_fails_the_missing_one(service, root):
    photos(root, n=2)
    job_id = submit_job(service, operations=[parse_operation("split=1x2")],
                        images=[("in/img0.jpg", "o/a.jpg"), ("in/missing.jpg", "o/m.jpg"), ("in/img1.jpg", "o/b.png")])
    job, _ = run(service, job_id)
    assert (job.status, job.total, job.succeeded, job.failed, job.outputs) == ("failed", 3, 2, 1, 4)
    assert sorted(os.listdir(Path(root, "o"))) == ["a_0.jpg", "a_1.jpg", "b_0.png", "b_1.png"]
    [missing] = results(service, job_id, "error")
    assert (missing.seq, missing.error_code) == (1, "not_found")
    ok = results(service, job_id, "ok")
    assert [o["path"] for o in ok[0].outputs] == ["o/a_0.jpg", "o/a_1.jpg"]


def test_a_cancelled_job_ends_cancelled_with_its_images_unrecorded(service, root):
    photos(root, n=3)
    job_id = folder_job(service)
    runner = JobRunner(service, job_id)
    runner.cancel()
    job = asyncio.run(runner.run())
    assert job.status == "cancelled" and job.finished_at is not None
    assert not os.path.exists(Path(root, "out")) or os.listdir(Path(root, "out")) == []
    # asked through the store (the API's cancel, from another request): the same end
    job_id = submit_job(service, operations=[parse_operation("grayscale")], images=[("in/img0.jpg", "o/a.jpg")])
    service.store.request_cancel(job_id)
    job, _ = run(service, job_id)
    assert job.status == "cancelled"


def test_a_checkpointed_job_stays_running_and_a_later_run_finishes_it(service, root):
    photos(root, n=3)
    job_id = folder_job(service)
    runner = JobRunner(service, job_id)
    runner.checkpoint()
    job = asyncio.run(runner.run())
    assert job.status == "running" and job.finished_at is None
    done, later = run(service, job_id)
    assert (done.status, done.total, done.succeeded, done.done) == ("succeeded", 3, 3, 3)
    assert later.temp_tag == temp_tag_of(job_id) == job_id[:16] + "-"


def test_a_resumed_job_removes_only_its_own_stray_temporary_files(service, root):
    photos(root, n=2)
    job_id = submit_job(service, operations=[parse_operation("grayscale")],
                        images=[("in/img0.jpg", "o/a.jpg"), ("in/img1.jpg", "o/deep/b.jpg")])
    service.store.start_job(job_id)  # a previous run, killed mid-write
    mine = [Path(root, "o", f"{TEMP_PREFIX}{temp_tag_of(job_id)}x1"), Path(root, "o", "deep",
                                                                        f"{TEMP_PREFIX}{temp_tag_of(job_id)}x2")]
    other = Path(root, "o", f"{TEMP_PREFIX}someoneelse-x")
    for f in (*mine, other):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"half")
    job, _ = run(service, job_id)
    assert job.status == "succeeded"
    assert not any(f.exists() for f in mine)
    assert other.read_bytes() == b"half"
    assert sorted(os.listdir(Path(root, "o"))) == sorted(["a.jpg", "deep", other.name])


def test_a_job_whose_operations_no_longer_validate_fails_saying_why(service, root):
    service.store.create_job("old", {"operations": [{"op": "nosuchop"}]})
    job, _ = run(service, "old")
    assert job.status == "failed" and job.error.startswith("invalid operations: ")


def test_a_folder_job_never_writes_into_its_source_through_a_link(service, root):
    photos(root, n=2)
    os.makedirs(Path(root, "outs", "back"))
    job_id = folder_job(service, output_dir="outs/back/x")
    os.rmdir(Path(root, "outs", "back"))  # after the job was checked: a link into its source
    os.symlink(Path(root, "in"), Path(root, "outs", "back"))
    job, _ = run(service, job_id)
    assert (job.status, job.failed) == ("failed", 2)
    assert {r.error_code for r in results(service, job_id)} == {"write_error"}
    assert sorted(os.listdir(Path(root, "in"))) == ["img0.jpg", "img1.jpg"]
    assert all("leads into the source folder" in r.error_message for r in results(service, job_id))


def test_a_job_whose_source_folder_went_away_fails_with_the_reason(service, root):
    photos(root, n=1)
    job_id = folder_job(service)
    os.rename(Path(root, "in"), Path(root, "elsewhere"))
    os.symlink("/", Path(root, "in"))
    job, _ = run(service, job_id)
    assert job.status == "failed" and "leads outside the data root" in job.error


def test_the_spec_the_runner_reads_is_what_was_submitted(service, root):
    photos(root, n=1)
    job_id = folder_job(service, ops=("resize=0.5",), output_format="webp")
    spec = json.loads(service.store.get_job(job_id).spec)
    assert spec["output_format"] == "webp" and spec["source"] == {"dir": "in", "pattern": "*", "recursive": False}
    job, _ = run(service, job_id)
    assert job.status == "succeeded"
    out = images.decode_bytes(Path(root, "out", "img0.webp").read_bytes())
    src = images.decode_bytes(Path(root, "in", "img0.jpg").read_bytes())
    assert out.shape[:2] == (src.shape[0] // 2, src.shape[1] // 2)


def test_a_job_keeps_or_strips_the_camera_metadata_as_asked(service, root):
    images.exif_jpeg(Path(root, "in"), 1, "cam.jpg")
    for metadata, kept in (("keep", True), ("strip", False)):
        job_id = submit_job(service, operations=[parse_operation("grayscale")], metadata=metadata,
                            images=[("in/cam.jpg", f"o/{metadata}.jpg")])
        assert run(service, job_id)[0].status == "succeeded"
        assert (b"ImgsrvCam" in Path(root, "o", f"{metadata}.jpg").read_bytes()) is kept, metadata
    spec = json.loads(service.store.get_job(job_id).spec)
    del spec["metadata"]  # a spec from before the option: kept
    service.store.create_job("older", spec)
    service.store.add_items("older", 0, [("in/cam.jpg", "o/older.jpg")])
    service.store.mark_enumerated("older")
    assert run(service, "older")[0].status == "succeeded"
    assert b"ImgsrvCam" in Path(root, "o", "older.jpg").read_bytes()


def test_a_spec_from_before_the_overwrite_options_skips_done_images_and_protects_others(service, root):
    photos(root, n=2)
    first = folder_job(service)
    run(service, first)
    spec = json.loads(service.store.get_job(first).spec)
    del spec["skip_existing"], spec["overwrite"]
    service.store.create_job("older", spec)
    job, _ = run(service, "older")
    assert (job.status, job.skipped) == ("succeeded", 2), "skip-existing is on by default"
    Path(root, "out", "img1.jpg").write_bytes(b"the user's")
    spec["skip_existing"] = False
    service.store.create_job("older2", spec)
    job, _ = run(service, "older2")
    assert (job.succeeded, job.failed) == (1, 1) and Path(root, "out", "img1.jpg").read_bytes() == b"the user's"


def test_a_listing_interrupted_midway_is_resumed_without_duplicates(service, root):
    photos(root, n=5)
    job_id = folder_job(service)
    service.store.add_items(job_id, 0, [(os.path.join("in", "img0.jpg"), os.path.join("out", "img0.jpg")),
                                        (os.path.join("in", "img1.jpg"), os.path.join("out", "img1.jpg"))])
    service.store.start_job(job_id)  # the run that listed those two was killed
    seen: list[Progress] = []
    job, runner = run(service, job_id, on_result=seen.append)
    assert (job.status, job.total, job.succeeded) == ("succeeded", 5, 5)
    assert [r.input for r in results(service, job_id)] == [os.path.join("in", f"img{i}.jpg") for i in range(5)]
    assert runner.total == 5


def test_a_job_of_more_images_than_one_fetch_does_them_all(service, root):
    import cv2
    import numpy as np

    folder = Path(root, "in")
    folder.mkdir()
    ok, blob = cv2.imencode(".png", np.full((8, 8), 128, np.uint8))
    for i in range(300):
        (folder / f"t{i:03}.png").write_bytes(blob.tobytes())
    job_id = submit_job(service, operations=[parse_operation("flip=vertical")],
                        images=[(f"in/t{i:03}.png", f"o/t{i:03}.png") for i in range(300)])
    seen: list[Progress] = []
    job, _ = run(service, job_id, on_result=seen.append)
    assert (job.status, job.done, job.succeeded) == ("succeeded", 300, 300)
    assert len(os.listdir(Path(root, "o"))) == 300
    assert {p.total for p in seen} == {300}, "a listed job knows its total from the start"


def test_a_job_cancelled_midway_records_every_image_it_had_in_flight(service, root):
    photos(root, n=8)
    job_id = folder_job(service)
    runner = JobRunner(service, job_id)
    runner.on_result = lambda _p: runner.cancel()
    job = asyncio.run(runner.run())
    assert job.status == "cancelled"
    written = os.listdir(Path(root, "out"))
    assert 1 <= len(written) < 8
    assert job.done == job.succeeded == len(written) == runner.done
    assert sorted(os.path.basename(r.output) for r in results(service, job_id)) == sorted(written)


def test_a_write_back_error_fails_only_the_images_that_wrote(service, root, monkeypatch):
    from app.errors import WriteError
    from app.files import FileSystemSync

    photos(root, n=1)

    def broken(self, folders):
        raise WriteError("flushing the outputs in o to disk failed: Input/output error")

    monkeypatch.setattr(FileSystemSync, "sync", broken)
    job_id = submit_job(service, operations=[parse_operation("grayscale")],
                        images=[("in/img0.jpg", "o/a.jpg"), ("in/missing.jpg", "o/m.jpg")])
    job, _ = run(service, job_id)
    assert (job.status, job.failed, job.input_bytes) == ("failed", 2, 0)
    wrote, missing = results(service, job_id)
    assert (missing.error_code, wrote.error_code) == ("not_found", "write_error")
    assert wrote.error_message == "flushing the outputs in o to disk failed: Input/output error"
    assert wrote.input_bytes == os.path.getsize(Path(root, "in", "img0.jpg")) and wrote.elapsed_ms > 0


def test_stray_temporary_files_are_found_in_the_root_and_past_a_folder_it_may_no_longer_use(service, root, tmp_path):
    photos(root, n=2)
    os.makedirs(Path(root, "a"))
    job_id = submit_job(service, operations=[parse_operation("grayscale")],
                        images=[("in/img0.jpg", "a/x.jpg"), ("in/img1.jpg", "top.jpg"), ("in/img0.jpg", "b/y.jpg")])
    service.store.start_job(job_id)
    os.rmdir(Path(root, "a"))
    os.symlink(tmp_path, Path(root, "a"))  # now leads out of the root: passed over
    strays = [Path(root, f"{TEMP_PREFIX}{temp_tag_of(job_id)}1"), Path(root, "b", f"{TEMP_PREFIX}{temp_tag_of(job_id)}2")]
    past_the_link = tmp_path / f"{TEMP_PREFIX}{temp_tag_of(job_id)}3"  # outside the root: not the job's to touch
    for f in [*strays, past_the_link]:
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"half")
    job, _ = run(service, job_id)
    assert not any(f.exists() for f in strays)
    assert past_the_link.exists(), "the clean-up followed a link out of the root"
    assert (job.succeeded, job.failed) == (2, 1)

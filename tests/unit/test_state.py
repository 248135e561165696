"""The SQLite store of the state folder: what imgsrv wrote (``owned``), the skip-existing
manifest, and the jobs with their images' results. A record lost or miscounted here is a
user's file replaced, an image skipped wrongly or a job that never finishes."""
from __future__ import annotations

import os
import sqlite3
import time

import pytest

from app.errors import ErrorCode
from app.state import Store
from app.tasks import Expected, JobStatus, Output, Owned, Report, Status

PIPE = "digest-of-the-pipeline"


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state")
    yield s
    s.close()


def out(path: str, *, width=40, height=30, size=1000, mtime=111, faces=None, sha="ab" * 32, ino=7, ctime=222) -> Output:
    return Output(path, width, height, size, faces, mtime, sha256=sha, ino=ino, ctime_ns=ctime)


def ok(*outputs: Output, input_bytes=5000, input_hash="in-hash", elapsed=12.5) -> Report:
    return Report(Status.OK, input_bytes, list(outputs), elapsed_ms=elapsed, input_hash=input_hash)


# -- the database file ----------------------------------------------------------------------


def test_the_store_lives_in_one_wal_database_in_the_state_folder(tmp_path):
    folder = tmp_path / "deep" / "state"
    s = Store(folder)
    s.create_job("j1", {"operations": []})
    assert s.path == os.path.join(folder, "imgsrv.sqlite3")
    s.close()
    again = Store(folder)  # the folder exists already: the same records are there
    assert again.get_job("j1").status == JobStatus.QUEUED
    again.close()
    db = sqlite3.connect(os.path.join(folder, "imgsrv.sqlite3"))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental: deleted jobs give their pages back
    db.close()


def test_a_store_made_before_api_keys_and_inode_records_is_upgraded_in_place(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    db = sqlite3.connect(folder / "imgsrv.sqlite3")
    db.executescript("""
        CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, spec TEXT NOT NULL,
            total INTEGER NOT NULL DEFAULT 0, enumerated INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0,
            succeeded INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0,
            outputs INTEGER NOT NULL DEFAULT 0, input_bytes INTEGER NOT NULL DEFAULT 0,
            output_bytes INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, started_at REAL, finished_at REAL,
            resumed_at REAL, done_at_resume INTEGER NOT NULL DEFAULT 0, cancel INTEGER NOT NULL DEFAULT 0, error TEXT);
        CREATE TABLE owned (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
            sha256 TEXT NOT NULL, job TEXT) WITHOUT ROWID;
        INSERT INTO jobs (id, status, spec, created_at) VALUES ('old', 'succeeded', '{}', 1.0);
        INSERT INTO owned VALUES ('/r/old.jpg', 10, 20, 'aa', NULL);
    """)
    db.commit()
    db.close()
    s = Store(folder)
    try:
        assert s.get_job("old").status == "succeeded" and s.get_job("old").created_by is None
        s.create_job("new", {}, created_by="alice")
        assert s.get_job("new").created_by == "alice"
        s.record_written([out("/r/new.jpg", ino=99, ctime=123)])
        assert s.owned(["/r/old.jpg", "/r/new.jpg"]) == {
            "/r/old.jpg": Owned(10, 20), "/r/new.jpg": Owned(1000, 111, None, 99, 123)}
    finally:
        s.close()
    check = sqlite3.connect(folder / "imgsrv.sqlite3")
    assert check.execute("PRAGMA auto_vacuum").fetchone()[0] == 2, "rebuilt once with incremental vacuum"
    check.close()
    again = Store(folder)  # upgraded once: opening it again changes nothing
    assert again.get_job("new").created_by == "alice"
    again.close()


# -- the manifest ---------------------------------------------------------------------------


def test_the_manifest_gives_back_what_one_input_made_with_this_pipeline(store):
    faces = [{"x": 1, "y": 2, "width": 3, "height": 4}]
    a, b = out("/r/o/a_0.jpg", width=10, height=20, size=300, mtime=400, faces=faces), \
        out("/r/o/a_1.jpg", width=11, height=21, size=301, mtime=401)
    store.record([ok(a, b)], PIPE)
    assert store.expected(["/r/o/a_0.jpg", "/r/o/a_1.jpg"], PIPE) == Expected("in-hash", (
        Output("/r/o/a_0.jpg", 10, 20, 300, faces, 400), Output("/r/o/a_1.jpg", 11, 21, 301, None, 401)))
    # in the order asked
    assert [o.path for o in store.expected(["/r/o/a_1.jpg", "/r/o/a_0.jpg"], PIPE).outputs] == \
        ["/r/o/a_1.jpg", "/r/o/a_0.jpg"]


def test_the_manifest_has_nothing_for_another_pipeline_a_missing_output_or_mixed_inputs(store):
    store.record([ok(out("/r/a.jpg"), out("/r/b.jpg"), input_hash="h1")], PIPE)
    store.record([ok(out("/r/c.jpg"), input_hash="h2")], PIPE)
    store.record([ok(out("/r/d.jpg"), input_hash="h2")], "another")
    assert store.expected(["/r/a.jpg", "/r/b.jpg"], "another") is None
    assert store.expected(["/r/a.jpg", "/r/b.jpg", "/r/never.jpg"], PIPE) is None
    assert store.expected(["/r/a.jpg", "/r/c.jpg"], PIPE) is None, "two inputs made these"
    assert store.expected(["/r/c.jpg", "/r/d.jpg"], PIPE) is None, "two pipelines made these"
    assert store.expected(["/r/c.jpg"], PIPE).input_hash == "h2"


def test_only_succeeded_images_are_recorded(store):
    failed = Report.failure(ErrorCode.DECODE_ERROR, "not an image", outputs=[out("/r/bad.jpg")], input_hash="h")
    store.record([failed, ok(out("/r/no-hash.jpg"), input_hash=None)], PIPE)
    assert store.expected(["/r/bad.jpg"], PIPE) is None
    assert store.owned(["/r/bad.jpg"]) == {}
    assert store.expected(["/r/no-hash.jpg"], PIPE) is None, "no input hash: nothing to compare with later"
    assert store.owned(["/r/no-hash.jpg"]) == {"/r/no-hash.jpg": Owned(1000, 111, None, 7, 222)}


def test_a_newer_result_replaces_the_manifest_and_the_record_of_the_file(store):
    store.record([ok(out("/r/a.jpg", size=1, mtime=1), input_hash="old")], PIPE)
    store.record([ok(out("/r/a.jpg", size=2, mtime=2), input_hash="new")], PIPE)
    assert store.expected(["/r/a.jpg"], PIPE) == Expected("new", (Output("/r/a.jpg", 40, 30, 2, None, 2),))
    assert store.owned(["/r/a.jpg"])["/r/a.jpg"].size == 2


# -- what imgsrv wrote ------------------------------------------------------------------------


def test_owned_holds_what_imgsrv_wrote_and_nothing_else(store):
    store.record_written([out("/r/diff.png", size=5, mtime=6, ino=0, ctime=0),
                          out("/r/no-sha.png", sha=None), out(None)])
    assert store.owned(["/r/diff.png", "/r/no-sha.png", "/r/user.png"]) == {
        "/r/diff.png": Owned(5, 6, None, None, None)}  # an unknown inode is no inode, not 0


def test_files_recorded_only_in_the_manifest_count_as_imgsrvs(store):
    """A store from before the ``owned`` table: its manifest rows are imgsrv's files too."""
    store.record([ok(out("/r/a.jpg", size=9, mtime=8))], PIPE)
    with store._tx() as db:
        db.execute("DELETE FROM owned")
    assert store.owned(["/r/a.jpg"]) == {"/r/a.jpg": Owned(9, 8)}
    store.record_written([out("/r/a.jpg", size=3, mtime=4, ino=5, ctime=6)])
    assert store.owned(["/r/a.jpg"]) == {"/r/a.jpg": Owned(3, 4, None, 5, 6)}, "the owned record wins"


def test_owned_answers_for_more_paths_than_one_query_holds(store):
    paths = [f"/r/out/{i:04}.jpg" for i in range(1203)]
    store.record_written([out(p, size=i + 1) for i, p in enumerate(paths) if i % 2 == 0])
    store.record([ok(out("/r/out/1202.jpg", size=77), out("/r/out/0501.jpg", size=55))], PIPE)
    found = store.owned(paths)
    assert len(found) == 603
    assert found["/r/out/0000.jpg"].size == 1
    assert found["/r/out/0500.jpg"].size == 501
    assert found["/r/out/0501.jpg"].size == 55
    assert found["/r/out/1000.jpg"].size == 1001
    assert found["/r/out/1202.jpg"].size == 77
    assert "/r/out/0499.jpg" not in found


# -- jobs ---------------------------------------------------------------------------------------


def test_a_new_job_is_queued_with_its_spec_and_creator(store):
    before = time.time()
    store.create_job("j1", {"operations": [{"op": "grayscale"}]}, created_by="alice")
    job = store.get_job("j1")
    assert (job.id, job.status, job.spec, job.created_by) == ("j1", "queued", '{"operations": [{"op": "grayscale"}]}',
                                                             "alice")
    assert (job.total, job.done, job.enumerated, job.cancel, job.started_at, job.finished_at) == (0, 0, 0, 0, None, None)
    assert before <= job.created_at <= time.time()
    assert store.get_job("nope") is None


def test_items_are_counted_once_even_when_added_again(store):
    store.create_job("j1", {})
    store.add_items("j1", 0, [("in/a.jpg", "out/a.jpg"), ("in/b.jpg", "out/b.jpg")])
    store.add_items("j1", 1, [("in/b.jpg", "out/b.jpg"), ("in/c.jpg", "out/c.jpg")])  # an interrupted listing, resumed
    assert store.item_count("j1") == 3 and store.get_job("j1").total == 3
    assert store.pending_items("j1", -1, 10) == [(0, "in/a.jpg", "out/a.jpg"), (1, "in/b.jpg", "out/b.jpg"),
                                                 (2, "in/c.jpg", "out/c.jpg")]
    assert store.pending_items("j1", 0, 1) == [(1, "in/b.jpg", "out/b.jpg")]
    assert store.get_job("j1").enumerated == 0
    store.mark_enumerated("j1")
    assert store.get_job("j1").enumerated == 1
    store.create_job("j2", {})
    assert store.item_count("j2") == 0


def test_results_are_recorded_with_the_counters_the_manifest_and_the_owned_record(store):
    store.create_job("j1", {})
    store.add_items("j1", 0, [(f"in/{n}.jpg", f"out/{n}.jpg") for n in "abcd"])
    tiles = ok(out("/r/out/a_0.jpg", size=100, faces=[{"x": 1}]), out("/r/out/a_1.jpg", size=200), input_bytes=1000)
    failed = Report.failure(ErrorCode.DECODE_ERROR, "not an image", input_bytes=30, elapsed_ms=2.0)
    skipped = Report(Status.SKIPPED, 70, [out("/r/out/c.jpg", size=9)])
    store.save_results("j1", [(0, tiles, ["out/a_0.jpg", "out/a_1.jpg"]), (1, failed, []), (2, skipped, ["out/c.jpg"])],
                       PIPE)
    job = store.get_job("j1")
    assert (job.done, job.succeeded, job.failed, job.skipped, job.outputs, job.input_bytes, job.output_bytes) == \
        (3, 1, 1, 1, 2, 1000, 300)
    assert store.pending_items("j1", -1, 10) == [(3, "in/d.jpg", "out/d.jpg")]
    assert store.pending_output_folders("j1") == {"out"}
    total, rows = store.results("j1", 0, 10, None)
    assert total == 3
    first = rows[0]
    assert (first.seq, first.input, first.output, first.status, first.input_bytes, first.error_code,
            first.error_message, first.elapsed_ms) == (0, "in/a.jpg", "out/a.jpg", "ok", 1000, None, None, 12.5)
    assert first.outputs == [{"path": "out/a_0.jpg", "width": 40, "height": 30, "bytes": 100, "faces": [{"x": 1}]},
                             {"path": "out/a_1.jpg", "width": 40, "height": 30, "bytes": 200}]
    assert (rows[1].status, rows[1].error_code, rows[1].error_message, rows[1].input_bytes, rows[1].outputs,
            rows[1].elapsed_ms) == ("error", "decode_error", "not an image", 30, [], 2.0)
    assert rows[2].status == "skipped"
    assert store.expected(["/r/out/a_0.jpg", "/r/out/a_1.jpg"], PIPE).input_hash == "in-hash"
    owned = store.owned(["/r/out/a_0.jpg", "/r/out/c.jpg"])
    assert owned == {"/r/out/a_0.jpg": Owned(100, 111, "j1", 7, 222)}, "the job is named; a skip wrote nothing"
    # a second batch adds to the counters
    store.save_results("j1", [(3, ok(out("/r/out/d.jpg", size=5), input_bytes=50), ["out/d.jpg"])], PIPE)
    job = store.get_job("j1")
    assert (job.done, job.succeeded, job.outputs, job.input_bytes, job.output_bytes) == (4, 2, 3, 1050, 305)
    assert store.pending_items("j1", -1, 10) == [] and store.pending_output_folders("j1") == set()


def test_results_are_paged_and_filtered_by_status(store):
    store.create_job("j1", {})
    store.add_items("j1", 0, [(f"in/{i}.jpg", f"sub/{i % 2}/{i}.jpg") for i in range(6)])
    assert store.results("j1", 0, 10, None) == (0, []), "pending images have no result"
    assert store.pending_output_folders("j1") == {"sub/0", "sub/1"}
    store.save_results("j1", [(i, ok(out(f"/r/{i}.jpg")) if i % 3 else Report.failure(ErrorCode.NOT_FOUND, "gone"),
                               [f"{i}.jpg"]) for i in range(5)], PIPE)
    total, rows = store.results("j1", 1, 2, None)
    assert total == 5 and [r.seq for r in rows] == [1, 2]
    total, rows = store.results("j1", 0, 10, "error")
    assert total == 2 and [r.seq for r in rows] == [0, 3] and {r.error_code for r in rows} == {"not_found"}
    total, rows = store.results("j1", 1, 10, "ok")
    assert total == 3 and [r.seq for r in rows] == [2, 4]
    assert store.pending_output_folders("j1") == {"sub/1"}


def test_an_earlier_image_with_the_same_output_is_named(store):
    store.create_job("j1", {})
    store.create_job("j2", {})
    pairs = [("in/a.jpg", "out/a.jpg"), ("in/a.png", "out/a.jpg"), ("in/b.jpg", "out/b.jpg"), ("in/a.webp", "out/a.jpg")]
    store.add_items("j1", 0, pairs)
    store.add_items("j2", 0, [("other/a.jpg", "out/b.jpg")])
    rows = store.pending_items("j1", -1, 10)
    assert store.earlier_writers("j1", rows) == {1: "in/a.jpg", 3: "in/a.jpg"}
    assert store.earlier_writers("j2", store.pending_items("j2", -1, 10)) == {}, "another job's images do not count"


def test_a_job_starts_resumes_and_finishes_with_its_times(store):
    store.create_job("j1", {})
    store.add_items("j1", 0, [("a", "b"), ("c", "d")])
    store.start_job("j1")
    first = store.get_job("j1")
    assert first.status == "running" and first.started_at == first.resumed_at and first.done_at_resume == 0
    store.save_results("j1", [(0, ok(out("/r/b")), ["b"])], PIPE)
    time.sleep(0.01)
    store.start_job("j1")  # resumed after a restart
    again = store.get_job("j1")
    assert again.started_at == first.started_at and again.resumed_at > first.resumed_at
    assert again.done_at_resume == 1
    store.finish_job("j1", JobStatus.FAILED, "disk full")
    store.finish_job("j1", JobStatus.FAILED)
    done = store.get_job("j1")
    assert (done.status, done.error) == ("failed", "disk full"), "an error once said stays"
    assert done.finished_at >= again.resumed_at


def test_a_cancel_request_is_recorded_on_the_job(store):
    store.create_job("j1", {})
    store.create_job("j2", {})
    store.request_cancel("j1")
    assert (store.get_job("j1").cancel, store.get_job("j2").cancel) == (1, 0)


def test_jobs_are_listed_newest_first_by_creator_and_active_ones_oldest_first(store):
    for i, who in enumerate(["alice", "bob", "alice", None]):
        store.create_job(f"j{i}", {}, created_by=who)
    store.start_job("j2")
    store.finish_job("j1", JobStatus.SUCCEEDED)
    assert [j.id for j in store.list_jobs()] == ["j3", "j2", "j1", "j0"]
    assert [j.id for j in store.list_jobs(limit=2, offset=1)] == ["j2", "j1"]
    assert [j.id for j in store.list_jobs(created_by="alice")] == ["j2", "j0"]
    assert [j.id for j in store.list_jobs(created_by="carol")] == []
    assert [j.id for j in store.active_jobs()] == ["j0", "j2", "j3"]
    assert store.jobs_by_status() == {"queued": 2, "running": 1, "succeeded": 1}


def test_only_a_finished_job_is_deleted_with_its_results_and_not_the_record_of_its_files(store):
    for job_id, status in (("run", None), ("done", JobStatus.SUCCEEDED), ("keep", JobStatus.CANCELLED)):
        store.create_job(job_id, {})
        store.add_items(job_id, 0, [("in/a.jpg", f"out/{job_id}.jpg")])
        store.save_results(job_id, [(0, ok(out(f"/r/out/{job_id}.jpg")), [f"out/{job_id}.jpg"])], PIPE)
        if status is None:
            store.start_job(job_id)
        else:
            store.finish_job(job_id, status)
    assert store.delete_job("run") is False and store.get_job("run") is not None
    assert store.delete_job("nope") is False
    assert store.delete_job("done") is True
    assert store.get_job("done") is None and store.results("done", 0, 10, None) == (0, [])
    assert store.owned(["/r/out/done.jpg"])["/r/out/done.jpg"].job == "done"
    assert store.results("keep", 0, 10, None)[0] == 1


def test_jobs_finished_before_the_retention_period_are_forgotten(store):
    store.create_job("old", {})
    store.finish_job("old", JobStatus.SUCCEEDED)
    store.create_job("running", {})
    store.start_job("running")
    cutoff = time.time() + 0.001
    time.sleep(0.01)
    store.create_job("new", {})
    store.finish_job("new", JobStatus.FAILED)
    assert store.delete_finished_before(cutoff) == 1
    assert [j.id for j in store.list_jobs()] == ["new", "running"]
    assert store.delete_finished_before(cutoff) == 0


def test_deleting_jobs_gives_the_space_back_to_the_file_system(store):
    store.create_job("big", {})
    store.add_items("big", 0, [(f"in/{i:06}-{'x' * 200}.jpg", f"out/{i:06}-{'y' * 200}.jpg") for i in range(5000)])
    store.finish_job("big", JobStatus.CANCELLED)

    def size_on_disk() -> int:
        with store._lock:
            store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return os.path.getsize(store.path)

    full = size_on_disk()
    store.delete_job("big")
    assert size_on_disk() < full / 4
    freelist = sqlite3.connect(store.path).execute("PRAGMA freelist_count").fetchone()[0]
    assert freelist < 10


def test_jobs_are_listed_fifty_at_a_time_unless_asked(store):
    for i in range(55):
        store.create_job(f"j{i:02}", {})
    assert len(store.list_jobs()) == 50
    assert len(store.list_jobs(limit=60)) == 55

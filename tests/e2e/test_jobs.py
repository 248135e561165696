"""SPEC "/jobs": batch jobs through the real server. Lifecycle on a folder with sub-folders,
results paging and filter, refusals, skipping what is done, cancel, and SIGKILL + restart."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from .conftest import TESTIMAGES, Server
from .helpers import (decode, fields, folders, grew, metrics, sample, size_of, snapshot, temp_files,
                      write_slow_inputs)
from .jobs_helpers import (all_results, big_jpeg_bytes, check_decodable, counts_add_up, files_under, job,
                           kill_hard, run_job, server_on, slow_folder, small_jpeg, submit, wait_job, wait_until,
                           write_bytes)
from app.files import TEMP_PREFIX
from app.jobs.runner import temp_tag_of
from tests import images as gen

# The folder every lifecycle test reads: sub-folders two levels deep, a PNG among JPEGs.
TREE = {  # relative path -> (source test image, width, height)
    "astronaut.jpg": ("astronaut.jpg", 512, 512),
    "camera.png": ("camera.png", 512, 512),
    "chelsea.jpg": ("chelsea.jpg", 451, 300),
    "sub/coffee.jpg": ("coffee.jpg", 600, 400),
    "sub/deeper/grace_hopper.jpg": ("grace_hopper.jpg", 512, 600),
}
TOP_LEVEL = [r for r in TREE if "/" not in r]


@pytest.fixture(scope="module")
def tree(server: Server) -> str:
    """``jobtree/`` under the data root, holding TREE."""
    for rel, (src, _w, _h) in TREE.items():
        copy(src, server.path("jobtree") / rel)
    return "jobtree"


def copy(name: str, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TESTIMAGES / name, dst)


def folder_body(src: str, out: str, operations, **source) -> dict:
    return {"source": {"dir": src, **source}, "output_dir": out, "operations": operations}


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- 1. lifecycle on a folder --------------------------------------------------------------------


@pytest.fixture(scope="module")
def lifecycle(server, tree):
    """A recursive folder job with crop=bottom:40: (POST answer, final job, results)."""
    r = server.client.post("/jobs", json=folder_body(tree, "out/lifecycle", ["crop=bottom:40"], pattern="*",
                                                     recursive=True))
    j = wait_job(server, r.json()["id"]) if r.status_code == 202 else None
    return r, j, (all_results(server, j["id"]) if j else None)


def test_post_jobs_answers_202_with_id_status_links_and_location(server, lifecycle):
    r, _j, _res = lifecycle
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["id"] and body["status"] in ("queued", "running"), body
    assert body["links"]["self"] == f"/jobs/{body['id']}", body
    assert body["links"]["results"] == f"/jobs/{body['id']}/results", body
    assert r.headers.get("location", "").endswith(f"/jobs/{body['id']}"), r.headers
    # the links lead somewhere
    assert server.get(body["links"]["self"]).status_code == 200
    assert server.get(body["links"]["results"]).status_code == 200


def test_finished_job_counts_add_up_with_progress_rate_and_timestamps(lifecycle):
    _r, j, _res = lifecycle
    assert j["status"] == "succeeded", j
    assert j["total"] == len(TREE) and j["done"] == len(TREE), j
    assert (j["succeeded"], j["failed"], j["skipped"]) == (len(TREE), 0, 0), j
    counts_add_up(j)
    assert j["progress"] == 1.0, j
    assert j["images_per_second"] is not None and j["images_per_second"] > 0, j
    assert j["created_at"] and j["started_at"] and j["finished_at"], j
    assert ts(j["created_at"]) <= ts(j["started_at"]) <= ts(j["finished_at"]), j
    s = j["summary"]
    assert (s["images"], s["succeeded"], s["failed"], s["skipped"]) == (len(TREE), len(TREE), 0, 0), s
    assert s["outputs"] == len(TREE) and s["input_bytes"] > 0 and s["output_bytes"] > 0, s
    assert s["compression_ratio"] == pytest.approx(s["output_bytes"] / s["input_bytes"], rel=1e-3), s


def test_folder_job_mirrors_relative_paths_and_applies_the_operations(server, lifecycle):
    _r, _j, results = lifecycle
    out = server.path("out/lifecycle")
    assert sorted(files_under(out)) == sorted(TREE), "the outputs must mirror the source tree exactly"
    for rel, (_src, w, h) in TREE.items():
        assert size_of(out / rel) == (w, h - 40), f"{rel}: crop=bottom:40 must cut 40 rows"
    assert temp_files(out) == []
    # the results name those files with their real sizes
    assert sorted(r["input"] for r in results) == sorted(f"jobtree/{rel}" for rel in TREE)
    for res in results:
        rel = res["input"].removeprefix("jobtree/")
        assert res["status"] == "ok" and res["error"] is None, res
        assert res["input_bytes"] == (server.path("jobtree") / rel).stat().st_size, res
        [o] = res["outputs"]
        assert o["path"] == f"out/lifecycle/{rel}", o
        assert (o["width"], o["height"]) == (TREE[rel][1], TREE[rel][2] - 40), o
        assert o["bytes"] == (out / rel).stat().st_size, o


def test_output_format_png_changes_extension_and_format(server, tree):
    j = run_job(server, {**folder_body(tree, "out/as_png", ["grayscale"], recursive=True), "output_format": "png"})
    assert j["status"] == "succeeded" and j["succeeded"] == len(TREE), j
    out = server.path("out/as_png")
    expected = sorted(os.path.splitext(rel)[0] + ".png" for rel in TREE)
    assert sorted(files_under(out)) == expected
    for rel in expected:
        data = (out / rel).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{rel} is not a PNG file"
        img = decode(out / rel)
        assert img.ndim == 2 or img.shape[2] == 1, f"{rel}: grayscale output has colour channels"
    paths = sorted(o["path"] for r in all_results(server, j["id"]) for o in r["outputs"])
    assert paths == [f"out/as_png/{rel}" for rel in expected]


def test_non_recursive_job_ignores_sub_folders(server, tree):
    j = run_job(server, folder_body(tree, "out/flat", ["flip=horizontal"], recursive=False))
    assert j["status"] == "succeeded" and j["total"] == len(TOP_LEVEL), j
    assert sorted(files_under(server.path("out/flat"))) == sorted(TOP_LEVEL)
    assert sorted(r["input"] for r in all_results(server, j["id"])) == sorted(f"jobtree/{r}" for r in TOP_LEVEL)


@pytest.mark.parametrize("pattern, recursive, expected", [
    ("*.png", True, ["camera.png"]),
    ("c*", False, ["camera.png", "chelsea.jpg"]),
    ("*.jpg", True, ["astronaut.jpg", "chelsea.jpg", "sub/coffee.jpg", "sub/deeper/grace_hopper.jpg"]),
    ("*.JPG", True, []),  # the SPEC's pattern is a case-sensitive glob
])
def test_pattern_filters_file_names(server, tree, outdir, pattern, recursive, expected):
    j = run_job(server, folder_body(tree, outdir, ["rotate=90"], pattern=pattern, recursive=recursive))
    assert j["status"] == "succeeded" and j["total"] == len(expected), j
    assert j["progress"] == 1.0, j
    written = files_under(server.path(outdir)) if server.path(outdir).exists() else {}
    assert sorted(written) == sorted(expected)
    for rel in expected:
        _src, w, h = TREE[rel]
        assert size_of(server.path(outdir) / rel) == (h, w), f"{rel}: rotate=90 swaps width and height"


# --- a corrupt file: an error in the results, the others ok, the job `failed` ----------------------


@pytest.fixture(scope="module")
def broken(server):
    """``jobbroken/``: 3 good images, a truncated JPEG, a JPEG cut in its header and a text file."""
    src = server.path("jobbroken")
    copy("astronaut.jpg", src / "astronaut.jpg")
    copy("coffee.jpg", src / "sub" / "coffee.jpg")
    copy("chelsea.jpg", src / "zz_chelsea.jpg")
    gen.truncated_jpeg(src, 0.5, name="truncated.jpg")
    gen.jpeg_header_only(src / "sub", name="header_cut.jpg")
    gen.not_an_image(src, "text", name="notes.jpg")
    good = ["astronaut.jpg", "sub/coffee.jpg", "zz_chelsea.jpg"]
    bad = ["truncated.jpg", "sub/header_cut.jpg", "notes.jpg"]
    j = run_job(server, folder_body("jobbroken", "out/broken", ["crop=bottom:40"], recursive=True))
    return j, good, bad


def test_job_with_corrupt_files_fails_them_and_processes_the_others(server, broken):
    j, good, bad = broken
    assert j["status"] == "failed", f"a job where an image failed must end 'failed': {j}"
    assert (j["total"], j["succeeded"], j["failed"], j["skipped"]) == (6, 3, 3, 0), j
    counts_add_up(j)
    out = server.path("out/broken")
    assert sorted(files_under(out)) == sorted(good), "only the good images have outputs"
    for rel in good:
        check_decodable(out / rel)
    errors = all_results(server, j["id"], status="error")
    assert sorted(r["input"] for r in errors) == sorted(f"jobbroken/{b}" for b in bad)
    for r in errors:
        assert r["status"] == "error" and r["outputs"] == [], r
        assert r["error"]["code"] == "decode_error" and r["error"]["message"], r


def test_job_of_good_images_only_ends_succeeded(lifecycle):
    assert lifecycle[1]["status"] == "succeeded" and lifecycle[1]["failed"] == 0


# --- a job given as an images list ---------------------------------------------------------------


def test_job_with_an_images_list(server, outdir):
    body = {"images": [{"input": "testimages/cyclo1.jpg", "output": f"{outdir}/c1.png"},
                       {"input": "testimages/astronaut.jpg", "output": f"{outdir}/deep/a.jpg"}],
            "operations": ["splitQuadrants=True", {"op": "crop", "bottom": 10}]}
    j = run_job(server, body)
    assert j["status"] == "succeeded", j
    assert (j["total"], j["succeeded"], j["failed"]) == (2, 2, 0), j
    assert j["summary"]["outputs"] == 8, j
    out = server.path(outdir)
    assert sorted(files_under(out)) == sorted([f"c1_{i}.png" for i in range(4)] + [f"deep/a_{i}.jpg" for i in range(4)])
    assert size_of(out / "deep/a_0.jpg") == (256, 246)
    assert (out / "c1_0.png").read_bytes()[:4] == b"\x89PNG"
    res = all_results(server, j["id"])
    assert [r["input"] for r in res] == ["testimages/cyclo1.jpg", "testimages/astronaut.jpg"], "results in job order"
    assert [o["path"] for o in res[1]["outputs"]] == [f"{outdir}/deep/a_{i}.jpg" for i in range(4)]


def test_images_list_job_with_a_missing_input_reports_it_and_fails(server, outdir):
    body = {"images": [{"input": "testimages/nope.jpg", "output": f"{outdir}/n.jpg"},
                       {"input": "testimages/chelsea.jpg", "output": f"{outdir}/c.jpg"}],
            "operations": ["grayscale"]}
    j = run_job(server, body)
    assert j["status"] == "failed" and (j["succeeded"], j["failed"]) == (1, 1), j
    [err] = all_results(server, j["id"], status="error")
    assert err["input"] == "testimages/nope.jpg" and err["error"]["code"] == "not_found", err
    assert sorted(files_under(server.path(outdir))) == ["c.jpg"]


# --- 2. results paging and filter, the job list, 404, refusals -----------------------------------------


@pytest.fixture(scope="module")
def paged(server):
    """``jobpaged/``: 23 small JPEGs in three folders and 2 broken files; the finished job and the inputs."""
    src = server.path("jobpaged")
    inputs = []
    for i in range(23):
        rel = [f"p{i:02d}.jpg", f"a/p{i:02d}.jpg", f"b/c/p{i:02d}.jpg"][i % 3]
        small_jpeg(src / rel, seed=i)
        inputs.append(rel)
    gen.not_an_image(src / "a", "html", name="broken1.jpg")
    gen.empty_file(src / "b", name="broken2.jpg")
    inputs += ["a/broken1.jpg", "b/broken2.jpg"]
    j = run_job(server, folder_body("jobpaged", "out/paged", ["resize=0.5"], recursive=True))
    return j, [f"jobpaged/{r}" for r in inputs]


def results_page(server, job_id, **params):
    r = server.get(f"/jobs/{job_id}/results", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_results_pages_cover_every_image_once_in_a_stable_order(server, paged):
    j, inputs = paged
    assert j["total"] == 25 and j["done"] == 25, j
    whole = results_page(server, j["id"], offset=0, limit=100)
    assert whole["total"] == 25 and len(whole["results"]) == 25, whole
    order = [r["input"] for r in whole["results"]]
    assert sorted(order) == sorted(inputs) and len(set(order)) == 25, "every input exactly once"
    pages = [results_page(server, j["id"], offset=o, limit=10) for o in (0, 10, 20)]
    assert [len(p["results"]) for p in pages] == [10, 10, 5]
    assert all(p["total"] == 25 for p in pages), [p["total"] for p in pages]
    assert [(p["offset"], p["limit"]) for p in pages] == [(0, 10), (10, 10), (20, 10)]
    assert [r["input"] for p in pages for r in p["results"]] == order, "pages must follow the same order"
    assert [r["input"] for r in results_page(server, j["id"], limit=100)["results"]] == order, "order not stable"
    beyond = results_page(server, j["id"], offset=25, limit=10)
    assert beyond["results"] == [] and beyond["total"] == 25
    # a default page holds everything here
    assert [r["input"] for r in results_page(server, j["id"])["results"]] == order


@pytest.mark.parametrize("path", ["/jobs", "/jobs/{id}/results"])
@pytest.mark.parametrize("offset", ["9007199254740992", "99999999999999999999999"])
def test_an_offset_too_large_for_any_client_is_422_not_a_crash(server, paged, path, offset):
    """Found by schemathesis: an offset past SQLite's 64-bit integers used to answer 500."""
    j, _inputs = paged
    r = server.get(path.format(id=j["id"]), params={"offset": offset})
    assert r.status_code == 422, f"{path}?offset={offset}: {r.status_code} {r.text}"
    assert any(d["field"] == "offset" for d in r.json()["detail"]), r.text


@pytest.mark.parametrize("path", ["/jobs", "/jobs/{id}/results"])
def test_the_largest_offset_any_client_holds_is_an_empty_page(server, paged, path):
    j, _inputs = paged
    largest = server.get(path.format(id=j["id"]), params={"offset": str(2 ** 53 - 1)})
    assert largest.status_code == 200 and largest.json()["results" if "results" in path else "jobs"] == []


def test_results_status_filter(server, paged):
    j, _inputs = paged
    err = results_page(server, j["id"], status="error", limit=100)
    assert err["total"] == 2 and len(err["results"]) == 2, err
    assert sorted(r["input"] for r in err["results"]) == ["jobpaged/a/broken1.jpg", "jobpaged/b/broken2.jpg"]
    assert all(r["status"] == "error" and r["error"]["code"] == "decode_error" for r in err["results"]), err
    ok = results_page(server, j["id"], status="ok", limit=100)
    assert ok["total"] == 23 and all(r["status"] == "ok" for r in ok["results"]), ok
    paged_ok = [r["input"] for o in (0, 20) for r in results_page(server, j["id"], status="ok", offset=o,
                                                                   limit=20)["results"]]
    assert paged_ok == [r["input"] for r in ok["results"]]
    assert results_page(server, j["id"], status="skipped")["total"] == 0
    for res in ok["results"]:
        [o] = res["outputs"]
        assert o["path"] == "out/paged/" + res["input"].removeprefix("jobpaged/"), o
        assert server.path(o["path"]).stat().st_size == o["bytes"], o
        assert size_of(server.path(o["path"])) == (o["width"], o["height"]), o


def test_job_resize_half_halves_each_side(server, paged):
    """The paged job ran resize=0.5 on 64x48 JPEGs: every output must be 32x24."""
    j, _inputs = paged
    sizes = {(o["width"], o["height"]) for r in all_results(server, j["id"], status="ok") for o in r["outputs"]}
    on_disk = {size_of(p) for p in server.path("out/paged").rglob("*.jpg")}
    assert sizes == on_disk == {(32, 24)}, f"resize=0.5 of 64x48 gave {sorted(on_disk)} on disk"


@pytest.mark.parametrize("params", [{"status": "broken"}, {"limit": 0}, {"offset": -1}, {"limit": "many"}])
def test_results_with_bad_query_are_422(server, paged, params):
    r = server.get(f"/jobs/{paged[0]['id']}/results", params=params)
    assert r.status_code == 422, r.text


def test_job_list_is_newest_first(server, outdir):
    first = submit(server, {"images": [{"input": "testimages/cyclo1.jpg", "output": f"{outdir}/1.jpg"}]})
    second = submit(server, {"images": [{"input": "testimages/cyclo2.jpg", "output": f"{outdir}/2.jpg"}]})
    wait_job(server, first), wait_job(server, second)
    r = server.get("/jobs")
    assert r.status_code == 200, r.text
    jobs = r.json()["jobs"]
    ids = [j["id"] for j in jobs]
    assert second in ids and first in ids, ids
    assert ids.index(second) < ids.index(first), "the newer job must come first"
    assert ids.index(second) == 0, "the newest job must head the list"
    created = [ts(j["created_at"]) for j in jobs]
    assert created == sorted(created, reverse=True), "jobs must be newest first"
    listed = next(j for j in jobs if j["id"] == first)
    assert listed["status"] == "succeeded" and listed["total"] == 1, listed


@pytest.mark.parametrize("method, path", [("GET", "/jobs/{}"), ("GET", "/jobs/{}/results"),
                                          ("DELETE", "/jobs/{}")])
def test_unknown_job_id_is_404(server, method, path):
    r = server.client.request(method, path.format("0123456789abcdef0123456789abcdef"))
    assert r.status_code == 404, r.text


def _job_ids(server) -> list[str]:
    return [j["id"] for j in server.get("/jobs", params={"limit": 1000}).json()["jobs"]]


@pytest.mark.parametrize("body, status, field", [
    ({"images": [{"input": "testimages/cyclo1.jpg", "output": "out/x/a.jpg"}],
      "source": {"dir": "testimages"}, "output_dir": "out/x"}, 422, None),
    ({"operations": ["grayscale"]}, 422, None),
    ({"source": {"dir": "testimages"}, "operations": ["grayscale"]}, 422, None),
    ({"source": {"dir": "testimages"}, "output_dir": "out/x", "operations": ["emboss=3"]}, 422, "operations[0]"),
    ({"source": {"dir": "testimages"}, "output_dir": "out/x", "operations": ["blur=kernel:4"]}, 422,
     "operations[0].kernel"),
    ({"source": {"dir": "testimages", "recursive": "sometimes"}, "output_dir": "out/x"}, 422, "source.recursive"),
    ({"source": {"dir": "testimages", "colour": "red"}, "output_dir": "out/x"}, 422, "source.colour"),
    ({"source": {"dir": "testimages"}, "output_dir": "out/x", "output_format": "gif"}, 422, "output_format"),
    ({"source": {"dir": "../"}, "output_dir": "out/x"}, 403, "source.dir"),
    ({"source": {"dir": "/etc"}, "output_dir": "out/x"}, 403, "source.dir"),
    ({"source": {"dir": "testimages"}, "output_dir": "../escaped"}, 403, "output_dir"),
    ({"source": {"dir": "testimages/cyclo1.jpg"}, "output_dir": "out/x"}, 422, "source.dir"),
    ({"source": {"dir": "no/such/folder"}, "output_dir": "out/x"}, 422, "source.dir"),
    ({"source": {"dir": "testimages"}, "output_dir": "testimages"}, 422, "output_dir"),
    ({"images": [{"input": "../etc/passwd", "output": "out/x/p.jpg"}]}, 403, "images[0].input"),
    ({"images": [{"input": "testimages/cyclo1.jpg", "output": "testimages/cyclo1.jpg"}]}, 422, "images[0].output"),
], ids=["images_and_source", "neither", "source_without_output_dir", "unknown_op", "bad_param",
        "recursive_not_bool", "unknown_source_key", "unknown_format", "dir_dotdot", "dir_absolute_elsewhere",
        "output_dir_outside", "dir_is_a_file", "dir_missing", "output_dir_is_source", "image_outside",
        "output_is_input"])
def test_invalid_job_is_refused_and_nothing_recorded(server, body, status, field):
    before_ids, before_files, before_dirs = _job_ids(server), snapshot(server.data_root), folders(server.data_root)
    before = metrics(server)
    r = server.post("/jobs", json=body)
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    if field is not None:
        assert field in fields(r.json()), f"the answer should name {field!r}: {r.text}"
    assert _job_ids(server) == before_ids, "a refused job was recorded"
    # Nothing started, and nothing can start later: the server reports no job queued or running
    # (a job runs only from its record), no image in the pool and none finished since.
    after = metrics(server)
    active = [sample(m, "imgsrv_jobs", status=s) for m in (before, after) for s in ("queued", "running")]
    assert active[2:] == active[:2], f"a job became active (queued, running: {active[:2]} -> {active[2:]})"
    assert sample(after, "imgsrv_queue_depth") <= sample(before, "imgsrv_queue_depth"), \
        "images of the refused job are in the pool"
    assert grew(before, after, "imgsrv_images_total") == 0, "images were processed for a refused job"
    assert snapshot(server.data_root) == before_files, "a refused job changed files"
    assert folders(server.data_root) == before_dirs, "a refused job made folders"


# --- 3. a second identical job skips everything; a change is redone -----------------------------------


SKIP_OPS = ["crop=bottom:40", "redact=0,-30,50,30"]


@pytest.fixture(scope="module")
def skiptree(server):
    src = server.path("jobskip")
    for rel, name in [("a.jpg", "astronaut.jpg"), ("b.jpg", "chelsea.jpg"), ("sub/c.jpg", "coffee.jpg"),
                      ("sub/d.png", "camera.png")]:
        copy(name, src / rel)
    body = folder_body("jobskip", "out/skip", SKIP_OPS, recursive=True)
    first = run_job(server, body)
    mtimes = files_under(server.path("out/skip"))
    time.sleep(0.05)  # so that a rewrite would show in the mtimes on coarse clocks
    second_id = submit(server, body)
    second = wait_job(server, second_id)
    return body, first, second, mtimes


def test_second_identical_job_skips_every_image(server, skiptree):
    _body, first, second, mtimes = skiptree
    assert first["status"] == "succeeded" and first["succeeded"] == 4, first
    assert second["status"] == "succeeded", second
    assert (second["total"], second["skipped"], second["succeeded"], second["failed"]) == (4, 4, 0, 0), second
    counts_add_up(second)
    assert files_under(server.path("out/skip")) == mtimes, "a skipped image's output was rewritten"
    results = all_results(server, second["id"])
    assert len(results) == 4 and all(r["status"] == "skipped" for r in results), results


def test_skipped_job_results_name_their_outputs_like_process(server, skiptree):
    """SPEC: job results are "per-image results, as in /process"; /process lists a skipped image's outputs."""
    _body, first, second, _mtimes = skiptree
    done = {r["input"]: r["outputs"] for r in all_results(server, first["id"])}
    skipped = {r["input"]: r["outputs"] for r in all_results(server, second["id"])}
    assert skipped == done, "a skipped image's result should name the outputs it already has"


def test_changed_input_is_redone_and_only_it(server, skiptree):
    body, _first, _second, _mtimes = skiptree
    before = files_under(server.path("out/skip"))
    shutil.copyfile(TESTIMAGES / "grace_hopper.jpg", server.path("jobskip/b.jpg"))  # 512x600 instead of 451x300
    time.sleep(0.05)
    j = run_job(server, body)
    assert j["status"] == "succeeded", j
    assert (j["succeeded"], j["skipped"], j["failed"]) == (1, 3, 0), j
    after = files_under(server.path("out/skip"))
    assert after["b.jpg"] != before["b.jpg"], "the changed image was not redone"
    assert {k: v for k, v in after.items() if k != "b.jpg"} == {k: v for k, v in before.items() if k != "b.jpg"}
    assert size_of(server.path("out/skip/b.jpg")) == (512, 560)
    [redone] = all_results(server, j["id"], status="ok")
    assert redone["input"] == "jobskip/b.jpg", redone


def test_changed_operations_redo_every_image(server, skiptree):
    body, _first, _second, _mtimes = skiptree
    j = run_job(server, {**body, "operations": ["crop=bottom:60"]})
    assert j["status"] == "succeeded", j
    assert (j["succeeded"], j["skipped"]) == (4, 0), j
    assert size_of(server.path("out/skip/sub/c.jpg")) == (600, 340)
    assert size_of(server.path("out/skip/a.jpg")) == (512, 452)
    again = run_job(server, {**body, "operations": ["crop=bottom:60"]})
    assert (again["succeeded"], again["skipped"]) == (0, 4), again


def test_skip_existing_false_redoes_every_image(server, skiptree):
    body, *_ = skiptree
    j = run_job(server, {**body, "operations": ["crop=bottom:60"], "options": {"skip_existing": False}})
    assert j["status"] == "succeeded" and (j["succeeded"], j["skipped"]) == (4, 0), j


# --- 4. cancel ----------------------------------------------------------------------------------------


SLOW_OPS = ["blur=kernel:101"]


def test_cancel_a_running_job(server):
    rels = slow_folder(server.path("jobcancel"), 60)
    job_id = submit(server, folder_body("jobcancel", "out/cancel", SLOW_OPS))
    running = wait_until(server, job_id, lambda j: j["done"] >= 2)
    # what a poller sees while the job runs
    assert running["status"] == "running" and running["total"] == len(rels), running
    assert 0 < running["progress"] < 1 and running["done"] < running["total"], running
    assert running["started_at"] and running["finished_at"] is None, running
    assert running["eta_seconds"] is None or running["eta_seconds"] >= 0, running
    r = server.client.delete(f"/jobs/{job_id}")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled", r.json()
    j = wait_job(server, job_id)
    assert j["status"] == "cancelled", j
    assert j["total"] == len(rels) and 2 <= j["done"] < j["total"], j
    assert j["done"] == j["succeeded"] + j["failed"] + j["skipped"] and j["failed"] == 0, j
    assert j["finished_at"], j
    out = server.path("out/cancel")
    written = files_under(out)
    assert temp_files(out) == [], "a cancelled job left temporary files"
    assert len(written) == j["succeeded"], f"{len(written)} files for {j['succeeded']} recorded images"
    for rel in written:
        check_decodable(out / rel, (2000, 1500))
    results = all_results(server, job_id)
    assert len(results) == j["done"]
    assert sorted(o["path"] for r in results for o in r["outputs"]) == sorted(f"out/cancel/{n}" for n in written)
    # the job has really stopped, with nothing left to write: it has ended, and the server
    # reports no image in its pool and no job running
    m = metrics(server)
    assert sample(m, "imgsrv_queue_depth") == 0 and sample(m, "imgsrv_jobs", status="running") == 0, \
        "images of the cancelled job are still in the pool"
    assert files_under(out) == written, "images were still processed after the cancel"
    # DELETE again: the job has ended, so it is forgotten; it answers the job as it was
    again = server.client.delete(f"/jobs/{job_id}")
    assert again.status_code == 200, again.text
    for key in ("status", "done", "succeeded", "failed", "skipped", "finished_at"):
        assert again.json()[key] == j[key], f"DELETE on an ended job changed {key}: {j[key]} -> {again.json()[key]}"
    assert server.client.get(f"/jobs/{job_id}").status_code == 404
    assert files_under(out) == written, "forgetting a job never touches its files"


def test_deleting_a_finished_job_forgets_it_and_changes_no_file(server, lifecycle):
    _r, j, _res = lifecycle
    before = files_under(server.path("out/lifecycle"))
    r = server.client.delete(f"/jobs/{j['id']}")
    assert r.status_code == 200, r.text
    for key in ("status", "total", "done", "succeeded", "failed", "skipped", "finished_at"):
        assert r.json()[key] == j[key], f"the answer is not the job as it was: {key}"
    assert server.client.get(f"/jobs/{j['id']}").status_code == 404
    assert server.client.get(f"/jobs/{j['id']}/results").status_code == 404
    assert j["id"] not in [x["id"] for x in server.get("/jobs").json()["jobs"]]
    assert server.client.delete(f"/jobs/{j['id']}").status_code == 404, "a forgotten job is deleted once"
    assert files_under(server.path("out/lifecycle")) == before


def test_a_small_job_is_not_starved_by_a_big_one(server, outdir):
    """Issue 3: several jobs share the pool; a small job submitted during a big one ends before it."""
    slow_folder(server.path("jobfair"), 40)
    big = submit(server, folder_body("jobfair", f"{outdir}/big", SLOW_OPS))
    try:
        wait_until(server, big, lambda j: j["done"] >= 1)
        small = run_job(server, {"images": [{"input": "testimages/cyclo1.jpg", "output": f"{outdir}/small/1.jpg"},
                                            {"input": "testimages/cyclo2.jpg", "output": f"{outdir}/small/2.jpg"}],
                                 "operations": ["grayscale"]})
        big_now = job(server, big)
    finally:
        server.client.delete(f"/jobs/{big}")
    assert small["status"] == "succeeded" and small["succeeded"] == 2, small
    assert big_now["status"] == "running" and big_now["done"] < big_now["total"], \
        f"the small job only ended after the big one: {big_now}"


def test_a_running_job_yields_the_pool_to_a_request(server_factory):
    """README: jobs' images share the worker queue with requests "and yield to them". A job keeps
    twice the pool's two workers' images in it, less the requests' images in flight: once the
    job's images queued ahead of a 4-image request are done (its first output is written), the
    queue depth (the request's images and the job's) stays at 4, where a job that did not yield
    would keep its 4 beside them (6 or 7)."""
    srv = server_factory(workers=2, max_jobs=1)
    slow = write_slow_inputs(srv, 5)
    for i in range(12):
        write_bytes(srv.path(f"yieldsrc/{i:02d}.jpg"), srv.path(slow[0]).read_bytes())
    ops = ["blur=kernel:151"]
    job_id = submit(srv, folder_body("yieldsrc", "yieldout", ops))
    wait_until(srv, job_id, lambda j: j["done"] >= 1)
    outputs = [srv.path(f"yieldreq/{i}.jpg") for i in range(4)]
    body = {"images": [{"input": slow[i + 1], "output": f"yieldreq/{i}.jpg"} for i in range(4)], "operations": ops}
    samples = []  # (request outputs written, queue depth), in that order: the depth is read after the count
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(srv.client.post, "/process", json=body)
        while not pending.done():
            written = sum(o.exists() for o in outputs)
            samples.append((written, sample(metrics(srv), "imgsrv_queue_depth")))
            time.sleep(0.03)
        answer = pending.result()
    still = job(srv, job_id)
    srv.client.delete(f"/jobs/{job_id}")
    assert answer.status_code == 200 and answer.json()["summary"]["succeeded"] == 4, answer.text
    assert still["status"] == "running", f"the job ended before the request: nothing was tested {still}"
    while_served = [depth for written, depth in samples if 1 <= written < 4]
    assert while_served, f"the request's images were never seen between its first and last output: {samples}"
    # one more than 4: an image written a moment before the pool counts it finished
    assert max(while_served) <= 2 * 2 + 1, \
        f"the job kept its images in the pool beside the request's (queue depths {while_served})"


GRACE_COUNT = 12
GRACE_OPS = ["blur=kernel:255"] * 3  # about a second per 2000x1500 image: a job of 12 cannot end within a SIGTERM


def _inode_mtime(folder: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (inode, mtime_ns) of every file under ``folder``: a rewrite changes both."""
    return {rel: ((st := (folder / rel).stat()).st_ino, st.st_mtime_ns) for rel in files_under(folder)}


def test_job_goes_on_after_a_graceful_restart(launcher):
    """README: "on SIGTERM or Ctrl-C they finish their images in flight and resume at the next start".

    SIGTERM while the pool holds images of a job that cannot end in the meantime: the server
    exits (cleanly, without the job ended) once the images in flight are written whole and
    recorded; the next server on the same data root resumes at that count, redoes none of
    them (same inode and mtime) and does the rest, each input once.
    """
    first = launcher.start("graceful", workers=2)
    root = first.data_root
    out = root / "graceout"
    rels = slow_folder(root / "gracesrc", GRACE_COUNT)
    job_id = submit(first, folder_body("gracesrc", "graceout", GRACE_OPS))
    wait_until(first, job_id, lambda j: j["done"] >= 2)
    recorded = {r["input"]: r for r in all_results(first, job_id)}
    at_term = files_under(out)
    first.client.close()  # no idle connection for the shutdown to wait on
    first.proc.send_signal(signal.SIGTERM)
    try:
        code = first.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        code = None
    launcher.stop(first)
    assert code == 0, f"the server did not exit cleanly within 60 s of SIGTERM (exit code {code})"
    after_exit = _inode_mtime(out)
    in_flight = sorted(set(after_exit) - set(at_term))
    print(f"at SIGTERM: {len(recorded)} recorded, {len(at_term)} written; {len(in_flight)} finished after it")
    assert len(recorded) >= 2 and set(at_term) >= {r.removeprefix("gracesrc/") for r in recorded}, (recorded, at_term)
    assert len(after_exit) < GRACE_COUNT, \
        f"the job ended before the server exited ({len(after_exit)}/{GRACE_COUNT} written): SIGTERM did not stop it"
    assert in_flight, "no image was written after SIGTERM: the images in flight did not finish"
    # the pool holds at most twice its two workers' images of the job; an image per worker may end
    # and be replaced in the tenth of a second before the server's shutdown reaches the job
    assert len(in_flight) <= 2 * 2 + 2, \
        f"{len(in_flight)} images written after SIGTERM: the job went on taking new images"
    assert temp_files(out) == [], "the images in flight left temporary files"
    for rel in after_exit:  # whole files, not cut short by the exit
        check_decodable(out / rel, (2000, 1500))

    second = server_on(launcher, root, "graceful_restart", workers=2)
    try:
        j = wait_job(second, job_id)
        results = all_results(second, job_id)
        resumed = re.search(rf"resuming job {job_id} at (\d+)/(\d+) images", second.log())
    finally:
        launcher.stop(second)
    assert resumed, "the next server did not resume the job"
    assert (int(resumed[1]), int(resumed[2])) == (len(after_exit), GRACE_COUNT), \
        f"resumed at {resumed[1]}/{resumed[2]}: every image written before the exit, in flight ones too, " \
        f"must be recorded ({len(after_exit)})"
    assert j["status"] == "succeeded", j
    assert (j["total"], j["succeeded"], j["failed"], j["skipped"]) == (GRACE_COUNT, GRACE_COUNT, 0, 0), j
    counts_add_up(j)
    by_input = {r["input"]: r for r in results}
    assert len(results) == len(by_input) == GRACE_COUNT, "each input once"
    assert sorted(by_input) == sorted(f"gracesrc/{r}" for r in rels)
    for inp, row in recorded.items():
        assert by_input[inp] == row, f"the result of {inp}, recorded before SIGTERM, changed after the restart"
    final = _inode_mtime(out)
    assert sorted(final) == sorted(rels)
    for rel, stamp in after_exit.items():
        assert final[rel] == stamp, f"{rel}, written before the exit, was written again after the restart"
    for r in results:
        [o] = r["outputs"]
        assert (o["width"], o["height"]) == (2000, 1500) and o["bytes"] == (root / o["path"]).stat().st_size, o
    for rel in set(final) - set(after_exit):
        check_decodable(out / rel, (2000, 1500))
    assert temp_files(out) == []


# --- 5. SIGKILL mid-job and restart on the same data root --------------------------------------------


CRASH_COUNT = 24


@pytest.fixture(scope="module")
def crash(launcher):
    """A slow folder job, the server and its pool SIGKILLed mid-job, a new server on the same data root.

    After the kill a temporary file is planted where a writer killed mid-write would leave it.
    """
    first = launcher.start("crash", workers=2)
    root = first.data_root
    rels = slow_folder(root / "crashsrc", CRASH_COUNT, sub_every=5)
    gen.jpeg_header_only(root / "crashsrc" / "sub", name="zz_broken.jpg")
    rels.append("sub/zz_broken.jpg")
    job_id = submit(first, folder_body("crashsrc", "crashout", SLOW_OPS, recursive=True))
    wait_until(first, job_id, lambda j: j["done"] >= 5)
    before = {r["input"]: r for r in all_results(first, job_id)}
    recorded_outputs = {o["path"]: first.path(o["path"]).stat().st_mtime_ns
                        for r in before.values() for o in r["outputs"]}
    pids = kill_hard(first)
    assert len(pids) >= 3, "expected the server, its fork server and pool workers"
    launcher.stop(first)
    assert all(not _alive(p) for p in pids), "a process of the killed server survived"
    # what a writer of this job killed mid-write leaves beside an output it had not recorded, and a
    # file another writer (another job, still running) is writing in the same folder
    # named as a writer of the job names them: the job's tag, the task's own, then a random part
    planted = write_bytes(root / "crashout" / f"{TEMP_PREFIX}{temp_tag_of(job_id)}0a1b2c3d-0a1b2c3d4e5f",
                          big_jpeg_half())
    foreign = write_bytes(root / "crashout" / f"{TEMP_PREFIX}{temp_tag_of('f' * 32)}0a1b2c3d-0a1b2c3d4e5f",
                          big_jpeg_half())
    second = server_on(launcher, root, "crash_restart", workers=2)
    final = wait_job(second, job_id)
    results = all_results(second, job_id)
    yield dict(server=second, job_id=job_id, rels=rels, before=before, recorded_outputs=recorded_outputs,
               final=final, results=results, planted=planted, foreign=foreign)
    launcher.stop(second)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def big_jpeg_half() -> bytes:
    data = big_jpeg_bytes(0)
    return data[: len(data) // 2]


def test_job_goes_on_by_itself_after_a_kill_and_accounts_for_every_image(crash):
    j, rels = crash["final"], crash["rels"]
    assert len(crash["before"]) < len(rels), "the kill came after the job had ended: nothing was tested"
    assert j["status"] == "failed", f"the job (one broken file) must end 'failed' after the restart: {j}"
    assert j["total"] == len(rels), j
    counts_add_up(j)
    assert j["failed"] == 1, j
    assert j["succeeded"] + j["skipped"] == len(rels) - 1, j
    assert j["progress"] == 1.0, j


def test_resumed_job_has_each_input_once_in_its_results(crash):
    inputs = [r["input"] for r in crash["results"]]
    assert len(inputs) == len(set(inputs)), f"duplicated results: {sorted(i for i in inputs if inputs.count(i) > 1)}"
    assert sorted(inputs) == sorted(f"crashsrc/{r}" for r in crash["rels"])


def test_resumed_job_outputs_are_complete_and_decodable(crash):
    srv = crash["server"]
    out = srv.path("crashout")
    written = files_under(out)
    expected = sorted(r for r in crash["rels"] if not r.endswith("zz_broken.jpg"))
    assert sorted(n for n in written if not os.path.basename(n).startswith(".imgsrv-tmp-")) == expected
    for rel in expected:
        check_decodable(out / rel, (2000, 1500))
    for r in crash["results"]:
        for o in r["outputs"]:
            assert srv.path(o["path"]).stat().st_size == o["bytes"], o


def test_images_recorded_before_the_kill_are_not_redone(crash):
    srv, before = crash["server"], crash["before"]
    after = {r["input"]: r for r in crash["results"]}
    assert len(before) >= 5
    for inp, row in before.items():
        assert after[inp] == row, f"the result of {inp}, recorded before the kill, changed after the restart"
    for path, mtime in crash["recorded_outputs"].items():
        assert srv.path(path).stat().st_mtime_ns == mtime, f"{path} was written again after the restart"


def test_no_job_stays_running_after_the_restart(crash):
    jobs = crash["server"].get("/jobs").json()["jobs"]
    assert [j["status"] for j in jobs if j["status"] in ("queued", "running")] == []


def test_no_temp_file_of_the_resumed_job_is_left(crash):
    left = [p for p in temp_files(crash["server"].path("crashout"))
            if p not in (str(crash["planted"]), str(crash["foreign"]))]
    assert left == [], f"temporary files left: {left}"


def test_temp_file_of_a_writer_killed_mid_write_is_cleaned_up_on_resume(crash):
    """A SIGKILL mid-write leaves ``.imgsrv-tmp-*`` beside the output; the resumed job's folder is cleaned."""
    assert not crash["planted"].exists(), \
        f"{crash['planted'].name} (what a writer killed mid-write leaves) is still in the output folder"
    assert crash["foreign"].read_bytes() == big_jpeg_half(), "another writer's temporary file was removed"

"""SPEC "Errors": every row of the table, and that a refused request writes nothing."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests import images as gen

from .conftest import Server
from .helpers import ALL_OPERATIONS, entry, folders, snapshot, temp_files, wait_until_busy, write_slow_inputs

GOOD = "testimages/cyclo1.jpg"
OTHER = "testimages/cyclo2.jpg"


def refused(server: Server, status: int, body=None, *, content: bytes | None = None,
            headers: dict | None = None, path: str = "/process", field: str | None = None) -> httpx.Response:
    """POST and check the refusal: the status, the field named (in ``detail`` and in the text),
    and that no file under the data root was created, changed or removed."""
    before, dirs_before = snapshot(server.data_root), folders(server.data_root)
    if content is not None:
        r = server.client.post(path, content=content, headers=headers or {"content-type": "application/json"})
    else:
        r = server.client.post(path, json=body)
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    if field is not None:
        e = entry(r.json(), field)
        assert e.get("msg"), f"the entry naming {field} does not say why: {e}"
        assert field in r.text
    assert snapshot(server.data_root) == before, "a refused request changed files under the data root"
    assert folders(server.data_root) == dirs_before, "a refused request made folders"
    return r


def body(images, operations=None, **extra):
    b = {"images": images, **extra}
    if operations is not None:
        b["operations"] = operations
    return b


# --- 422: body not JSON, wrong types, unknown operation, parameter out of range -------------


@pytest.mark.parametrize("content", [b"not json{", b'{"images": [', b"\xff\xfe\x00garbage"],
                         ids=["text", "truncated", "binary"])
def test_body_not_json_is_422_and_writes_nothing(server, content):
    r = refused(server, 422, content=content)
    assert r.json()["detail"], r.text


def test_body_not_json_names_the_body_and_says_why(server):
    r = refused(server, 422, content=b"not json{")
    e = r.json()["detail"][0]
    assert "json" in e["msg"].lower(), e
    assert e["field"] == "body", f"a body that is not JSON should be named 'body', not {e['field']!r}"


@pytest.mark.parametrize("content", ["[1, 2]", "5", "null", "\"text\"", ""])
def test_a_body_that_is_not_an_object_gets_the_same_422_on_every_json_route(server, content):
    """/process, /items/, /plan and /jobs read their bodies themselves (in chunks); /compare lets
    FastAPI do it. A client sees one answer for the same mistake whichever route it calls."""
    answers = {}
    for path in ("/compare", "/process", "/items/", "/plan", "/jobs"):
        r = server.post(path, content=content, headers={"content-type": "application/json"})
        assert r.status_code == 422, f"{path}: {r.status_code} {r.text}"
        answers[path] = r.json()
    expected = answers.pop("/compare")
    assert expected["detail"][0]["field"] == "body", expected
    assert all(answer == expected for answer in answers.values()), (expected, answers)


def test_a_long_image_list_names_every_bad_image_not_only_the_first_chunks(server):
    """A list longer than one validation chunk (500) still gets one 422 naming every bad entry."""
    images = [{"input": GOOD, "output": f"long/{i}.jpg"} for i in range(900)]
    images[3]["input"], images[899]["output"] = 5, ["long/x.jpg"]
    r = server.post("/plan", json=body(images))
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["detail"]] == ["images[3].input", "images[899].output"], r.text


@pytest.mark.parametrize("bad, field", [
    ({"images": "testimages/cyclo1.jpg"}, "images"),
    ({"images": [{"input": 5, "output": "o/x.jpg"}]}, "images[0].input"),
    ({"images": [{"input": GOOD, "output": ["o/x.jpg"]}]}, "images[0].output"),
    ({"images": [{"input": GOOD}]}, "images[0].output"),
    ({"images": [{"input": GOOD, "output": "o/x.jpg", "colour": "red"}]}, "images[0].colour"),
    ({"images": [{"input": GOOD, "output": "o/x.jpg"}], "operations": 5}, "operations"),
    ({"images": [{"input": GOOD, "output": "o/x.jpg"}], "operations": ["resize=2", 5]}, "operations[1]"),
    ({"images": [{"input": GOOD, "output": "o/x.jpg"}], "operations": ["blur=five"]}, "operations[0].kernel"),
    ({"images": [{"input": GOOD, "output": "o/x.jpg"}], "options": {"skip_existing": "maybe"}},
     "options.skip_existing"),
    ({"images": [{"input": GOOD, "output": "o/x.jpg"}], "options": {"metadata": "drop"}}, "options.metadata"),
    ({"operations": ["resize=2"]}, "images"),
    ({"images": []}, "images"),
    ([{"input": GOOD, "output": "o/x.jpg"}], "body"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_wrong_types_are_422_naming_the_field(server, bad, field):
    refused(server, 422, bad, field=field)


@pytest.mark.parametrize("op", ["emboss=3", {"op": "emboss", "amount": 3}, "Emboss"],
                         ids=["string", "object", "bare"])
def test_unknown_operation_is_422_listing_the_valid_names(server, outdir, op):
    r = refused(server, 422, body([{"input": GOOD, "output": f"{outdir}/x.jpg"}], ["resize=0.5", op]),
                field="operations[1]")
    msg = entry(r.json(), "operations[1]")["msg"]
    assert "emboss" in msg.lower()
    for name in ALL_OPERATIONS:
        assert name in msg, f"{name} missing from the list of valid operations: {msg}"


@pytest.mark.parametrize("operations, field", [
    (["resize=2", "grayscale", {"op": "blur", "kernel": 4}], "operations[2].kernel"),
    (["resize=2", "grayscale", "blur=4"], "operations[2].kernel"),
    (["resize=2", "grayscale", "blur=kernel:257"], "operations[2].kernel"),
    (["resize=2", "grayscale", {"op": "blur", "kernel": -1}], "operations[2].kernel"),
    (["quality=101"], "operations[0].quality"),
    ([{"op": "encode", "quality": 0}], "operations[0].quality"),
    (["encode=compression:10"], "operations[0].compression"),
    (["resize=0"], "operations[0].scale"),
    (["grayscale", "resize=17"], "operations[1].scale"),
    ([{"op": "resize", "width": 0}], "operations[0].width"),
    (["split=65x2"], "operations[0].rows"),
    (["split=rows:2,cols:0"], "operations[0].cols"),
    ([{"op": "rotate", "angle": 45}], "operations[0].angle"),
    (["flip=diagonal"], "operations[0].axis"),
    (["threshold=300"], "operations[0].value"),
    (["threshold=block_size:4,method:adaptive_mean"], "operations[0].block_size"),
    (["crop=0,0,0,10"], "operations[0].width"),
    (["crop=top:-1"], "operations[0].top"),
    (["redact=x:0,y:0,width:10,height:10,color:[0,0,256]"], "operations[0].color[2]"),
    (["redact=x:0,y:0,width:10,height:10,mode:smudge"], "operations[0].mode"),
    (["faces=action:blur,min_neighbors:-1"], "operations[0].min_neighbors"),
    (["faces=action:sing"], "operations[0].action"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_parameter_out_of_range_is_422_naming_the_field(server, outdir, operations, field):
    refused(server, 422, body([{"input": GOOD, "output": f"{outdir}/x.jpg"}], operations), field=field)


def test_string_and_object_forms_give_the_same_error(server, outdir):
    img = [{"input": GOOD, "output": f"{outdir}/x.jpg"}]
    a = refused(server, 422, body(img, ["grayscale", "blur=4"])).json()["detail"]
    b = refused(server, 422, body(img, ["grayscale", {"op": "blur", "kernel": 4}])).json()["detail"]
    assert [(e["field"], e["msg"]) for e in a] == [(e["field"], e["msg"]) for e in b]


def test_an_unsupported_output_extension_is_422(server, outdir):
    refused(server, 422, body([{"input": GOOD, "output": f"{outdir}/x.gif"}]), field="images[0].output")


def test_a_bad_later_image_refuses_the_whole_request(server, outdir):
    """The first image is fine; the second's bad path refuses everything: not even the first is written."""
    refused(server, 422, body([{"input": GOOD, "output": f"{outdir}/a.jpg"},
                               {"input": OTHER, "output": f"{outdir}/b.gif"}]), field="images[1].output")
    assert not server.path(outdir).exists()


# --- 403: a path outside the data root ------------------------------------------------------


@pytest.fixture
def outside(server) -> Path:
    """A folder beside the data root (outside it) holding a real image."""
    d = server.data_root.parent / "outside"
    d.mkdir(exist_ok=True)
    img = d / "outside.jpg"
    if not img.exists():
        img.write_bytes((server.data_root / GOOD).read_bytes())
    return d


def outside_files(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def test_input_with_dotdot_is_403(server, outdir, outside):
    r = refused(server, 403, body([{"input": "../outside/outside.jpg", "output": f"{outdir}/x.jpg"}]),
                field="images[0].input")
    assert "outside" in entry(r.json(), "images[0].input")["msg"]


def test_input_dotdot_inside_a_path_is_403(server, outdir, outside):
    refused(server, 403, body([{"input": "testimages/../../outside/outside.jpg", "output": f"{outdir}/x.jpg"}]),
            field="images[0].input")


def test_input_absolute_elsewhere_is_403(server, outdir, outside):
    refused(server, 403, body([{"input": str(outside / "outside.jpg"), "output": f"{outdir}/x.jpg"}]),
            field="images[0].input")


def test_input_absolute_system_file_is_403(server, outdir):
    refused(server, 403, body([{"input": "/etc/hostname", "output": f"{outdir}/x.jpg"}]), field="images[0].input")


def test_input_symlink_leading_out_is_403(server, outdir, outside):
    link_dir = server.path(outdir)
    link_dir.mkdir(parents=True)
    (link_dir / "escape.jpg").symlink_to(outside / "outside.jpg")
    refused(server, 403, body([{"input": f"{outdir}/escape.jpg", "output": f"{outdir}/x.jpg"}]),
            field="images[0].input")


def test_second_image_outside_is_403_naming_it_and_the_first_is_not_written(server, outdir, outside):
    refused(server, 403, body([{"input": GOOD, "output": f"{outdir}/ok.jpg"},
                               {"input": "../outside/outside.jpg", "output": f"{outdir}/x.jpg"}]),
            field="images[1].input")
    assert not server.path(outdir).exists()


def test_output_with_dotdot_is_403_and_nothing_is_written_outside(server, outside):
    before = outside_files(outside)
    refused(server, 403, body([{"input": GOOD, "output": "../outside/written.jpg"}]), field="images[0].output")
    assert outside_files(outside) == before


def test_output_absolute_elsewhere_is_403(server, outside):
    before = outside_files(outside)
    refused(server, 403, body([{"input": GOOD, "output": str(outside / "sub" / "written.jpg")}]),
            field="images[0].output")
    assert outside_files(outside) == before


def test_output_through_a_symlinked_folder_leading_out_is_403(server, outdir, outside):
    server.path(outdir).mkdir(parents=True)
    server.path(outdir + "/linkdir").symlink_to(outside, target_is_directory=True)
    before = outside_files(outside)
    refused(server, 403, body([{"input": GOOD, "output": f"{outdir}/linkdir/written.jpg"}], ["splitQuadrants=True"]),
            field="images[0].output")
    assert outside_files(outside) == before


def test_output_that_is_a_symlink_leading_out_is_403(server, outdir, outside):
    server.path(outdir).mkdir(parents=True)
    server.path(f"{outdir}/link.jpg").symlink_to(outside / "target.jpg")
    before = outside_files(outside)
    refused(server, 403, body([{"input": GOOD, "output": f"{outdir}/link.jpg"}]), field="images[0].output")
    assert outside_files(outside) == before


def test_absolute_paths_inside_the_root_are_accepted(server, outdir):
    res = server.ok(body([{"input": str(server.path(GOOD)), "output": str(server.path(f"{outdir}/abs.png"))}]))
    assert res["results"][0]["status"] == "ok", res
    assert server.path(f"{outdir}/abs.png").is_file()


# --- 422: output equal to its input, two images with the same output ------------------------


@pytest.mark.parametrize("spelling", [
    GOOD, "./testimages/../testimages/cyclo1.jpg", "testimages//cyclo1.jpg", "testimages/./cyclo1.jpg", "ABS"])
def test_output_equal_to_input_is_422(server, spelling):
    if spelling == "ABS":
        spelling = str(server.path(GOOD))
    refused(server, 422, body([{"input": GOOD, "output": spelling}], ["grayscale"]), field="images[0].output")


def test_output_equal_to_input_through_a_symlink_is_refused(server, outdir):
    server.path(outdir).mkdir(parents=True)
    server.path(f"{outdir}/alias.jpg").symlink_to(server.path(GOOD))
    refused(server, 422, body([{"input": GOOD, "output": f"{outdir}/alias.jpg"}], ["grayscale"]),
            field="images[0].output")


def test_two_images_with_the_same_output_is_422(server, outdir):
    refused(server, 422, body([{"input": GOOD, "output": f"{outdir}/same.jpg"},
                               {"input": OTHER, "output": f"{outdir}/same.jpg"}]), field="images[1].output")


def test_two_spellings_of_the_same_output_is_422(server, outdir):
    refused(server, 422, body([{"input": GOOD, "output": f"{outdir}/same.jpg"},
                               {"input": OTHER, "output": f"{outdir}/./sub/../same.jpg"}]), field="images[1].output")


def test_two_images_with_the_same_output_of_a_split_is_422(server, outdir):
    """Both would write same_0.jpg .. same_3.jpg."""
    refused(server, 422, body([{"input": GOOD, "output": f"{outdir}/same.jpg"},
                               {"input": OTHER, "output": f"{outdir}/same.jpg"}], ["split=True"]),
            field="images[1].output")


def test_an_output_overwriting_another_images_input_is_422(server, outdir):
    refused(server, 422, body([{"input": GOOD, "output": f"{outdir}/x.jpg"},
                               {"input": OTHER, "output": GOOD}]))


# --- 413: more images than IMGSRV_MAX_IMAGES_PER_REQUEST, an upload over the limit ----------


def test_more_images_than_the_limit_is_413_and_writes_nothing(server_factory):
    s = server_factory(max_images_per_request=2)
    images = [{"input": GOOD, "output": f"out/{i}.jpg"} for i in range(3)]
    r = refused(s, 413, body(images, ["grayscale"]))
    assert "2" in r.text, r.text
    r = refused(s, 413, body(images, ["grayscale"]), path="/plan")
    # at the limit it is served
    res = s.ok(body(images[:2], ["grayscale"]))
    assert [x["status"] for x in res["results"]] == ["ok", "ok"]


def test_an_upload_over_the_limit_is_413(server_factory):
    s = server_factory(max_upload_bytes=10_000)
    data = (s.data_root / OTHER).read_bytes()
    assert len(data) > 10_000
    before = snapshot(s.data_root)
    r = s.client.post("/render", files={"file": ("cyclo2.jpg", data, "image/jpeg")},
                      data={"operations": '["grayscale"]'})
    assert r.status_code == 413, f"POST /render with {len(data)} bytes over a 10000-byte limit: {r.status_code} {r.text}"
    assert snapshot(s.data_root) == before


# --- 429: the worker queue is full -----------------------------------------------------------


def test_queue_full_is_429_with_retry_after_and_writes_nothing(server_factory):
    s = server_factory(workers=1, max_queue=0)
    images = [{"input": f"testimages/{n}", "output": f"out/{n}"} for n in ("cyclo1.jpg", "cyclo2.jpg", "coffee.jpg")]
    r = refused(s, 429, body(images, ["grayscale"]))
    retry = r.headers.get("retry-after")
    assert retry is not None, f"no Retry-After header: {dict(r.headers)}"
    assert retry.isdigit() and int(retry) >= 1, retry
    # one image fits the one worker: served
    res = s.ok(body(images[:1], ["grayscale"]))
    assert res["results"][0]["status"] == "ok"
    assert s.path("out/cyclo1.jpg").is_file()
    # the plan is not queued work
    assert s.post("/plan", json=body(images, ["grayscale"])).status_code == 200


def test_queue_full_counts_images_of_other_requests(server_factory):
    """One worker, no waiting room: while it works on one request, another is refused; afterwards served."""
    s = server_factory(workers=1, max_queue=0)
    (slow,) = write_slow_inputs(s, 1)
    s.ok(body([{"input": GOOD, "output": "warm/a.jpg"}]))  # the pool is up
    workers = s.pool_workers(1)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(s.client.post, "/process", json=body([{"input": slow, "output": "out/slow.jpg"}],
                                                                    ["blur=kernel:255"]))
        assert wait_until_busy(workers, pending) is not None, "the worker never started on the slow image"
        r = refused(s, 429, body([{"input": OTHER, "output": "out/other.jpg"}], ["grayscale"]))
        assert r.headers.get("retry-after", "").isdigit()
        first = pending.result(timeout=180)
    assert first.status_code == 200 and first.json()["results"][0]["status"] == "ok", first.text
    res = s.ok(body([{"input": OTHER, "output": "out/other.jpg"}], ["grayscale"]))
    assert res["results"][0]["status"] == "ok"


def test_a_full_queue_refuses_before_reading_the_body(server_factory):
    """Under overload the refusal is cheap: the body is not parsed (a broken body still gets 429),
    an upload is not read (429, not 413), and the routes that need no worker keep answering."""
    s = server_factory(workers=1, max_queue=0, max_upload_bytes=10_000)
    (slow,) = write_slow_inputs(s, 1)
    s.ok(body([{"input": GOOD, "output": "warm/a.jpg"}]))
    workers = s.pool_workers(1)
    before = snapshot(s.data_root)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(s.client.post, "/process", json=body([{"input": slow, "output": "out/slow.jpg"}],
                                                                    ["blur=kernel:255"]))
        assert wait_until_busy(workers, pending) is not None, "the worker never started on the slow image"
        for path in ("/process", "/items/"):
            r = s.client.post(path, content=b'{"images": [', headers={"content-type": "application/json"})
            assert r.status_code == 429, f"{path} with a full queue and a broken body: {r.status_code} {r.text}"
            assert r.json()["code"] == "queue_full" and r.headers["retry-after"].isdigit(), r.text
        big = (s.data_root / OTHER).read_bytes()
        r = s.client.post("/render", files={"file": ("cyclo2.jpg", big, "image/jpeg")},
                          data={"operations": '["grayscale"]'})
        assert r.status_code == 429, f"/render over the upload limit with a full queue: {r.status_code} {r.text}"
        r = s.client.post("/compare", json={"a": GOOD, "b": OTHER})
        assert r.status_code == 429, r.text
        assert s.client.get("/health").status_code == 200
        assert s.post("/plan", json=body([{"input": OTHER, "output": "out/other.jpg"}])).status_code == 200
        first = pending.result(timeout=180)
    assert first.status_code == 200 and first.json()["results"][0]["status"] == "ok", first.text
    metrics = s.client.get("/metrics").text
    shed = [line for line in metrics.splitlines() if line.startswith("imgsrv_http_requests_total")
            and 'status="429"' in line]
    assert any('route="/render"' in line for line in shed), shed
    after = snapshot(s.data_root)
    assert set(after) - set(before) == {"out/slow.jpg"}, sorted(set(after) - set(before))


# --- per-image errors: HTTP 200, the other images processed ---------------------------------


def check_partial(res: dict, bad: int, code: str, n: int) -> None:
    statuses = [r["status"] for r in res["results"]]
    assert res["results"][bad]["status"] == "error", statuses
    assert res["results"][bad]["error"]["code"] == code, res["results"][bad]
    assert res["results"][bad]["error"]["message"]
    assert res["results"][bad]["outputs"] == []
    assert all(s == "ok" for i, s in enumerate(statuses) if i != bad), statuses
    assert res["summary"]["failed"] == 1 and res["summary"]["succeeded"] == n - 1, res["summary"]


def test_missing_input_is_not_found_and_the_others_are_processed(server, outdir):
    images = [{"input": GOOD, "output": f"{outdir}/a.jpg"},
              {"input": "testimages/nope.jpg", "output": f"{outdir}/b.jpg"},
              {"input": OTHER, "output": f"{outdir}/c.jpg"}]
    res = server.ok(body(images, ["grayscale"]))
    check_partial(res, 1, "not_found", 3)
    assert res["results"][1]["input"] == "testimages/nope.jpg"
    assert server.path(f"{outdir}/a.jpg").is_file() and server.path(f"{outdir}/c.jpg").is_file()
    assert not server.path(f"{outdir}/b.jpg").exists()


def test_a_folder_as_input_is_not_found(server, outdir):
    res = server.ok(body([{"input": "testimages", "output": f"{outdir}/a.jpg"},
                          {"input": GOOD, "output": f"{outdir}/b.jpg"}]))
    check_partial(res, 0, "not_found", 2)
    assert not server.path(f"{outdir}/a.jpg").exists()


def test_too_many_pixels_is_too_large_and_the_others_are_processed(server_factory):
    # astronaut.jpg has 512x512 = 262144 pixels, cyclo1.jpg 451x300 = 135300
    s = server_factory(max_pixels=200_000)
    images = [{"input": GOOD, "output": "out/a_0.jpg"},
              {"input": "testimages/astronaut.jpg", "output": "out/b.jpg"}]
    res = s.ok(body(images, ["split=2x1"]))
    check_partial(res, 1, "too_large", 2)
    assert sorted(os.listdir(s.path("out"))) == ["a_0_0.jpg", "a_0_1.jpg"]


def test_an_output_folder_that_cannot_be_made_is_write_error(server, outdir):
    server.path(outdir).mkdir(parents=True)
    server.path(f"{outdir}/blocker").write_text("a file where a folder should be")
    images = [{"input": GOOD, "output": f"{outdir}/blocker/sub/a.jpg"},
              {"input": OTHER, "output": f"{outdir}/fine/b.jpg"}]
    res = server.ok(body(images, ["grayscale"]))
    check_partial(res, 0, "write_error", 2)
    assert server.path(f"{outdir}/blocker").read_text() == "a file where a folder should be"
    assert server.path(f"{outdir}/fine/b.jpg").is_file()
    assert sorted(os.listdir(server.path(outdir))) == ["blocker", "fine"]
    assert temp_files(server.path(outdir)) == []


def test_an_output_that_is_a_folder_is_write_error(server, outdir):
    server.path(f"{outdir}/taken.jpg").mkdir(parents=True)
    res = server.ok(body([{"input": GOOD, "output": f"{outdir}/taken.jpg"},
                          {"input": OTHER, "output": f"{outdir}/b.jpg"}]))
    check_partial(res, 0, "write_error", 2)
    assert server.path(f"{outdir}/taken.jpg").is_dir() and os.listdir(server.path(f"{outdir}/taken.jpg")) == []
    assert temp_files(server.path(outdir)) == []


def test_a_split_whose_third_tile_cannot_be_written_writes_none_of_its_tiles(server, outdir):
    server.path(f"{outdir}/s_2.jpg").mkdir(parents=True)  # a folder where tile 2 goes
    res = server.ok(body([{"input": GOOD, "output": f"{outdir}/s.jpg"},
                          {"input": OTHER, "output": f"{outdir}/t.jpg"}], ["split=True"]))
    check_partial(res, 0, "write_error", 2)
    assert sorted(os.listdir(server.path(outdir))) == ["s_2.jpg"] + [f"t_{i}.jpg" for i in range(4)]
    assert os.listdir(server.path(f"{outdir}/s_2.jpg")) == []
    assert temp_files(server.path(outdir)) == []


def test_crop_box_outside_the_image_is_invalid_operation(server, outdir):
    # cyclo1 is 451x300, camera.png 512x512: the box at x=460 misses the first and hits the second
    res = server.ok(body([{"input": GOOD, "output": f"{outdir}/a.jpg"},
                          {"input": "testimages/camera.png", "output": f"{outdir}/b.png"}],
                         ["crop=460,0,20,20"]))
    check_partial(res, 0, "invalid_operation", 2)
    assert not server.path(f"{outdir}/a.jpg").exists()
    assert server.path(f"{outdir}/b.png").is_file()


# --- undecodable inputs and header bombs (generators of tests/images.py) --------------------

UNDECODABLE = {
    "truncated_half": lambda d: gen.truncated_jpeg(d, 0.5),
    "truncated_99": lambda d: gen.truncated_jpeg(d, 0.99),
    "header_only": lambda d: gen.jpeg_header_only(d),
    "empty": lambda d: gen.empty_file(d),
    "png_bad_crc": lambda d: gen.png_bad_crc(d),
    **{f"{kind}_named_jpg": (lambda k: lambda d: gen.not_an_image(d, k))(kind) for kind in gen.NOT_IMAGE_KINDS},
}


@pytest.mark.parametrize("kind", list(UNDECODABLE))
def test_undecodable_input_is_decode_error_and_the_others_are_processed(server, outdir, kind):
    bad = UNDECODABLE[kind](server.path(f"{outdir}/in"))
    bad_rel = f"{outdir}/in/{bad.name}"
    before = bad.read_bytes()
    images = [{"input": GOOD, "output": f"{outdir}/out/a.jpg"},
              {"input": bad_rel, "output": f"{outdir}/out/bad.jpg"},
              {"input": OTHER, "output": f"{outdir}/out/c.png"}]
    res = server.ok(body(images, ["split=True"]))
    check_partial(res, 1, "decode_error", 3)
    written = sorted(os.listdir(server.path(f"{outdir}/out")))
    assert written == sorted([f"a_{i}.jpg" for i in range(4)] + [f"c_{i}.png" for i in range(4)]), written
    assert bad.read_bytes() == before


@pytest.mark.parametrize("bomb", ["png_bomb", "jpeg_bomb"])
def test_header_bomb_is_too_large_without_decoding(server, outdir, bomb):
    bad = getattr(gen, bomb)(server.path(f"{outdir}/in"))
    res = server.ok(body([{"input": f"{outdir}/in/{bad.name}", "output": f"{outdir}/out/bomb.png"},
                          {"input": GOOD, "output": f"{outdir}/out/good.png"}], ["grayscale"]))
    check_partial(res, 0, "too_large", 2)
    assert "50000" in res["results"][0]["error"]["message"]
    assert os.listdir(server.path(f"{outdir}/out")) == ["good.png"]
    assert server.get("/health").json()["status"] == "ok"

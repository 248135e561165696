"""SPEC request "options": skip_existing and metadata."""
from __future__ import annotations

import shutil

from PIL import Image

from tests.images import exif_jpeg

from .helpers import sha256, size_of, temp_files

MAKE, MODEL, ORIENTATION, DATETIME = 0x010F, 0x0110, 0x0112, 0x0132


def out_state(server, result: dict) -> dict[str, tuple[str, int]]:
    return {o["path"]: (sha256(server.path(o["path"])), server.path(o["path"]).stat().st_mtime_ns)
            for o in result["outputs"]}


def files_state(server, paths: list[str]) -> dict[str, tuple[str, int, int]]:
    """Content hash, inode and mtime: an output written again (atomically, by rename) has a new
    inode even where the file system's clock is too coarse to move the mtime."""
    return {p: (sha256(server.path(p)), (st := server.path(p).stat()).st_ino, st.st_mtime_ns) for p in paths}


def copy_input(server, name: str, rel: str) -> str:
    server.path(rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(server.path(f"testimages/{name}"), server.path(rel))
    return rel


def request(inp: str, out: str, operations, skip: bool = True) -> dict:
    return {"images": [{"input": inp, "output": out}], "operations": operations,
            "options": {"skip_existing": skip}}


def test_skip_existing_skips_an_unchanged_image_and_leaves_its_outputs_alone(server, outdir):
    inp = copy_input(server, "cyclo1.jpg", f"{outdir}/in/a.jpg")
    body = request(inp, f"{outdir}/a.jpg", ["split=True", "grayscale"])
    first = server.ok(body)
    assert first["results"][0]["status"] == "ok"
    paths = [o["path"] for o in first["results"][0]["outputs"]]
    assert paths == [f"{outdir}/a_{i}.jpg" for i in range(4)]
    state = files_state(server, paths)

    second = server.ok(body)
    r = second["results"][0]
    assert r["status"] == "skipped", r
    assert r["error"] is None
    assert second["summary"]["skipped"] == 1
    assert second["summary"]["succeeded"] == 0 and second["summary"]["failed"] == 0
    assert files_state(server, paths) == state, "a skipped image's outputs were rewritten"
    # README: a skipped image is reported "with them", its outputs, as the run that wrote them did
    assert [o["path"] for o in r["outputs"]] == paths, r
    assert r["outputs"] == first["results"][0]["outputs"], "a skipped image must report the outputs it has"
    tiles = [(225, 150), (226, 150), (225, 150), (226, 150)]  # cyclo1.jpg is 451x300; edges at i * size // 2
    for o, tile in zip(r["outputs"], tiles):
        assert server.path(o["path"]).stat().st_size == o["bytes"], o
        assert size_of(server.path(o["path"])) == (o["width"], o["height"]) == tile, o
    assert temp_files(server.path(outdir)) == []


def test_skip_existing_processes_a_changed_input_again(server, outdir):
    inp = copy_input(server, "cyclo1.jpg", f"{outdir}/in/a.jpg")
    body = request(inp, f"{outdir}/a.png", ["grayscale"])
    first = server.ok(body)
    assert first["results"][0]["status"] == "ok"
    assert size_of(server.path(f"{outdir}/a.png")) == (451, 300)
    # same name, other bytes
    shutil.copy(server.path("testimages/cyclo2.jpg"), server.path(inp))
    again = server.ok(body)
    assert again["results"][0]["status"] == "ok", again["results"][0]
    assert size_of(server.path(f"{outdir}/a.png")) == (600, 400)
    assert again["results"][0]["outputs"][0]["width"] == 600


def test_skip_existing_processes_changed_operations_again(server, outdir):
    body = request("testimages/coffee.jpg", f"{outdir}/a.png", ["grayscale"])
    assert server.ok(body)["results"][0]["status"] == "ok"
    before = files_state(server, [f"{outdir}/a.png"])
    changed = request("testimages/coffee.jpg", f"{outdir}/a.png", ["grayscale", "rotate=90"])
    res = server.ok(changed)
    assert res["results"][0]["status"] == "ok", res["results"][0]
    assert files_state(server, [f"{outdir}/a.png"]) != before
    assert size_of(server.path(f"{outdir}/a.png")) == (400, 600)
    # and the new pair is now up to date
    assert server.ok(changed)["results"][0]["status"] == "skipped"


def test_skip_existing_redoes_an_output_that_was_removed_or_changed(server, outdir):
    body = request("testimages/chelsea.jpg", f"{outdir}/c.jpg", ["split=True"])
    assert server.ok(body)["results"][0]["status"] == "ok"
    server.path(f"{outdir}/c_2.jpg").unlink()
    res = server.ok(body)
    assert res["results"][0]["status"] == "ok", res["results"][0]
    assert server.path(f"{outdir}/c_2.jpg").is_file()
    # A changed output is no longer imgsrv's: the default overwrite policy (own) keeps it, and
    # the image fails naming the policy; overwrite "always" redoes it.
    server.path(f"{outdir}/c_1.jpg").write_bytes(b"tampered")
    res = server.ok(body)
    assert res["results"][0]["status"] == "error", res["results"][0]
    assert res["results"][0]["error"]["code"] == "output_exists"
    assert server.path(f"{outdir}/c_1.jpg").read_bytes() == b"tampered"
    res = server.ok({**body, "options": {**body["options"], "overwrite": "always"}})
    assert res["results"][0]["status"] == "ok", res["results"][0]
    assert server.path(f"{outdir}/c_1.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_without_skip_existing_an_identical_request_is_processed_again(server, outdir):
    body = request("testimages/coffee.jpg", f"{outdir}/a.jpg", ["grayscale"], skip=False)
    assert server.ok(body)["results"][0]["status"] == "ok"
    before = files_state(server, [f"{outdir}/a.jpg"])
    res = server.ok(body)
    assert res["results"][0]["status"] == "ok"
    assert files_state(server, [f"{outdir}/a.jpg"])[f"{outdir}/a.jpg"][1:] != before[f"{outdir}/a.jpg"][1:], \
        "the output was not written again"


def test_skip_existing_does_not_skip_a_new_output_path(server, outdir):
    assert server.ok(request("testimages/coffee.jpg", f"{outdir}/a.jpg", ["grayscale"]))["results"][0]["status"] == "ok"
    res = server.ok(request("testimages/coffee.jpg", f"{outdir}/b.jpg", ["grayscale"]))
    assert res["results"][0]["status"] == "ok"
    assert server.path(f"{outdir}/b.jpg").is_file()


# --- metadata -----------------------------------------------------------------------------


def exif_of(path) -> dict:
    with Image.open(path) as im:
        return dict(im.getexif())


def test_metadata_keep_carries_make_and_model_with_orientation_reset(server, outdir):
    src = exif_jpeg(server.path(f"{outdir}/in"), 6, size=(120, 80))
    res = server.ok({"images": [{"input": f"{outdir}/in/{src.name}", "output": f"{outdir}/kept.jpg"}],
                     "operations": ["grayscale"], "options": {"metadata": "keep"}})
    out = res["results"][0]
    assert out["status"] == "ok", out
    # pixels are upright: the 120x80 picture stored rotated comes out 120x80
    assert (out["outputs"][0]["width"], out["outputs"][0]["height"]) == (120, 80)
    exif = exif_of(server.path(f"{outdir}/kept.jpg"))
    assert exif.get(MAKE) == "ImgsrvCam", exif
    assert exif.get(MODEL) == "Model X", exif
    assert exif.get(DATETIME) == "2024:05:06 07:08:09", exif
    assert exif.get(ORIENTATION, 1) == 1, f"orientation not reset: {exif.get(ORIENTATION)}"
    with Image.open(server.path(f"{outdir}/kept.jpg")) as im:
        assert im.size == (120, 80)


def test_metadata_keep_is_the_default(server, outdir):
    src = exif_jpeg(server.path(f"{outdir}/in"), 1)
    res = server.ok({"images": [{"input": f"{outdir}/in/{src.name}", "output": f"{outdir}/default.jpg"}]})
    assert res["results"][0]["status"] == "ok"
    exif = exif_of(server.path(f"{outdir}/default.jpg"))
    assert exif.get(MAKE) == "ImgsrvCam" and exif.get(MODEL) == "Model X", exif


def test_metadata_strip_writes_no_exif(server, outdir):
    src = exif_jpeg(server.path(f"{outdir}/in"), 6, size=(120, 80))
    res = server.ok({"images": [{"input": f"{outdir}/in/{src.name}", "output": f"{outdir}/stripped.jpg"}],
                     "options": {"metadata": "strip"}})
    out = res["results"][0]
    assert out["status"] == "ok", out
    assert (out["outputs"][0]["width"], out["outputs"][0]["height"]) == (120, 80)
    with Image.open(server.path(f"{outdir}/stripped.jpg")) as im:
        assert "exif" not in im.info, "EXIF written despite metadata strip"
        assert dict(im.getexif()) == {}
        assert im.size == (120, 80)
    assert b"Exif\x00\x00" not in server.path(f"{outdir}/stripped.jpg").read_bytes()
    assert b"ImgsrvCam" not in server.path(f"{outdir}/stripped.jpg").read_bytes()


def test_metadata_keep_on_split_tiles(server, outdir):
    src = exif_jpeg(server.path(f"{outdir}/in"), 8, size=(120, 80))
    res = server.ok({"images": [{"input": f"{outdir}/in/{src.name}", "output": f"{outdir}/t.jpg"}],
                     "operations": ["split=True"]})
    assert res["results"][0]["status"] == "ok"
    for i in range(4):
        exif = exif_of(server.path(f"{outdir}/t_{i}.jpg"))
        assert exif.get(MAKE) == "ImgsrvCam", (i, exif)
        assert exif.get(ORIENTATION, 1) == 1, (i, exif)

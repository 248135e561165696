"""SPEC "Request" and "Response of POST /process": the example request, naming, order, summary."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from .helpers import decode, quadrant_image, size_of, temp_files, write_image

EXAMPLE = {
    "images": [
        {"input": "testimages/cyclo1.jpg", "output": "testoutput/cyclo1_processed.jpg"},
        {"input": "testimages/cyclo2.jpg", "output": "testoutput/cyclo2_processed.png"},
    ],
    "operations": ["splitQuadrants=True", "resize=2", {"op": "blur", "kernel": 5}],
}

# cyclo1.jpg is 451x300: quadrants of 225 / 226 columns and 150 rows, then doubled.
CYCLO1_SIZES = [(450, 300), (452, 300), (450, 300), (452, 300)]
CYCLO2_SIZES = [(600, 400)] * 4  # 600x400: quadrants 300x200, doubled


def with_folder(body: dict, folder: str) -> dict:
    return {**body, "images": [{"input": im["input"], "output": f"{folder}/{os.path.basename(im['output'])}"}
                               for im in body["images"]]}


def check_outputs_on_disk(server, result: dict) -> None:
    """Every reported output exists with the reported size in pixels and bytes."""
    for out in result["outputs"]:
        p = server.path(out["path"])
        assert p.is_file(), f"{out['path']} reported but not written"
        assert p.stat().st_size == out["bytes"], out
        assert size_of(p) == (out["width"], out["height"]), out


@pytest.fixture(scope="module")
def example(server):
    return server.ok(EXAMPLE)


def test_example_writes_the_quadrants_named_in_the_spec(server, example):
    r1, r2 = example["results"]
    assert r1["input"] == "testimages/cyclo1.jpg" and r2["input"] == "testimages/cyclo2.jpg"
    assert r1["status"] == r2["status"] == "ok"
    assert r1["error"] is None and r2["error"] is None
    assert [o["path"] for o in r1["outputs"]] == [f"testoutput/cyclo1_processed_{i}.jpg" for i in range(4)]
    assert [o["path"] for o in r2["outputs"]] == [f"testoutput/cyclo2_processed_{i}.png" for i in range(4)]
    assert [(o["width"], o["height"]) for o in r1["outputs"]] == CYCLO1_SIZES
    assert [(o["width"], o["height"]) for o in r2["outputs"]] == CYCLO2_SIZES
    for r in (r1, r2):
        check_outputs_on_disk(server, r)
        assert "faces" not in r["outputs"][0], "faces is only present when a faces operation ran"
    # exactly these eight files, nothing else (no unsplit output, no temporary files)
    assert sorted(os.listdir(server.path("testoutput"))) == sorted(
        [f"cyclo1_processed_{i}.jpg" for i in range(4)] + [f"cyclo2_processed_{i}.png" for i in range(4)])


def test_example_output_formats_follow_the_extension(server, example):
    for i in range(4):
        assert server.path(f"testoutput/cyclo1_processed_{i}.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
        assert server.path(f"testoutput/cyclo2_processed_{i}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_example_input_bytes_and_summary_add_up(server, example):
    results, summary = example["results"], example["summary"]
    in_sizes = [server.path(im["input"]).stat().st_size for im in EXAMPLE["images"]]
    assert [r["input_bytes"] for r in results] == in_sizes
    out_bytes = sum(o["bytes"] for r in results for o in r["outputs"])
    assert out_bytes == sum(server.path(o["path"]).stat().st_size for r in results for o in r["outputs"])
    assert summary["images"] == 2
    assert summary["succeeded"] == 2
    assert summary["failed"] == 0
    assert summary["skipped"] == 0
    assert summary["outputs"] == 8
    assert summary["input_bytes"] == sum(in_sizes)
    assert summary["output_bytes"] == out_bytes
    assert summary["compression_ratio"] == pytest.approx(out_bytes / sum(in_sizes), rel=1e-3)
    assert summary["elapsed_ms"] > 0
    assert all(r["elapsed_ms"] >= 0 for r in results)


def test_example_pixels_are_split_then_resized_then_blurred(server, example):
    """The PNG tiles are lossless: tile 0 of cyclo2 is its top-left quadrant, doubled, blurred 5x5."""
    src = cv2.imread(str(server.path("testimages/cyclo2.jpg")), cv2.IMREAD_UNCHANGED)
    h, w = src.shape[:2]
    quadrants = [src[:h // 2, :w // 2], src[:h // 2, w // 2:], src[h // 2:, :w // 2], src[h // 2:, w // 2:]]
    for i, q in enumerate(quadrants):
        expected = cv2.GaussianBlur(cv2.resize(q, (q.shape[1] * 2, q.shape[0] * 2), interpolation=cv2.INTER_LINEAR),
                                    (5, 5), 0)
        got = decode(server.path(f"testoutput/cyclo2_processed_{i}.png"))
        assert got.shape == expected.shape
        diff = np.abs(got.astype(int) - expected.astype(int)).mean()
        assert diff < 0.5, f"tile {i} differs from quadrant {i} resized and blurred by {diff:.2f} on average"


def test_items_route_answers_the_same_as_process(server, example, outdir):
    res = server.ok(with_folder(EXAMPLE, outdir), path="/items/")

    def strip(r):
        return {**r, "elapsed_ms": None, "outputs": [{**o, "path": os.path.basename(o["path"])} for o in r["outputs"]]}

    assert [strip(r) for r in res["results"]] == [strip(r) for r in example["results"]]
    assert {**res["summary"], "elapsed_ms": None} == {**example["summary"], "elapsed_ms": None}
    for r in res["results"]:
        check_outputs_on_disk(server, r)
    assert [o["path"] for o in res["results"][0]["outputs"]] == [f"{outdir}/cyclo1_processed_{i}.jpg"
                                                                  for i in range(4)]


def test_items_route_validates_like_process(server, outdir):
    r = server.post("/items/", json={"images": [{"input": "testimages/cyclo1.jpg", "output": f"{outdir}/x.jpg"}],
                                     "operations": ["resize=2", "grayscale", {"op": "blur", "kernel": 4}]})
    assert r.status_code == 422
    assert "operations[2].kernel" in r.text
    assert not server.path(outdir).exists()


def test_quadrants_are_in_row_major_order(server, outdir):
    write_image(server.path(f"{outdir}/in/quads.png"), quadrant_image(200, 300))
    res = server.ok({"images": [{"input": f"{outdir}/in/quads.png", "output": f"{outdir}/q.png"}],
                     "operations": ["split=True"]})
    outs = res["results"][0]["outputs"]
    assert [o["path"] for o in outs] == [f"{outdir}/q_{i}.png" for i in range(4)]
    expected = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]  # TL blue, TR green, BL red, BR white
    for i, colour in enumerate(expected):
        tile = decode(server.path(f"{outdir}/q_{i}.png"))
        assert tile.shape == (100, 150, 3)
        assert (tile == colour).all(), f"tile {i} is not the expected quadrant"


def test_nested_splits_append_an_index_per_split(server, outdir):
    """4x4 cells of distinct colours, split twice: OUT_I_J is cell (row, col) of quadrant I's quadrant J."""
    img = np.zeros((160, 160, 3), np.uint8)
    for r in range(4):
        for c in range(4):
            img[r * 40:(r + 1) * 40, c * 40:(c + 1) * 40] = (r * 60, c * 60, 200)
    write_image(server.path(f"{outdir}/in/grid.png"), img)
    res = server.ok({"images": [{"input": f"{outdir}/in/grid.png", "output": f"{outdir}/g.png"}],
                     "operations": ["splitQuadrants=True", {"op": "split"}]})
    outs = res["results"][0]["outputs"]
    names = [f"{outdir}/g_{i}_{j}.png" for i in range(4) for j in range(4)]
    assert [o["path"] for o in outs] == names
    assert res["summary"]["outputs"] == 16
    assert sorted(os.listdir(server.path(outdir))) == sorted(["in"] + [os.path.basename(n) for n in names])
    for i in range(4):
        for j in range(4):
            row, col = (i // 2) * 2 + j // 2, (i % 2) * 2 + j % 2
            tile = decode(server.path(f"{outdir}/g_{i}_{j}.png"))
            assert tile.shape == (40, 40, 3)
            assert (tile == (row * 60, col * 60, 200)).all(), f"g_{i}_{j} is not cell ({row}, {col})"
    assert server.path(f"{outdir}/g_0_3.png").is_file()


def test_nested_split_naming_with_the_example_image(server, outdir):
    res = server.ok({"images": [{"input": "testimages/cyclo1.jpg", "output": f"{outdir}/cyclo1_processed.jpg"}],
                     "operations": ["splitQuadrants=True", "split=True"]})
    paths = [o["path"] for o in res["results"][0]["outputs"]]
    assert len(paths) == 16
    assert paths[3] == f"{outdir}/cyclo1_processed_0_3.jpg"
    assert paths[-1] == f"{outdir}/cyclo1_processed_3_3.jpg"
    check_outputs_on_disk(server, res["results"][0])


@pytest.mark.parametrize("op, names", [
    ("split=3x4", [f"s_{i}.png" for i in range(12)]),
    ("split=False", ["s.png"]),
    ("split=false", ["s.png"]),
    ("split=None", ["s.png"]),
    ("split=1x1", ["s.png"]),
])
def test_split_variants_name_their_outputs(server, outdir, op, names):
    res = server.ok({"images": [{"input": "testimages/camera.png", "output": f"{outdir}/s.png"}], "operations": [op]})
    assert [os.path.basename(o["path"]) for o in res["results"][0]["outputs"]] == names
    assert sorted(os.listdir(server.path(outdir))) == sorted(names)
    if len(names) == 1:
        assert size_of(server.path(f"{outdir}/s.png")) == (512, 512)


def test_results_come_in_request_order(server, outdir):
    order = ["grace_hopper.jpg", "cyclo1.jpg", "missing.jpg", "camera.png", "coffee.jpg", "astronaut.jpg"]
    images = [{"input": f"testimages/{n}", "output": f"{outdir}/{i}_{os.path.splitext(n)[0]}.png"}
              for i, n in enumerate(order)]
    res = server.ok({"images": images, "operations": ["rotate=90"]})
    assert [r["input"] for r in res["results"]] == [im["input"] for im in images]
    assert [r["status"] for r in res["results"]] == ["ok", "ok", "error", "ok", "ok", "ok"]
    for im, r in zip(images, res["results"]):
        if r["status"] != "ok":
            continue
        src = decode(server.path(im["input"]))
        assert (r["outputs"][0]["width"], r["outputs"][0]["height"]) == (src.shape[0], src.shape[1])
        assert r["outputs"][0]["path"] == im["output"]
    assert res["summary"]["images"] == 6 and res["summary"]["succeeded"] == 5 and res["summary"]["failed"] == 1
    ok = [r for r in res["results"] if r["status"] == "ok"]
    assert res["summary"]["input_bytes"] == sum(r["input_bytes"] for r in ok)
    assert res["summary"]["output_bytes"] == sum(o["bytes"] for r in ok for o in r["outputs"])
    assert res["summary"]["outputs"] == 5
    assert res["summary"]["compression_ratio"] == pytest.approx(
        res["summary"]["output_bytes"] / res["summary"]["input_bytes"], rel=1e-3)


def test_output_folders_are_created_and_no_temporary_files_remain(server, outdir):
    res = server.ok({"images": [{"input": "testimages/chelsea.jpg", "output": f"{outdir}/a/b/c/chelsea.webp"}],
                     "operations": ["split=True"]})
    assert res["results"][0]["status"] == "ok"
    assert sorted(os.listdir(server.path(f"{outdir}/a/b/c"))) == [f"chelsea_{i}.webp" for i in range(4)]
    assert server.path(f"{outdir}/a/b/c/chelsea_0.webp").read_bytes()[8:12] == b"WEBP"
    assert temp_files(server.path(outdir)) == []


def test_upper_case_extension_chooses_the_format(server, outdir):
    res = server.ok({"images": [{"input": "testimages/cyclo1.jpg", "output": f"{outdir}/x.PNG"},
                                {"input": "testimages/cyclo2.jpg", "output": f"{outdir}/y.JPEG"}]})
    assert [r["status"] for r in res["results"]] == ["ok", "ok"]
    assert server.path(f"{outdir}/x.PNG").read_bytes()[:4] == b"\x89PNG"
    assert server.path(f"{outdir}/y.JPEG").read_bytes()[:2] == b"\xff\xd8"


def test_names_with_spaces_and_non_ascii_letters(server, outdir):
    server.path(f"{outdir}/in").mkdir(parents=True)
    server.path(f"{outdir}/in/my photo é.jpg").write_bytes(server.path("testimages/cyclo1.jpg").read_bytes())
    res = server.ok({"images": [{"input": f"{outdir}/in/my photo é.jpg", "output": f"{outdir}/out é/my photo é.png"}],
                     "operations": ["split=True"]})
    r = res["results"][0]
    assert r["status"] == "ok", r
    assert [o["path"] for o in r["outputs"]] == [f"{outdir}/out é/my photo é_{i}.png" for i in range(4)]
    check_outputs_on_disk(server, r)

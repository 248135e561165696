"""SPEC operations: faces (detect changes no pixel; every action reports the boxes it found)."""
from __future__ import annotations

import numpy as np
import pytest

from .helpers import decode


def run(server, inp: str, out: str, operations) -> dict:
    res = server.ok({"images": [{"input": inp, "output": out}], "operations": operations})
    r = res["results"][0]
    assert r["status"] == "ok", r
    return r


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_detect_reports_boxes_and_changes_no_pixel(server, outdir, name):
    plain = run(server, f"testimages/{name}.jpg", f"{outdir}/plain.png", [])
    found = run(server, f"testimages/{name}.jpg", f"{outdir}/detect.png", ["faces=detect"])
    faces = found["outputs"][0].get("faces")
    assert faces, f"no face found on {name}.jpg: {found['outputs'][0]}"
    w, h = found["outputs"][0]["width"], found["outputs"][0]["height"]
    for f in faces:
        assert set(f) == {"x", "y", "width", "height"}
        assert f["width"] > 0 and f["height"] > 0
        assert 0 <= f["x"] and f["x"] + f["width"] <= w and 0 <= f["y"] and f["y"] + f["height"] <= h, f
    assert "faces" not in plain["outputs"][0]
    a, b = decode(server.path(f"{outdir}/plain.png")), decode(server.path(f"{outdir}/detect.png"))
    assert a.shape == b.shape
    assert np.array_equal(a, b), "faces=detect changed pixels"


def test_detect_is_the_default_action(server, outdir):
    r = run(server, "testimages/astronaut.jpg", f"{outdir}/a.png", ["faces"])
    assert r["outputs"][0]["faces"]
    obj = run(server, "testimages/astronaut.jpg", f"{outdir}/b.png", [{"op": "faces"}])
    assert obj["outputs"][0]["faces"] == r["outputs"][0]["faces"]
    assert np.array_equal(decode(server.path(f"{outdir}/a.png")), decode(server.path(f"{outdir}/b.png")))


@pytest.mark.parametrize("action", ["blur", "pixelate", "fill"])
def test_anonymising_actions_change_pixels_inside_the_boxes_only(server, outdir, action):
    run(server, "testimages/astronaut.jpg", f"{outdir}/plain.png", [])
    r = run(server, "testimages/astronaut.jpg", f"{outdir}/{action}.png", [f"faces={action}"])
    faces = r["outputs"][0]["faces"]
    assert faces, "no face reported"
    a = decode(server.path(f"{outdir}/plain.png")).astype(int)
    b = decode(server.path(f"{outdir}/{action}.png")).astype(int)
    inside = np.zeros(a.shape[:2], bool)
    for f in faces:
        box = (slice(f["y"], f["y"] + f["height"]), slice(f["x"], f["x"] + f["width"]))
        inside[box] = True
        diff = np.abs(a[box] - b[box]).mean()
        assert diff > 3, f"{action}: the face at {f} is hardly changed (mean difference {diff:.2f})"
    assert np.array_equal(a[~inside], b[~inside]), f"{action} changed pixels outside the face boxes"


def test_box_action_draws_and_reports(server, outdir):
    run(server, "testimages/astronaut.jpg", f"{outdir}/plain.png", [])
    r = run(server, "testimages/astronaut.jpg", f"{outdir}/box.png", ["faces=box"])
    assert r["outputs"][0]["faces"]
    a = decode(server.path(f"{outdir}/plain.png"))
    b = decode(server.path(f"{outdir}/box.png"))
    assert not np.array_equal(a, b)


def test_faces_after_a_split_is_reported_on_every_tile(server, outdir):
    res = server.ok({"images": [{"input": "testimages/astronaut.jpg", "output": f"{outdir}/t.jpg"}],
                     "operations": ["split=True", "faces=detect"]})
    outs = res["results"][0]["outputs"]
    assert len(outs) == 4
    for o in outs:
        assert isinstance(o.get("faces"), list), o


def inside(box: dict, w: int, h: int) -> bool:
    return box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= w and box["y"] + box["height"] <= h


def test_face_boxes_after_a_resize_are_in_the_outputs_coordinates(server, outdir):
    """A box reported on an output describes that output's pixels: halved by resize=0.5."""
    full = run(server, "testimages/astronaut.jpg", f"{outdir}/full.png", ["faces"])["outputs"][0]
    half = run(server, "testimages/astronaut.jpg", f"{outdir}/half.png", ["faces", "resize=0.5"])["outputs"][0]
    assert (half["width"], half["height"]) == (256, 256)
    assert len(half["faces"]) == len(full["faces"])
    for f in half["faces"]:
        assert inside(f, half["width"], half["height"]), f"box {f} lies outside the 256x256 output"
    for a, b in zip(full["faces"], half["faces"]):
        for k in ("x", "y", "width", "height"):
            assert abs(b[k] - a[k] / 2) <= 1.5, (a, b)


def test_face_boxes_after_a_split_lie_inside_their_tile(server, outdir):
    res = server.ok({"images": [{"input": "testimages/astronaut.jpg", "output": f"{outdir}/t.png"}],
                     "operations": ["faces", "split=True"]})
    for o in res["results"][0]["outputs"]:
        for f in o.get("faces") or []:
            assert inside(f, o["width"], o["height"]), f"{o['path']} ({o['width']}x{o['height']}) reports box {f}"

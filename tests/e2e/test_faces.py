"""SPEC operations: faces (detect changes no pixel; every action reports the boxes it found)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.imaging.faces import detect_faces

from .conftest import TESTIMAGES
from .helpers import decode, write_image


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


def ring(shape, box: dict, width: int) -> np.ndarray:
    """The pixels within ``width`` of the box's edge, inside the box."""
    mask = np.zeros(shape[:2], bool)
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    mask[y:y + h, x:x + w] = True
    mask[y + width:y + h - width, x + width:x + w - width] = False
    return mask


def test_box_action_draws_the_outline_of_each_reported_box_and_nothing_else(server, outdir):
    run(server, "testimages/astronaut.jpg", f"{outdir}/plain.png", [])
    r = run(server, "testimages/astronaut.jpg", f"{outdir}/box.png", ["faces=box"])
    faces = r["outputs"][0]["faces"]
    assert faces, "no face reported"
    a = decode(server.path(f"{outdir}/plain.png"))
    b = decode(server.path(f"{outdir}/box.png"))
    changed = np.any(a != b, axis=2)
    outline = np.zeros(a.shape[:2], bool)
    for f in faces:
        line = ring(a.shape, f, 3)  # a 512x512 image: thickness 2, which OpenCV draws 3 pixels wide, inside the box
        outline |= line
        green = np.all(b[line] == (0, 255, 0), axis=1)  # BGR
        assert green.mean() > 0.95, f"only {green.mean():.0%} of the outline of {f} is green"
    assert not (changed & ~outline).any(), \
        f"{int((changed & ~outline).sum())} pixels changed off the outlines of {faces}"


def test_faces_after_a_split_are_detected_on_each_tile(server, outdir):
    """A mosaic of three portraits and a blank quarter: split=True, then faces, finds each face on
    its own tile (the boxes detection gives on that quarter) and reports [] on the blank one."""
    astronaut = cv2.imread(str(TESTIMAGES / "astronaut.jpg"))
    hopper = cv2.resize(cv2.imread(str(TESTIMAGES / "grace_hopper.jpg")), (512, 512))
    quarters = [astronaut, hopper, np.full_like(astronaut, 128), astronaut[:, ::-1].copy()]
    write_image(server.path(f"{outdir}/mosaic.png"), np.vstack([np.hstack(quarters[:2]), np.hstack(quarters[2:])]))
    res = server.ok({"images": [{"input": f"{outdir}/mosaic.png", "output": f"{outdir}/t.png"}],
                     "operations": ["split=True", "faces=detect"]})
    outs = res["results"][0]["outputs"]
    assert [(o["width"], o["height"]) for o in outs] == [(512, 512)] * 4
    expected = [[dict(zip(("x", "y", "width", "height"), map(int, b))) for b in detect_faces(q)] for q in quarters]
    assert [len(e) for e in expected] == [1, 1, 0, 1], expected  # the premise: one face on each portrait
    assert [o["faces"] for o in outs] == expected


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


def test_face_boxes_after_a_split_are_cut_to_the_tiles_they_cross(server, outdir):
    """faces, then split=True: the one box found on the whole image is reported, cut and moved, on
    each tile it crosses, and every other tile reports []."""
    [face] = run(server, "testimages/astronaut.jpg", f"{outdir}/whole.png", ["faces"])["outputs"][0]["faces"]
    res = server.ok({"images": [{"input": "testimages/astronaut.jpg", "output": f"{outdir}/t.png"}],
                     "operations": ["faces", "split=True"]})
    outs = res["results"][0]["outputs"]
    assert len(outs) == 4
    crossed = 0
    for o, (tx, ty) in zip(outs, [(0, 0), (256, 0), (0, 256), (256, 256)]):  # tiles in reading order
        x0, y0 = max(face["x"], tx), max(face["y"], ty)
        x1, y1 = min(face["x"] + face["width"], tx + 256), min(face["y"] + face["height"], ty + 256)
        expected = [{"x": x0 - tx, "y": y0 - ty, "width": x1 - x0, "height": y1 - y0}] if x1 > x0 and y1 > y0 else []
        assert o["faces"] == expected, f"{o['path']}: {o['faces']} (whole-image box {face})"
        for f in o["faces"]:
            assert inside(f, o["width"], o["height"]), f"{o['path']} ({o['width']}x{o['height']}) reports box {f}"
        crossed += bool(expected)
    assert crossed == 2, f"the premise: the face at {face} crosses two tiles"

"""SPEC "Operations": what each one does to the pixels, seen in the files the server writes.

Inputs are small synthetic PNGs and outputs PNGs (lossless) so pixel values can be compared exactly.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests import images as gen

from .helpers import decode, quadrant_image, size_of, write_image


@pytest.fixture
def quads(server, outdir) -> str:
    """A 200x300 (h x w) PNG: blue top-left, green top-right, red bottom-left, white bottom-right."""
    rel = f"{outdir}/in/quads.png"
    write_image(server.path(rel), quadrant_image(200, 300))
    return rel


def run(server, inp: str, out: str, operations) -> dict:
    res = server.ok({"images": [{"input": inp, "output": out}], "operations": operations})
    r = res["results"][0]
    assert r["status"] == "ok", r
    return r


def test_rotate_90_is_clockwise(server, outdir, quads):
    run(server, quads, f"{outdir}/r.png", ["rotate=90"])
    img = decode(server.path(f"{outdir}/r.png"))
    assert img.shape == (300, 200, 3)
    # clockwise: the bottom-left (red) quadrant comes to the top-left, blue to the top-right
    assert (img[10, 10] == (0, 0, 255)).all() and (img[10, 190] == (255, 0, 0)).all()
    assert (img[290, 10] == (255, 255, 255)).all() and (img[290, 190] == (0, 255, 0)).all()


def test_rotate_270_and_180(server, outdir, quads):
    run(server, quads, f"{outdir}/r270.png", [{"op": "rotate", "angle": 270}])
    run(server, quads, f"{outdir}/r180.png", ["rotate=180"])
    r270, r180 = decode(server.path(f"{outdir}/r270.png")), decode(server.path(f"{outdir}/r180.png"))
    assert r270.shape == (300, 200, 3) and r180.shape == (200, 300, 3)
    assert (r270[10, 10] == (0, 255, 0)).all()  # top-right (green) comes to the top-left
    assert (r180[10, 10] == (255, 255, 255)).all()


def test_flip(server, outdir, quads):
    run(server, quads, f"{outdir}/h.png", ["flip=horizontal"])
    run(server, quads, f"{outdir}/v.png", [{"op": "flip", "axis": "vertical"}])
    h, v = decode(server.path(f"{outdir}/h.png")), decode(server.path(f"{outdir}/v.png"))
    assert (h[10, 10] == (0, 255, 0)).all() and (h[190, 10] == (255, 255, 255)).all()
    assert (v[10, 10] == (0, 0, 255)).all() and (v[10, 290] == (255, 255, 255)).all()


def test_crop_box_margins_and_negative_offsets(server, outdir, quads):
    run(server, quads, f"{outdir}/box.png", ["crop=140,90,20,20"])
    box = decode(server.path(f"{outdir}/box.png"))
    assert box.shape == (20, 20, 3)
    assert (box[0, 0] == (255, 0, 0)).all() and (box[19, 19] == (255, 255, 255)).all()
    run(server, quads, f"{outdir}/bottom.png", ["crop=bottom:100"])
    assert size_of(server.path(f"{outdir}/bottom.png")) == (300, 100)
    assert (decode(server.path(f"{outdir}/bottom.png"))[99, 299] == (0, 255, 0)).all()
    run(server, quads, f"{outdir}/neg.png", ["crop=x:-50,y:-50,width:50,height:50"])
    neg = decode(server.path(f"{outdir}/neg.png"))
    assert neg.shape == (50, 50, 3) and (neg == 255).all()


def test_crop_box_is_clipped_to_the_image(server, outdir, quads):
    r = run(server, quads, f"{outdir}/clip.png", ["crop=250,150,500,500"])
    assert (r["outputs"][0]["width"], r["outputs"][0]["height"]) == (50, 50)


def test_redact_fill_and_a_box_outside_does_nothing(server, outdir, quads):
    run(server, quads, f"{outdir}/plain.png", [])
    run(server, quads, f"{outdir}/red.png", ["redact=0,-100,200,100"])
    run(server, quads, f"{outdir}/outside.png", ["redact=1000,1000,10,10"])
    run(server, quads, f"{outdir}/colour.png", ["redact=x:10,y:10,width:20,height:20,color:[1,2,3]"])
    plain = decode(server.path(f"{outdir}/plain.png"))
    red = decode(server.path(f"{outdir}/red.png"))
    assert (red[100:200, 0:200] == 0).all(), "the box at the bottom-left is not black"
    assert np.array_equal(red[:100], plain[:100]) and np.array_equal(red[:, 200:], plain[:, 200:])
    assert np.array_equal(decode(server.path(f"{outdir}/outside.png")), plain)
    assert (decode(server.path(f"{outdir}/colour.png"))[10:30, 10:30] == (1, 2, 3)).all()


def test_threshold_binary_makes_black_and_white(server, outdir):
    grad = np.tile(np.arange(256, dtype=np.uint8), (10, 1))
    write_image(server.path(f"{outdir}/in/grad.png"), grad)
    run(server, f"{outdir}/in/grad.png", f"{outdir}/t.png", ["threshold=127"])
    t = decode(server.path(f"{outdir}/t.png"))
    row = t[0] if t.ndim == 2 else t[0, :, 0]
    assert set(np.unique(t)) <= {0, 255}
    assert (row[:128] == 0).all() and (row[128:] == 255).all(), "pixels above 127 turn white"


def test_grayscale_has_equal_channels_or_one(server, outdir, quads):
    run(server, quads, f"{outdir}/g.png", ["grayscale"])
    g = decode(server.path(f"{outdir}/g.png"))
    if g.ndim == 3:
        assert (g[:, :, 0] == g[:, :, 1]).all() and (g[:, :, 1] == g[:, :, 2]).all()
    assert g.shape[:2] == (200, 300)


@pytest.mark.parametrize("op, size", [
    ("resize=0.5", (226, 150)),
    ("resize=800x600", (800, 532)),
    ("resize=800x", (800, 532)),
    ("resize=x100", (150, 100)),
    ({"op": "resize", "width": 200, "height": 200, "fit": "cover"}, (200, 200)),
    ({"op": "resize", "width": 200, "height": 100, "fit": "stretch"}, (200, 100)),
])
def test_resize_sizes(server, outdir, op, size):
    r = run(server, "testimages/cyclo1.jpg", f"{outdir}/r.jpg", [op])  # 451x300
    assert (r["outputs"][0]["width"], r["outputs"][0]["height"]) == size
    assert size_of(server.path(f"{outdir}/r.jpg")) == size


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_resize_of_an_exif_rotated_jpeg_is_upright(server, outdir, orientation):
    src = gen.exif_jpeg(server.path(f"{outdir}/in"), orientation, size=(240, 160))
    r = run(server, f"{outdir}/in/{src.name}", f"{outdir}/half.png", ["resize=0.5"])
    assert (r["outputs"][0]["width"], r["outputs"][0]["height"]) == (120, 80)
    got = decode(server.path(f"{outdir}/half.png")).astype(int)
    ref = cv2.resize(np.asarray(gen.upright_reference((240, 160)))[:, :, ::-1], (120, 80),
                     interpolation=cv2.INTER_AREA).astype(int)
    diff = np.abs(got - ref).mean()
    assert diff < 10, f"orientation {orientation}: not the upright picture halved (mean difference {diff:.1f})"


def test_split_overlap_shares_pixels(server, outdir):
    r = run(server, "testimages/cyclo1.jpg", f"{outdir}/o.png", ["split=rows:1,cols:2,overlap:16"])
    (w0, h0), (w1, h1) = [(o["width"], o["height"]) for o in r["outputs"]]
    assert h0 == h1 == 300 and w0 + w1 == 451 + 16
    a, b = decode(server.path(f"{outdir}/o_0.png")), decode(server.path(f"{outdir}/o_1.png"))
    assert np.array_equal(a[:, -16:], b[:, :16])


def test_encode_applies_wherever_it_stands(server, outdir):
    run(server, "testimages/coffee.jpg", f"{outdir}/first.jpg", ["quality=30", "grayscale"])
    run(server, "testimages/coffee.jpg", f"{outdir}/last.jpg", ["grayscale", "encode=quality:30"])
    run(server, "testimages/coffee.jpg", f"{outdir}/default.jpg", ["grayscale"])
    first, last = server.path(f"{outdir}/first.jpg").read_bytes(), server.path(f"{outdir}/last.jpg").read_bytes()
    assert first == last
    assert len(first) < server.path(f"{outdir}/default.jpg").stat().st_size


def test_default_encoding_is_jpeg_90_and_png_3(server, outdir):
    run(server, "testimages/coffee.jpg", f"{outdir}/d.jpg", [])
    run(server, "testimages/coffee.jpg", f"{outdir}/q90.jpg", ["quality=90"])
    run(server, "testimages/coffee.jpg", f"{outdir}/q50.jpg", ["quality=50"])
    run(server, "testimages/coffee.jpg", f"{outdir}/d.png", [])
    run(server, "testimages/coffee.jpg", f"{outdir}/c3.png", ["encode=compression:3"])
    run(server, "testimages/coffee.jpg", f"{outdir}/c9.png", ["encode=compression:9"])
    read = lambda n: server.path(f"{outdir}/{n}").read_bytes()  # noqa: E731
    assert read("d.jpg") == read("q90.jpg") != read("q50.jpg")
    assert read("d.png") == read("c3.png") != read("c9.png")
    assert np.array_equal(decode(server.path(f"{outdir}/d.png")), decode(server.path(f"{outdir}/c9.png")))


@pytest.mark.parametrize("ext, magic", [(".webp", b"RIFF"), (".tif", b"II*\x00"), (".tiff", b"II*\x00"),
                                        (".bmp", b"BM"), (".jpeg", b"\xff\xd8")])
def test_output_formats(server, outdir, ext, magic):
    r = run(server, "testimages/chelsea.jpg", f"{outdir}/c{ext}", ["resize=0.5"])
    data = server.path(f"{outdir}/c{ext}").read_bytes()
    assert data[:len(magic)] == magic or (ext.startswith(".tif") and data[:4] == b"MM\x00*")
    assert r["outputs"][0]["bytes"] == len(data)
    assert size_of(server.path(f"{outdir}/c{ext}")) == (226, 150)

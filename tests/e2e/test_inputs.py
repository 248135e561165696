"""Odd but valid inputs (tests/images.py): EXIF orientation, 16-bit, RGBA, palette and gray PNGs."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests import images as gen

from .helpers import decode


def one(server, inp: str, out: str, operations=()) -> dict:
    res = server.ok({"images": [{"input": inp, "output": out}], "operations": list(operations)})
    r = res["results"][0]
    assert r["status"] == "ok", r
    return r


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(server, outdir, orientation):
    src = gen.exif_jpeg(server.path(f"{outdir}/in"), orientation, size=(120, 80))
    r = one(server, f"{outdir}/in/{src.name}", f"{outdir}/upright.png")
    assert (r["outputs"][0]["width"], r["outputs"][0]["height"]) == (120, 80)
    got = decode(server.path(f"{outdir}/upright.png"))
    assert got.shape == (80, 120, 3)
    expected = np.asarray(gen.upright_reference((120, 80)))[:, :, ::-1].astype(int)  # RGB -> BGR
    diff = np.abs(got.astype(int) - expected).mean()
    assert diff < 8, f"orientation {orientation}: the output is not the upright picture (mean difference {diff:.1f})"


def test_16_bit_png_is_scaled_not_clipped(server, outdir):
    src = gen.png16(server.path(f"{outdir}/in"), width=256, height=8)
    one(server, f"{outdir}/in/{src.name}", f"{outdir}/g.png")
    got = decode(server.path(f"{outdir}/g.png"))
    assert got.dtype == np.uint8 and got.shape[:2] == (8, 256)
    row = got[0] if got.ndim == 2 else got[0, :, 0]
    assert row[0] <= 1 and row[-1] >= 254
    assert 120 <= row[128] <= 136, f"the middle of a 16-bit gradient should be about 128, got {row[128]}"


def test_rgba_png_to_jpeg_is_flattened_on_white(server, outdir):
    src = gen.rgba_png(server.path(f"{outdir}/in"), size=(64, 48))
    one(server, f"{outdir}/in/{src.name}", f"{outdir}/flat.jpg")
    got = decode(server.path(f"{outdir}/flat.jpg")).astype(int)
    assert got.shape == (48, 64, 3)
    left, right = got[8:40, 4:26].mean(axis=(0, 1)), got[8:40, 38:60].mean(axis=(0, 1))
    assert (left > 240).all(), f"the transparent half should be white, got BGR {left}"
    assert right[2] > 200 and right[0] < 50 and right[1] < 50, f"the opaque half should be red, got BGR {right}"


def test_rgba_png_to_png_keeps_alpha(server, outdir):
    src = gen.rgba_png(server.path(f"{outdir}/in"), size=(64, 48))
    one(server, f"{outdir}/in/{src.name}", f"{outdir}/alpha.png", ["flip=horizontal"])
    got = decode(server.path(f"{outdir}/alpha.png"))
    assert got.shape == (48, 64, 4)
    # flipped: the transparent half is now on the right
    assert (got[:, :32, 3] == 255).all() and (got[:, 32:, 3] == 0).all()


def test_palette_png(server, outdir):
    src = gen.palette_png(server.path(f"{outdir}/in"))
    r = one(server, f"{outdir}/in/{src.name}", f"{outdir}/p.jpg", ["resize=0.5"])
    assert (r["outputs"][0]["width"], r["outputs"][0]["height"]) == (226, 150)
    with Image.open(server.path(f"{outdir}/p.jpg")) as im:
        assert im.size == (226, 150) and im.mode == "RGB"


def test_gray_png_stays_gray(server, outdir):
    src = gen.gray_png(server.path(f"{outdir}/in"))
    one(server, f"{outdir}/in/{src.name}", f"{outdir}/g.png", ["rotate=180"])
    got = decode(server.path(f"{outdir}/g.png"))
    ref = np.asarray(Image.open(src))[::-1, ::-1]
    assert got.shape == ref.shape
    assert np.array_equal(got, ref)

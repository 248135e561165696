"""JPEG-to-JPEG crops and redactions on the YCbCr planes, through the real server: the same
sizes and black boxes as the usual path, and IMGSRV_JPEG_PLANES switches it off."""
from __future__ import annotations

import cv2
import pytest

from app.imaging import planar

from .helpers import decode, size_of

pytestmark = pytest.mark.skipif(planar.unavailable() is not None,
                                reason=f"JPEG planes unavailable: {planar.unavailable()}")

SEED = ["crop=bottom:100", "redact=0,-100,200,100", "quality=75"]  # the camera-trap seed pipeline


def seed_request(outdir: str) -> dict:
    return {"images": [{"input": "testimages/grace_hopper.jpg", "output": f"{outdir}/hopper.jpg"},
                       {"input": "testimages/coffee.jpg", "output": f"{outdir}/coffee.jpg"}],
            "operations": SEED}


def test_the_seed_pipeline_gives_the_same_outputs_with_and_without_planes(server, server_factory, outdir):
    assert "JPEG planes: on (libturbojpeg)" in server.log()
    off = server_factory(jpeg_planes="false")
    assert "JPEG planes: off (IMGSRV_JPEG_PLANES=false)" in off.log()
    results = {}
    for name, srv in (("on", server), ("off", off)):
        body = srv.ok(seed_request(outdir))
        assert [r["status"] for r in body["results"]] == ["ok", "ok"]
        results[name] = [(srv.path(r["outputs"][0]["path"]), r["outputs"][0]) for r in body["results"]]
    for (p_on, out_on), (p_off, out_off), size in zip(results["on"], results["off"], [(512, 500), (600, 300)]):
        assert size_of(p_on) == size_of(p_off) == size == (out_on["width"], out_on["height"])
        assert p_on.stat().st_size == out_on["bytes"]
        assert p_on.read_bytes() != p_off.read_bytes()  # each server really took its own path
        a, b = decode(p_on), decode(p_off)
        assert cv2.PSNR(a, b) > 40
        h = size[1]
        assert a[h - 92:, :192].max() <= 10 and b[h - 92:, :192].max() <= 10  # the logo box is black

"""JPEG-to-JPEG crops and redactions on the YCbCr planes, through the real server: the same
sizes and black boxes as the usual path, and IMGSRV_JPEG_PLANES switches it off."""
from __future__ import annotations

import hashlib

import cv2
import pytest

from tests.images import decode_bytes

from .helpers import decode, size_of
from .jobs_helpers import run_job

pytestmark = pytest.mark.needs("turbojpeg")

SEED = ["crop=bottom:100", "redact=0,-100,200,100", "quality=75"]  # the camera-trap seed pipeline


def seed_request(outdir: str) -> dict:
    return {"images": [{"input": "testimages/grace_hopper.jpg", "output": f"{outdir}/hopper.jpg"},
                       {"input": "testimages/coffee.jpg", "output": f"{outdir}/coffee.jpg"}],
            "operations": SEED}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
        assert sha256(p_on) != sha256(p_off), "each server should take its own path"
        a, b = decode(p_on), decode(p_off)
        assert cv2.PSNR(a, b) > 40
        h = size[1]
        assert a[h - 92:, :192].max() <= 10 and b[h - 92:, :192].max() <= 10  # the logo box is black


def test_the_setting_reaches_render_and_jobs(server, server_factory, outdir):
    """/render and POST /jobs follow IMGSRV_JPEG_PLANES as /process does: the same bytes as the
    server's /process output for the same image, and other bytes on a server with it off."""
    off = server_factory(jpeg_planes="false")
    made = {}
    for name, srv in (("on", server), ("off", off)):
        (process,) = srv.ok({"images": [{"input": "testimages/coffee.jpg", "output": f"{outdir}/p.jpg"}],
                             "operations": SEED})["results"]
        expected = srv.path(process["outputs"][0]["path"]).read_bytes()
        r = srv.client.post("/render", data={"operations": SEED},
                            files={"file": ("coffee.jpg", srv.path("testimages/coffee.jpg").read_bytes(), "image/jpeg")})
        assert r.status_code == 200, r.text
        assert r.content == expected, f"{name}: /render did not take the path /process took"
        job = run_job(srv, {"source": {"dir": "testimages", "pattern": "coffee.jpg"}, "output_dir": f"{outdir}/job",
                            "operations": SEED})
        assert job["status"] == "succeeded", job
        assert srv.path(f"{outdir}/job/coffee.jpg").read_bytes() == expected, f"{name}: the job took another path"
        assert decode_bytes(expected).shape[:2] == (300, 600)
        made[name] = expected
    assert made["on"] != made["off"], "the setting changed nothing"

"""SPEC "Other endpoints" and "Operations": what users of the original py-image-server rely on.

``main.py`` exposes the ASGI app as ``app`` (``uvicorn main:app``; ``TestClient(app)`` at
module level, with or without ``with``), ``blur=0`` blurs with the documented default sigma,
and two ``encode`` operations merge, later parameters winning.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import httpx
import numpy as np
import pytest

from .conftest import PROJECT_ROOT, free_port, make_data_root
from .helpers import decode

EXAMPLE = {"images": [{"input": "testimages/cyclo1.jpg", "output": "testoutput/cyclo1_processed.jpg"},
                      {"input": "testimages/cyclo2.jpg", "output": "testoutput/cyclo2_processed.png"}],
           "operations": ["splitQuadrants=True", "resize=2", "blur=0"]}


def _env(data_root) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSRV_")}
    env.update(IMGSRV_DATA_ROOT=str(data_root), IMGSRV_WORKERS="2", PYTHONPATH=str(PROJECT_ROOT))
    return env


CLIENT_SCRIPT = """
import json, sys
from fastapi.testclient import TestClient
from main import app

body = json.loads(sys.argv[1])
if sys.argv[2] == "with":
    with TestClient(app) as client:
        answers = [client.post("/items/", json=body), client.get("/health")]
else:
    client = TestClient(app)  # at module level, no lifespan: the pool starts on first use
    answers = [client.post("/items/", json=body), client.get("/health")]
print(json.dumps([[r.status_code, r.json()] for r in answers]))
"""


@pytest.mark.parametrize("mode", ["without-with", "with"])
def test_the_original_servers_test_pattern_works(tmp_path, mode):
    root = make_data_root(tmp_path)
    proc = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT, json.dumps(EXAMPLE), mode.split("-")[0]],
                          cwd=root, env=_env(root), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (status, answer), (health_status, health) = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status == 200, answer
    assert answer["summary"] == {**answer["summary"], "images": 2, "succeeded": 2, "failed": 0, "outputs": 8}
    assert health_status == 200 and health["workers"] == 2
    for i in range(4):
        for name in ("cyclo1_processed_%d.jpg", "cyclo2_processed_%d.png"):
            assert (root / "testoutput" / (name % i)).is_file()
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_uvicorn_serves_main_app(tmp_path):
    root = make_data_root(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "main:app", "--port", str(port)], cwd=PROJECT_ROOT,
                            env=_env(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")  # type: ignore[union-attr]
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "uvicorn main:app did not answer /health within 60 s"
            time.sleep(0.1)
        r = httpx.post(url + "/items/", json=EXAMPLE, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["summary"]["succeeded"] == 2
        assert len(list((root / "testoutput").iterdir())) == 8
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    # uvicorn shuts down gracefully, then ends by the signal it got
    assert proc.returncode in (0, -signal.SIGTERM)
    output = proc.stdout.read().decode(errors="replace")  # type: ignore[union-attr]
    assert "Application shutdown complete" in output and "Traceback" not in output, output[-3000:]


def test_blur_0_blurs_with_sigma_1(server, outdir):
    out = f"{outdir}/blur0.png"
    plan = server.ok({"images": [{"input": "testimages/cyclo1.jpg", "output": out}], "operations": ["blur=0"]},
                     path="/plan")
    assert plan["operations"] == [{"op": "blur", "kernel": 0, "sigma": 1.0}]
    res = server.ok({"images": [{"input": "testimages/cyclo1.jpg", "output": out}], "operations": ["blur=0"]})
    assert res["results"][0]["status"] == "ok", res
    source = cv2.imread(str(server.path("testimages/cyclo1.jpg")), cv2.IMREAD_UNCHANGED)
    written = decode(server.path(out))
    assert np.array_equal(written, cv2.GaussianBlur(source, (0, 0), 1.0))
    assert not np.array_equal(written, source)


def test_two_encodes_merge_later_parameters_winning(server, outdir):
    def jpeg(name: str, operations: list) -> bytes:
        out = f"{outdir}/{name}.jpg"
        res = server.ok({"images": [{"input": "testimages/cyclo1.jpg", "output": out}], "operations": operations,
                         "options": {"metadata": "strip"}})
        assert res["results"][0]["status"] == "ok", res
        return server.path(out).read_bytes()

    source = cv2.imread(str(server.path("testimages/cyclo1.jpg")), cv2.IMREAD_UNCHANGED)
    flipped = cv2.flip(source, 1)
    merged = jpeg("merged", ["quality=30", "flip=horizontal", "encode=optimize:true"])
    ok, expected = cv2.imencode(".jpg", flipped, [cv2.IMWRITE_JPEG_QUALITY, 30, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    assert ok and merged == expected.tobytes(), "quality 30 and optimize, both"
    # the later quality wins
    later = jpeg("later", ["quality=30", "flip=horizontal", "encode=quality:80"])
    assert later == cv2.imencode(".jpg", flipped, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()

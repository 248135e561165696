"""POST /render (uploads, formats, the streamed size limit, no temp files), POST /compare
(ImageMagick -fuzz semantics, the diff image), GET /metrics (exact counts, with a thread and a
process pool) and the request log (one line per request with its id, process and thread names).

All against the real server over HTTP; images are made with OpenCV in the test or by the
server itself (redact) and decoded here to check what a user would see.
"""
from __future__ import annotations

import os
import re
import socket
import uuid
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from imgsrv_client import Client
from tests.images import decode_bytes

from .conftest import REQUEST_TIMEOUT, TESTIMAGES, Launcher, Server
from .helpers import (decode, entry, grew, metrics, sample, size_of, snapshot, temp_files, wait_for_log,
                      write_image)

UPLOAD_LIMIT = 200_000
LOG_FORMAT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) (?P<process>\S+) (?P<thread>.+?) "
                        r"(?P<logger>[\w.]+): (?P<message>.*)$")


# -- helpers ---------------------------------------------------------------------------------


def noise_png(w: int, h: int, seed: int = 0) -> bytes:
    """A PNG of random pixels: it hardly compresses, so its size is about w * h * 3 bytes."""
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    return buf.tobytes()


def multipart(fields: list[tuple[str, str | None, bytes]], boundary: str) -> bytes:
    """A multipart/form-data body built by hand: (name, filename or None, value)."""
    out = bytearray()
    for name, filename, value in fields:
        out += f"--{boundary}\r\n".encode()
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"Content-Disposition: {disp}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def chunks(data: bytes, size: int = 16384):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def render(server: Server, data: bytes, operations: str = "[]", fmt: str | None = None,
           filename: str = "upload.png") -> httpx.Response:
    form = {"operations": operations}
    if fmt is not None:
        form["format"] = fmt
    return server.client.post("/render", files={"file": (filename, data, "application/octet-stream")}, data=form)



def listing(folder: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, n), folder) for d, dirs, names in os.walk(folder)
            for n in [*names, *dirs]}


# -- servers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory, launcher: Launcher):
    """A server that takes uploads of at most 200000 bytes, with its own TMPDIR."""
    tmpdir = tmp_path_factory.mktemp("limited_tmp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(tmpdir))
        s = launcher.start("limited", max_upload_bytes=UPLOAD_LIMIT)
    s.tmpdir = tmpdir  # type: ignore[attr-defined]
    yield s
    launcher.stop(s)


# -- POST /render ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, ctype, magic", [
    ("png", "image/png", b"\x89PNG\r\n\x1a\n"),
    ("webp", "image/webp", b"RIFF"),
    ("jpeg", "image/jpeg", b"\xff\xd8\xff"),
])
def test_render_format_field(server, fmt, ctype, magic):
    r = render(server, (TESTIMAGES / "chelsea.jpg").read_bytes(), '["flip=horizontal"]', fmt, "chelsea.jpg")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == ctype
    assert r.content.startswith(magic)
    if fmt == "webp":
        assert r.content[8:12] == b"WEBP"
    img = decode_bytes(r.content)
    assert img.shape[:2] == (300, 451)
    assert (r.headers["x-image-width"], r.headers["x-image-height"]) == ("451", "300")


def test_render_default_format_is_the_inputs(server):
    r = render(server, (TESTIMAGES / "camera.png").read_bytes(), '["rotate=90"]', filename="camera.png")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    original = decode(TESTIMAGES / "camera.png")
    assert np.array_equal(decode_bytes(r.content), cv2.rotate(original, cv2.ROTATE_90_CLOCKWISE))


def test_render_unknown_format_is_422(server):
    r = render(server, (TESTIMAGES / "camera.png").read_bytes(), "[]", "gif")
    assert r.status_code == 422, r.text
    assert entry(r.json(), "format")


@pytest.mark.parametrize("ops", ["not json", '["resize=0.5"', '{"op": "blur", "kernel": 4}'])
def test_render_bad_operations_json_is_422(server, ops):
    r = render(server, (TESTIMAGES / "camera.png").read_bytes(), ops)
    assert r.status_code == 422, r.text
    assert any(f and f.startswith("operations") for f in (e.get("field") for e in r.json()["detail"])), r.json()


@pytest.mark.parametrize("form", [
    {"operations": '["resize=0.5", "rotate=90"]'},               # one field, a JSON array (as in /process)
    {"operations": ["resize=0.5", '{"op": "rotate", "angle": 90}']},  # the field repeated, one operation each
])
def test_render_takes_the_operations_as_an_array_or_as_repeated_fields(server, form):
    data = (TESTIMAGES / "coffee.jpg").read_bytes()
    r = server.client.post("/render", files={"file": ("coffee.jpg", data, "image/jpeg")}, data=form)
    assert r.status_code == 200, r.text
    assert decode_bytes(r.content).shape[:2] == (300, 200)  # 600x400 halved, then turned on its side


def test_render_takes_a_single_operation_as_a_plain_string(server):
    r = render(server, (TESTIMAGES / "camera.png").read_bytes(), "resize=0.25")
    assert r.status_code == 200, r.text
    assert decode_bytes(r.content).shape[:2] == (128, 128)


def test_render_invalid_parameter_names_the_field(server):
    r = render(server, (TESTIMAGES / "camera.png").read_bytes(), '["resize=0.5", {"op": "blur", "kernel": 4}]')
    assert r.status_code == 422, r.text
    e = entry(r.json(), "operations[1].kernel")
    assert "odd" in e["msg"] or "kernel" in e["msg"]


def test_render_undecodable_upload_is_422_decode_error(server):
    r = render(server, b"GIF89a but not really an image" * 100, '["grayscale"]', filename="junk.jpg")
    assert r.status_code == 422, r.text
    e = entry(r.json(), "file")
    assert e["type"] == "decode_error"


def test_render_without_a_file_is_422(server):
    r = server.client.post("/render", data={"operations": "[]"}, files={"other": ("x", b"1")})
    assert r.status_code == 422, r.text
    assert entry(r.json(), "file")
    r = server.client.post("/render", json={"operations": []})
    assert r.status_code == 422, r.text


def test_render_under_the_limit_works(limited):
    data = noise_png(200, 150)
    assert len(data) < UPLOAD_LIMIT
    r = render(limited, data, '["grayscale"]')
    assert r.status_code == 200, r.text
    assert decode_bytes(r.content).shape[:2] == (150, 200)


def test_upload_over_the_limit_is_413(limited):
    data = noise_png(300, 250)
    assert len(data) > UPLOAD_LIMIT
    r = render(limited, data, '["grayscale"]')
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "request_too_large"
    # The server goes on serving.
    assert limited.get("/health").status_code == 200
    assert render(limited, noise_png(100, 100), "[]").status_code == 200


def test_upload_over_the_limit_is_413_when_chunked(limited):
    boundary = "imgsrv-test-" + uuid.uuid4().hex
    body = multipart([("operations", None, b'["grayscale"]'), ("file", "big.png", noise_png(300, 250, seed=1))],
                     boundary)
    assert len(body) > UPLOAD_LIMIT
    r = limited.client.post("/render", content=chunks(body),
                            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert "content-length" not in r.request.headers
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 413, r.text
    assert limited.get("/health").status_code == 200

    # The same hand-built, chunked body under the limit is accepted: the refusal was about size.
    small = multipart([("operations", None, b'["grayscale"]'), ("file", "small.png", noise_png(120, 80))], boundary)
    r = limited.client.post("/render", content=chunks(small),
                            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 200, r.text
    assert decode_bytes(r.content).shape[:2] == (80, 120)


def test_upload_limit_answers_before_the_body_ends(limited):
    """413 comes as soon as the limit is crossed: the client has not finished (or even ended) the body."""
    boundary = "imgsrv-raw"
    head = multipart([("operations", None, b"[]")], boundary)[: -len(f"--{boundary}--\r\n")]
    head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
             f"Content-Type: application/octet-stream\r\n\r\n").encode()
    request = (f"POST /render HTTP/1.1\r\nHost: 127.0.0.1:{limited.port}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", limited.port), timeout=REQUEST_TIMEOUT) as sock:
        sock.sendall(request)
        sent = 0
        payload = [head] + [b"\x00" * 16384] * ((UPLOAD_LIMIT * 2) // 16384)
        for piece in payload:  # about twice the limit, and the body never ends
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert limited.get("/health").status_code == 200


def test_render_leaves_no_temporary_files(server_factory, tmp_path, monkeypatch):
    """Uploads larger than Starlette's 1 MB spool threshold, refused ones and failed ones: no temp file stays."""
    tmpdir = tmp_path / "server_tmp"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    s = server_factory(max_upload_bytes=3_000_000)
    big = noise_png(1000, 800, seed=2)  # about 2.4 MB
    assert 1_100_000 < len(big) < 3_000_000
    # A first render starts whatever the pool needs (a fork server's socket folder may live in TMPDIR).
    assert render(s, noise_png(64, 64), "[]").status_code == 200
    before_tmp = listing(tmpdir)
    before_root = snapshot(s.data_root)

    r = render(s, big, '["resize=500x400"]')
    assert r.status_code == 200, r.text
    assert decode_bytes(r.content).shape[:2] == (400, 500)
    r = render(s, big, '["split=2x2"]')
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert render(s, noise_png(1500, 1000, seed=3), "[]").status_code == 413
    assert render(s, b"\x89PNG\r\n\x1a\n" + b"broken" * 300_000, "[]").status_code in (413, 422)
    assert render(s, b"broken" * 300_000, "[]").status_code == 422
    boundary = "imgsrv-tmp"
    body = multipart([("file", "big.png", big)], boundary)
    r = s.client.post("/render", content=chunks(body),
                      headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 200, r.text

    assert s.get("/health").status_code == 200
    assert listing(tmpdir) == before_tmp, f"new files in the server's TMPDIR: {listing(tmpdir) - before_tmp}"
    assert snapshot(s.data_root) == before_root, "/render wrote under the data root"
    assert temp_files(s.data_root) == []


# -- POST /compare ---------------------------------------------------------------------------------


def test_compare_against_a_redacted_copy_counts_the_box(server, outdir):
    """A PNG against a copy of itself with a redacted box: exactly the box's pixels differ."""
    a = "testimages/camera.png"
    original = decode(server.path(a))
    boxes = [(20, 10, 60, 40, 60 * 40), (480, 0, 100, 20, 32 * 20)]  # the second is clipped at the right edge
    for i, (x, y, w, h, area) in enumerate(boxes):
        # The box lies in the bright sky: a black fill changes every pixel of it, even under fuzz 10.
        assert original[y:y + h, x:x + w].min() > 60
        b = f"{outdir}/redacted_{i}.png"
        out = server.ok({"images": [{"input": a, "output": b}], "operations": [f"redact={x},{y},{w},{h}"]})
        assert out["results"][0]["status"] == "ok", out

        for fuzz in (0, 10):
            r = server.post("/compare", {"a": a, "b": b, "fuzz": fuzz})
            assert r.status_code == 200, r.text
            d = r.json()
            assert (d["width"], d["height"]) == (512, 512)
            assert d["different_pixels"] == area, (fuzz, d)
            assert d["different_fraction"] == pytest.approx(area / (512 * 512))
            region = original[y:y + h, x:x + w].astype(np.float64)
            # mean over pixels and channels: gray expands to three equal channels.
            assert d["mean_abs_diff"] == pytest.approx(region.sum() / (512 * 512), abs=1e-3)


def test_compare_writes_the_diff_image(server, outdir):
    a = "testimages/camera.png"
    b = f"{outdir}/redacted.png"
    server.ok({"images": [{"input": a, "output": b}], "operations": ["redact=100,50,80,30"]})
    r = server.post("/compare", {"a": a, "b": b, "output": f"{outdir}/diff.png"})
    assert r.status_code == 200, r.text
    assert r.json()["different_pixels"] == 80 * 30
    diff = decode(server.path(f"{outdir}/diff.png"))
    assert diff.shape == (512, 512, 3)
    red = np.all(diff == (0, 0, 255), axis=2)
    assert red.sum() == 80 * 30
    assert red[50:80, 100:180].all(), "every changed pixel is red"
    # The rest is a faded copy of a: not red anywhere.
    red[50:80, 100:180] = False
    assert not red.any()

    jpg = server.post("/compare", {"a": a, "b": b, "output": f"{outdir}/diff.jpg"})
    assert jpg.status_code == 200, jpg.text
    assert size_of(server.path(f"{outdir}/diff.jpg")) == (512, 512)


def test_compare_without_output_writes_nothing(server, outdir):
    before = snapshot(server.data_root)
    r = server.post("/compare", {"a": "testimages/astronaut.jpg", "b": "testimages/camera.png"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["different_pixels"] > 0 and 0 < d["different_fraction"] <= 1 and d["mean_abs_diff"] > 0
    assert snapshot(server.data_root) == before


def test_compare_fuzz_semantics(server, outdir):
    """fuzz is a colour distance in percent of 255: a uniform change below it counts 0, above it every pixel."""
    rng = np.random.default_rng(7)
    a = rng.integers(60, 190, (48, 64, 3), dtype=np.uint8)
    folder = server.path(outdir)
    write_image(folder / "a.png", a)
    write_image(folder / "small.png", a + 5)    # distance sqrt(3)*5 = 8.7, below 10% of 255 = 25.5
    write_image(folder / "large.png", a + 40)   # distance 69, and 40 per channel: above 25.5 either way
    pixels = 48 * 64

    def cmp(b: str, fuzz: float) -> dict:
        r = server.post("/compare", {"a": f"{outdir}/a.png", "b": f"{outdir}/{b}", "fuzz": fuzz})
        assert r.status_code == 200, r.text
        return r.json()

    assert cmp("small.png", 10)["different_pixels"] == 0
    assert cmp("small.png", 10)["mean_abs_diff"] == pytest.approx(5)
    assert cmp("small.png", 0)["different_pixels"] == pixels  # fuzz 0: exact comparison
    large = cmp("large.png", 10)
    assert large["different_pixels"] == pixels and large["different_fraction"] == 1
    assert large["mean_abs_diff"] == pytest.approx(40)
    assert cmp("large.png", 50)["different_pixels"] == 0  # 50% of 255 = 127.5 > 69
    # The default fuzz is 10%.
    r = server.post("/compare", {"a": f"{outdir}/a.png", "b": f"{outdir}/small.png"})
    assert r.json()["different_pixels"] == 0


def test_compare_different_sizes_is_422(server, outdir):
    r = server.post("/compare", {"a": "testimages/coffee.jpg", "b": "testimages/chelsea.jpg",
                                 "output": f"{outdir}/diff.png"})
    assert r.status_code == 422, r.text
    e = entry(r.json(), "b")
    assert "600x400" in e["msg"] and "451x300" in e["msg"], e
    assert not server.path(f"{outdir}/diff.png").exists()


def test_compare_refusals(server, outdir):
    r = server.post("/compare", {"a": "testimages/missing.png", "b": "testimages/camera.png"})
    assert r.status_code == 422 and entry(r.json(), "a")["type"] == "not_found"
    r = server.post("/compare", {"a": "testimages/camera.png", "b": "../camera.png"})
    assert r.status_code == 403 and entry(r.json(), "b")
    r = server.post("/compare", {"a": "testimages/camera.png", "b": "testimages/camera.png",
                                 "output": f"{outdir}/diff.gif"})
    assert r.status_code == 422 and entry(r.json(), "output")
    r = server.post("/compare", {"a": "testimages/camera.png", "b": "testimages/camera.png", "fuzz": 101})
    assert r.status_code == 422 and entry(r.json(), "fuzz")
    r = server.post("/compare", {"a": "testimages/camera.png", "b": "testimages/astronaut.jpg",
                                 "output": "testimages/camera.png"})
    assert r.status_code == 422 and entry(r.json(), "output")
    assert decode(server.path("testimages/camera.png")).shape == (512, 512)


# -- GET /metrics --------------------------------------------------------------------------------------


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_metrics_count_exactly_the_images_processed(server_factory, outdir, executor):
    s = server_factory(executor=executor, workers=2)
    before = metrics(s)
    inputs = ["coffee.jpg", "chelsea.jpg", "astronaut.jpg"]
    body = {"images": [{"input": f"testimages/{n}", "output": f"{outdir}/{n}"} for n in inputs]
                      + [{"input": "testimages/missing.jpg", "output": f"{outdir}/missing.jpg"}],
            "operations": ["grayscale", "blur=3"]}
    out = s.ok(body)
    assert [r["status"] for r in out["results"]] == ["ok", "ok", "ok", "error"]
    after = metrics(s)

    assert grew(before, after, "imgsrv_images_total", status="ok") == 3
    assert grew(before, after, "imgsrv_images_total", status="error") == 1
    for op in ("grayscale", "blur"):
        assert grew(before, after, "imgsrv_images_processed_total", operation=op) == 3, op
        assert grew(before, after, "imgsrv_images_failed_total", operation=op, code="not_found") == 1, op
        # Worker-side timings reach the server process, one observation per image that ran the operation.
        assert grew(before, after, "imgsrv_operation_duration_seconds_count", operation=op) == 3, op
    for stage in ("decode", "encode", "write"):
        assert grew(before, after, "imgsrv_operation_duration_seconds_count", operation=stage) == 3, stage
    assert grew(before, after, "imgsrv_operation_duration_seconds_sum", operation="decode") > 0
    assert grew(before, after, "imgsrv_http_requests_total", route="/process", method="POST", status="200") == 1
    assert grew(before, after, "imgsrv_http_request_duration_seconds_count", route="/process") == 1

    # A second round: the counters keep adding up, never reset.
    again = metrics(s)
    s.ok({"images": [{"input": "testimages/cyclo1.jpg", "output": f"{outdir}/2/cyclo1.jpg"}],
          "operations": ["grayscale"]})
    r = render(s, (TESTIMAGES / "camera.png").read_bytes(), '["flip=vertical"]')
    assert r.status_code == 200
    last = metrics(s)
    assert grew(again, last, "imgsrv_images_total", status="ok") == 2
    assert grew(again, last, "imgsrv_images_processed_total", operation="grayscale") == 1
    assert grew(again, last, "imgsrv_images_processed_total", operation="flip") == 1
    assert grew(again, last, "imgsrv_images_processed_total", operation="blur") == 0
    assert grew(again, last, "imgsrv_operation_duration_seconds_count", operation="flip") == 1
    assert grew(again, last, "imgsrv_http_requests_total", route="/render", method="POST", status="200") == 1
    assert sample(last, "imgsrv_queue_depth") == 0


def test_metrics_failures_by_code_and_requests_by_status(server_factory, outdir):
    s = server_factory(workers=1)
    before = metrics(s)
    write_image(s.path(f"{outdir}/tiny.png"), np.zeros((10, 10, 3), np.uint8))
    s.path(f"{outdir}/junk.jpg").write_bytes(b"not a jpeg at all")
    out = s.ok({"images": [{"input": f"{outdir}/junk.jpg", "output": f"{outdir}/o/junk.jpg"},
                           {"input": f"{outdir}/tiny.png", "output": f"{outdir}/o/tiny.png"},
                           {"input": f"{outdir}/nope.png", "output": f"{outdir}/o/nope.png"}],
                "operations": ["crop=100,100,10,10"]})
    assert [r["error"]["code"] for r in out["results"]] == ["decode_error", "invalid_operation", "not_found"]
    assert s.process({"images": [{"input": "a.jpg", "output": "b.jpg"}], "operations": ["blur=4"]}).status_code == 422
    assert s.process({"images": [{"input": "../a.jpg", "output": "b.jpg"}]}).status_code == 403
    assert s.get("/jobs/does-not-exist").status_code == 404
    assert s.get("/no/such/route").status_code == 404
    after = metrics(s)

    assert grew(before, after, "imgsrv_images_total", status="error") == 3
    assert grew(before, after, "imgsrv_images_total", status="ok") == 0
    for code in ("decode_error", "invalid_operation", "not_found"):
        assert grew(before, after, "imgsrv_images_failed_total", operation="crop", code=code) == 1, code
    assert grew(before, after, "imgsrv_images_processed_total", operation="crop") == 0
    req = "imgsrv_http_requests_total"
    assert grew(before, after, req, route="/process", method="POST", status="200") == 1
    assert grew(before, after, req, route="/process", method="POST", status="422") == 1
    assert grew(before, after, req, route="/process", method="POST", status="403") == 1
    assert grew(before, after, req, route="/jobs/{job_id}", method="GET", status="404") == 1
    assert grew(before, after, req, route="/metrics", method="GET", status="200") == 1  # the first scrape
    # An unknown URL is counted without a label per path (no label explosion).
    routes = {dict(k[1]).get("route") for k in after if k[0] == req}
    assert "/no/such/route" not in routes


def test_metrics_live_values_and_jobs_by_status(server_factory, outdir):
    s = server_factory(workers=2)
    m = metrics(s)
    assert ("imgsrv_queue_depth", ()) in m and sample(m, "imgsrv_queue_depth") == 0
    assert ("imgsrv_worker_restarts_total", ()) in m and sample(m, "imgsrv_worker_restarts_total") == 0
    for status in ("queued", "running", "succeeded", "failed", "cancelled"):
        assert ("imgsrv_jobs", (("status", status),)) in m, status
        assert sample(m, "imgsrv_jobs", status=status) == 0
    with Client(s.url, timeout=REQUEST_TIMEOUT) as c:
        job = c.wait(c.submit_job(source={"dir": "testimages", "pattern": "*.jpg"}, output_dir=f"{outdir}/job",
                                  operations=["grayscale"]), timeout=REQUEST_TIMEOUT)
    n = len(list(s.path("testimages").glob("*.jpg")))
    assert n > 0, "no test image found: the counts below would compare zeros"
    assert job["status"] == "succeeded" and job["succeeded"] == n
    after = metrics(s)
    assert sample(after, "imgsrv_jobs", status="succeeded") == 1
    assert sample(after, "imgsrv_jobs", status="running") == 0
    assert grew(m, after, "imgsrv_images_total", status="ok") == n
    assert grew(m, after, "imgsrv_images_processed_total", operation="grayscale") == n
    assert grew(m, after, "imgsrv_operation_duration_seconds_count", operation="decode") == n
    assert sample(after, "imgsrv_queue_depth") == 0
    text = s.get("/metrics").text
    for name in ("imgsrv_http_request_duration_seconds_bucket", "imgsrv_operation_duration_seconds_bucket"):
        assert name in text


# -- logging --------------------------------------------------------------------------------------------


def test_one_log_line_per_request_with_its_id(server):
    rid = "test-" + uuid.uuid4().hex[:12]
    r = server.get("/health", headers={"X-Request-ID": rid})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == rid
    lines = wait_for_log(server, lambda ls: any(rid in line for line in ls), f"the request id {rid}")
    mine = [line for line in lines if rid in line]
    assert len(mine) == 1, mine
    m = LOG_FORMAT.match(mine[0])
    assert m, f"not in the format 'time LEVEL process thread logger: message': {mine[0]!r}"
    assert m["level"] == "INFO" and m["logger"].startswith("imgsrv")
    assert m["process"] == "MainProcess" and m["thread"] == "MainThread", mine[0]
    assert "GET /health 200" in m["message"]

    # Without a header the server makes an id up, answers it, and logs it.
    r = server.post("/plan", {"images": [{"input": "testimages/coffee.jpg", "output": "x/c.jpg"}],
                              "operations": ["blur=4"]})
    assert r.status_code == 422
    gen = r.headers["x-request-id"]
    assert gen
    lines = wait_for_log(server, lambda ls: any(gen in line for line in ls), f"the request id {gen}")
    mine = [line for line in lines if gen in line]
    assert len(mine) == 1 and "POST /plan 422" in mine[0], mine


def test_each_request_gets_its_own_id(server):
    ids = [server.get("/health").headers["x-request-id"] for _ in range(5)]
    assert len(set(ids)) == 5
    lines = wait_for_log(server, lambda ls: all(any(i in line for line in ls) for i in ids), "all five ids")
    for i in ids:
        assert sum(i in line for line in lines) == 1


def test_log_lines_show_process_and_thread_names_and_job_events(server, outdir):
    with Client(server.url, timeout=REQUEST_TIMEOUT) as c:
        job_id = c.submit_job(source={"dir": "testimages", "pattern": "c*.jpg"}, output_dir=f"{outdir}/job",
                              operations=["grayscale"])
        assert c.wait(job_id, timeout=REQUEST_TIMEOUT)["status"] == "succeeded"
    lines = wait_for_log(server, lambda ls: any(job_id in line and "succeeded" in line for line in ls),
                         f"the end of job {job_id}")
    job_lines = [line for line in lines if job_id in line and "imgsrv.jobs" in line]
    assert job_lines, "no job event is logged by imgsrv.jobs"
    for line in job_lines:
        m = LOG_FORMAT.match(line)
        assert m, f"not in the log format: {line!r}"
        assert m["process"] and m["thread"]
    # Every record of Python logging, the server's own and uvicorn's, is in the one format.
    # (Native libraries such as libpng may print to stderr by themselves; those lines are not records.)
    records = [line for line in lines if re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line)]
    bad = [line for line in records if not LOG_FORMAT.match(line)]
    assert not bad, f"log records outside the format: {bad[:5]}"
    for startup in ("Started server process", "Application startup complete"):
        found = [line for line in lines if startup in line]
        assert found and LOG_FORMAT.match(found[0]), f"uvicorn's {startup!r} line is not in the format: {found}"


def test_job_start_and_end_are_logged(server, outdir):
    """A reader of the log sees a job begin and end (issue 4: one line per job event), in that order."""
    with Client(server.url, timeout=REQUEST_TIMEOUT) as c:
        job_id = c.submit_job(source={"dir": "testimages", "pattern": "a*.jpg"}, output_dir=f"{outdir}/job",
                              operations=["flip=vertical"])
        assert c.wait(job_id, timeout=REQUEST_TIMEOUT)["status"] == "succeeded"
    lines = wait_for_log(server, lambda ls: any(job_id in line and "succeeded" in line for line in ls),
                         f"the end of job {job_id}")
    events = [line for line in lines if job_id in line and " imgsrv.jobs: " in line]
    assert len(events) >= 2, f"only {len(events)} job event(s) logged for {job_id}: {events}"
    assert "succeeded" in events[-1]
    assert "succeeded" not in events[0], f"the job's start is not logged before its end: {events}"

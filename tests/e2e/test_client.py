"""End-to-end through imgsrv_client (sync and async) against the real server.

Every call goes over HTTP to ``python main.py``; the tests look at what the client hands
back (dicts, RenderResult, typed errors) and at the files the server wrote.
"""
from __future__ import annotations

import asyncio
import io
import zipfile

import pytest

from imgsrv_client import (AsyncClient, Client, ForbiddenPath, ImgsrvError, JobTimeout, NotFound, QueueFull,
                        RenderResult, TooLarge, ValidationError)
from tests.images import decode_bytes

from .conftest import TESTIMAGES
from .helpers import size_of
from .jobs_helpers import slow_folder

TIMEOUT = 120.0


@pytest.fixture
def client(server):
    with Client(server.url, timeout=TIMEOUT) as c:
        yield c



# -- images -------------------------------------------------------------------------------------


def test_health_and_operations(client):
    h = client.health()
    assert h["status"] == "ok" and h["workers"] >= 1 and h["version"]
    names = {op["name"] for op in client.operations()}
    assert {"resize", "split", "blur", "redact", "encode"} <= names


def test_process_results_and_summary(client, server, outdir):
    out = client.process([("testimages/cyclo1.jpg", f"{outdir}/c1.jpg"),
                          {"input": "testimages/coffee.jpg", "output": f"{outdir}/coffee.png"}],
                         [{"op": "resize", "width": 300}])
    assert [r["status"] for r in out["results"]] == ["ok", "ok"]
    assert [r["input"] for r in out["results"]] == ["testimages/cyclo1.jpg", "testimages/coffee.jpg"]
    s = out["summary"]
    assert (s["images"], s["succeeded"], s["failed"], s["skipped"], s["outputs"]) == (2, 2, 0, 0, 2)
    assert s["input_bytes"] == sum(r["input_bytes"] for r in out["results"]) > 0
    assert s["output_bytes"] == sum(o["bytes"] for r in out["results"] for o in r["outputs"]) > 0
    first, second = (r["outputs"][0] for r in out["results"])
    assert (first["width"], first["height"]) == (300, 200)  # 451x300 -> width 300, aspect kept (299.6 rounds up)
    assert size_of(server.path(f"{outdir}/c1.jpg")) == (first["width"], first["height"])
    assert size_of(server.path(f"{outdir}/coffee.png")) == (second["width"], second["height"]) == (300, 200)


def test_process_options_are_sent(client, server, outdir):
    images = [("testimages/chelsea.jpg", f"{outdir}/chelsea.jpg")]
    assert client.process(images, ["grayscale"])["results"][0]["status"] == "ok"
    again = client.process(images, ["grayscale"], options={"skip_existing": True})
    assert again["results"][0]["status"] == "skipped"
    assert again["summary"]["skipped"] == 1


def test_plan_names_outputs_without_writing(client, server, outdir):
    p = client.plan([("testimages/cyclo1.jpg", f"{outdir}/cyclo1_processed.jpg")],
                    ["splitQuadrants=True", "blur=5"])
    assert [op["op"] for op in p["operations"]] == ["split", "blur"]
    assert p["operations"][1]["kernel"] == 5
    assert p["outputs"] == 4
    assert p["images"][0]["outputs"] == [f"{outdir}/cyclo1_processed_{i}.jpg" for i in range(4)]
    assert not server.path(outdir).exists()


def test_render_single_image_from_path_and_bytes(client):
    r = client.render(TESTIMAGES / "coffee.jpg", ["resize=300x200"])
    assert isinstance(r, RenderResult)
    assert r.content_type == "image/jpeg" and not r.is_zip
    assert r.content[:3] == b"\xff\xd8\xff"
    img = decode_bytes(r.content)
    assert img.shape[:2] == (200, 300)
    assert (r.width, r.height) == (300, 200)
    assert r.filename == "coffee.jpg"

    r2 = client.render((TESTIMAGES / "coffee.jpg").read_bytes(), [{"op": "resize", "width": 120}])
    assert decode_bytes(r2.content).shape[:2] == (80, 120)
    assert (r2.width, r2.height) == (120, 80)


def test_resize_by_scale_gives_the_scaled_size(client, server, outdir):
    """resize=0.5 halves each side: 600x400 -> 300x200, whether written by /process or answered by /render."""
    out = client.process([("testimages/coffee.jpg", f"{outdir}/half.jpg"),
                          ("testimages/astronaut.jpg", f"{outdir}/quarter.jpg")], ["resize=0.5"])
    sizes = [(r["outputs"][0]["width"], r["outputs"][0]["height"]) for r in out["results"]]
    assert sizes == [(300, 200), (256, 256)], f"resize=0.5 gave {sizes}"
    assert size_of(server.path(f"{outdir}/half.jpg")) == (300, 200)
    r = client.render(TESTIMAGES / "coffee.jpg", ["resize=0.25"])
    assert decode_bytes(r.content).shape[:2] == (100, 150), "resize=0.25 of a 600x400 JPEG upload"


def test_render_file_object_and_format(client):
    with open(TESTIMAGES / "chelsea.jpg", "rb") as fh:
        r = client.render(fh, ["rotate=90"], format="png")
    assert r.content_type == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert decode_bytes(r.content).shape[:2] == (451, 300)


def test_render_fan_out_is_a_zip(client):
    r = client.render(TESTIMAGES / "coffee.jpg", ["split=2x3"])
    assert r.is_zip and r.content_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        names = zf.namelist()
        assert zipfile.is_zipfile(io.BytesIO(r.content))
        assert names == [f"coffee_{i}.jpg" for i in range(6)]
        for name in names:
            assert decode_bytes(zf.read(name)).shape[:2] == (200, 200)
    assert sorted(r.files()) == sorted(names)


def test_compare_identical_and_with_diff_output(client, server, outdir):
    same = client.compare("testimages/coffee.jpg", "testimages/coffee.jpg")
    assert same["different_pixels"] == 0 and same["different_fraction"] == 0 and same["mean_abs_diff"] == 0
    assert (same["width"], same["height"]) == (600, 400)

    client.process([("testimages/coffee.jpg", f"{outdir}/flipped.png")], ["flip=horizontal"])
    d = client.compare("testimages/coffee.jpg", f"{outdir}/flipped.png", output=f"{outdir}/diff.png", fuzz=0)
    assert d["different_pixels"] > 0
    assert d["different_fraction"] == pytest.approx(d["different_pixels"] / (600 * 400))
    assert size_of(server.path(f"{outdir}/diff.png")) == (600, 400)


# -- jobs -----------------------------------------------------------------------------------------


def test_submit_job_and_wait_with_progress(client, server, outdir):
    slow_folder(server.path(f"{outdir}/in"), 6)
    job_id = client.submit_job(source={"dir": f"{outdir}/in", "pattern": "*.jpg"}, output_dir=f"{outdir}/out",
                               operations=["blur=kernel:151"])
    assert isinstance(job_id, str) and job_id
    seen: list[dict] = []
    final = client.wait(job_id, poll=0.05, timeout=TIMEOUT, progress=seen.append)
    assert final["status"] == "succeeded", final
    assert final["done"] == final["total"] == 6 and final["succeeded"] == 6
    assert seen, "the progress callback was never called"
    assert seen[-1] == final
    done = [j["done"] for j in seen]
    assert done == sorted(done), f"done went backwards: {done}"
    assert done[0] < done[-1] == 6, f"the callback never saw the job in progress: {done}"
    assert all(j["id"] == job_id for j in seen)

    page = client.results(job_id, offset=0, limit=4)
    assert page["total"] == 6 and len(page["results"]) == 4
    rest = client.results(job_id, offset=4, limit=4)
    assert len(rest["results"]) == 2
    assert client.results(job_id, status="error")["total"] == 0
    assert client.job(job_id)["status"] == "succeeded"
    assert job_id in [j["id"] for j in client.jobs()]


def test_wait_timeout_then_cancel(client, server, outdir):
    slow_folder(server.path(f"{outdir}/in"), 8)
    job_id = client.submit_job(source={"dir": f"{outdir}/in"}, output_dir=f"{outdir}/out",
                               operations=["blur=kernel:255"])
    with pytest.raises(JobTimeout) as info:
        client.wait(job_id, timeout=0)
    assert info.value.job is not None and info.value.job["id"] == job_id
    assert info.value.job["status"] in ("queued", "running")
    ended = client.cancel(job_id)
    assert ended["id"] == job_id
    final = client.wait(job_id, timeout=TIMEOUT)
    assert final["status"] == "cancelled"


# -- typed errors ---------------------------------------------------------------------------------


def test_validation_error_names_the_field(client, server, outdir):
    with pytest.raises(ImgsrvError) as info:  # one except clause catches every refusal
        client.process([("testimages/coffee.jpg", f"{outdir}/x.jpg")], [{"op": "blur", "kernel": 4}])
    e = info.value
    assert type(e) is ValidationError and e.status_code == 422
    assert e.field == "operations[0].kernel"
    assert e.code and isinstance(e.code, str)
    assert "kernel" in str(e)
    assert not server.path(outdir).exists()

    with pytest.raises(ValidationError) as info:
        client.plan([("testimages/coffee.jpg", f"{outdir}/x.jpg")], ["resize=1", "nosuchop=3"])
    assert info.value.field is not None and info.value.field.startswith("operations[1]")


def test_forbidden_path_is_403(client, server, outdir):
    with pytest.raises(ForbiddenPath) as info:
        client.process([("../outside.jpg", f"{outdir}/x.jpg")], [])
    e = info.value
    assert e.status_code == 403
    assert e.field == "images[0].input"
    assert e.code == "forbidden_path"
    with pytest.raises(ForbiddenPath) as info:
        client.compare("testimages/coffee.jpg", "/etc/passwd")
    assert info.value.field == "b"


def test_unknown_job_is_404(client):
    with pytest.raises(NotFound) as info:
        client.job("no-such-job")
    assert info.value.status_code == 404
    assert info.value.code == "not_found"
    assert "no-such-job" in info.value.message
    with pytest.raises(NotFound):
        client.results("no-such-job")
    with pytest.raises(NotFound):
        client.cancel("no-such-job")


def test_render_errors_are_typed(client):
    with pytest.raises(ValidationError) as info:
        client.render(b"this is not an image", ["resize=0.5"])
    assert info.value.code == "decode_error" and info.value.field == "file"
    with pytest.raises(ValidationError) as info:
        client.render(TESTIMAGES / "coffee.jpg", [{"op": "resize", "scale": 99}])
    assert info.value.field == "operations[0].scale"


def test_compare_sizes_differ_is_a_validation_error(client):
    with pytest.raises(ValidationError) as info:
        client.compare("testimages/coffee.jpg", "testimages/chelsea.jpg")
    assert info.value.field == "b"
    assert "size" in info.value.message


def test_queue_full_carries_retry_after(server_factory, outdir):
    s = server_factory(workers=1, max_queue=0)
    with Client(s.url, timeout=TIMEOUT) as c:
        with pytest.raises(QueueFull) as info:
            c.process([(f"testimages/{n}", f"{outdir}/{n}") for n in ("coffee.jpg", "chelsea.jpg", "cyclo1.jpg")])
        e = info.value
        assert e.status_code == 429 and e.code == "queue_full"
        assert e.retry_after is not None and e.retry_after >= 1
        assert c.health()["status"] == "ok"


def test_too_many_images_is_too_large(server_factory, outdir):
    s = server_factory(max_images_per_request=2)
    with Client(s.url, timeout=TIMEOUT) as c:
        with pytest.raises(TooLarge) as info:
            c.process([(f"testimages/{n}", f"{outdir}/{n}") for n in ("coffee.jpg", "chelsea.jpg", "cyclo1.jpg")])
        assert info.value.status_code == 413
        assert info.value.code == "request_too_large"


# -- the async client --------------------------------------------------------------------------------


def test_async_client_end_to_end(server, outdir):
    slow_folder(server.path(f"{outdir}/in"), 4)

    async def go() -> None:
        async with AsyncClient(server.url, timeout=TIMEOUT) as c:
            assert (await c.health())["status"] == "ok"
            assert "resize" in {op["name"] for op in await c.operations()}

            out = await c.process([("testimages/astronaut.jpg", f"{outdir}/a.jpg")], ["resize=128x128"])
            assert out["summary"]["succeeded"] == 1
            assert out["results"][0]["outputs"][0]["width"] == 128

            plan = await c.plan([("testimages/astronaut.jpg", f"{outdir}/q.jpg")], ["split=True"])
            assert plan["outputs"] == 4

            r = await c.render(TESTIMAGES / "astronaut.jpg", ["grayscale"], format="webp")
            assert r.content_type == "image/webp" and decode_bytes(r.content).shape[:2] == (512, 512)
            z = await c.render(TESTIMAGES / "astronaut.jpg", ["split=1x4"])
            assert z.is_zip and len(z.files()) == 4

            cmp = await c.compare("testimages/astronaut.jpg", "testimages/astronaut.jpg")
            assert cmp["different_pixels"] == 0

            # Several requests at once over one client.
            many = await asyncio.gather(*(c.render(TESTIMAGES / "camera.png", [{"op": "resize", "width": k}])
                                          for k in (512, 256, 128)))
            assert [decode_bytes(m.content).shape[:2] for m in many] == [(512, 512), (256, 256), (128, 128)]

            job_id = await c.submit_job(source={"dir": f"{outdir}/in"}, output_dir=f"{outdir}/out",
                                        operations=["blur=kernel:151"])
            seen: list[int] = []

            async def progress(job: dict) -> None:
                seen.append(job["done"])

            final = await c.wait(job_id, poll=0.05, timeout=TIMEOUT, progress=progress)
            assert final["status"] == "succeeded" and final["done"] == 4
            assert seen and seen == sorted(seen) and seen[0] < seen[-1] == 4
            assert (await c.results(job_id))["total"] == 4

            with pytest.raises(ValidationError) as info:
                await c.process([("testimages/coffee.jpg", f"{outdir}/x.jpg")], [{"op": "blur", "kernel": 4}])
            assert info.value.field == "operations[0].kernel"
            with pytest.raises(ForbiddenPath):
                await c.plan([("testimages/coffee.jpg", "../../x.jpg")])
            with pytest.raises(NotFound) as nf:
                await c.job("nope")
            assert nf.value.code == "not_found"
            with pytest.raises(NotFound):
                await c.cancel("nope")

    asyncio.run(go())

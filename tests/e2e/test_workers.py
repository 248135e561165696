"""The worker pool: a worker that dies fails only its image, the time limit, the thread executor."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from .helpers import size_of, slow_image, temp_files, wait_until_busy, write_image, write_slow_inputs

SLOW_OPS = ["blur=kernel:255"]  # seconds per 12-megapixel image on one core


def small_request(i: int) -> dict:
    return {"images": [{"input": "testimages/cyclo1.jpg", "output": f"after/{i}/a.jpg"},
                       {"input": "testimages/camera.png", "output": f"after/{i}/b.png"}],
            "operations": ["split=True", "grayscale"]}


def test_a_killed_worker_fails_only_the_image_it_held(server_factory):
    s = server_factory(workers=2)
    inputs = write_slow_inputs(s, 3)
    body = {"images": [{"input": p, "output": f"out/{i}.jpg"} for i, p in enumerate(inputs)],
            "operations": SLOW_OPS}
    s.ok(small_request(-1))  # the pool is up
    workers = s.pool_workers(2)
    assert len(workers) == 2, f"expected 2 pool workers under the fork server, found {len(workers)}"
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(s.client.post, "/process", json=body)
        victim = wait_until_busy(workers, pending)
        assert victim is not None, "no pool worker started working on the request"
        victim.kill()  # SIGKILL
        r = pending.result(timeout=180)

    assert r.status_code == 200, r.text
    res = r.json()
    statuses = [x["status"] for x in res["results"]]
    crashed = [i for i, x in enumerate(res["results"]) if x["status"] == "error"]
    assert len(crashed) == 1, f"one image should fail, got {statuses} {[x['error'] for x in res['results']]}"
    (bad,) = crashed
    assert res["results"][bad]["error"]["code"] == "worker_crashed", res["results"][bad]
    assert bad in (0, 1), f"the killed worker held image 0 or 1 (the first two scheduled), not {bad}"
    assert statuses.count("ok") == 2
    for i, x in enumerate(res["results"]):
        if i == bad:
            assert not s.path(f"out/{i}.jpg").exists()
        else:
            assert size_of(s.path(f"out/{i}.jpg")) == (4000, 3000)
    assert res["summary"]["failed"] == 1 and res["summary"]["succeeded"] == 2
    assert temp_files(s.data_root) == []

    # the pool recovered: the next ten requests all succeed
    for i in range(10):
        again = s.ok(small_request(i))
        assert [x["status"] for x in again["results"]] == ["ok", "ok"], again["results"]
    health = s.get("/health").json()
    assert health["status"] == "ok" and health["workers"] == 2


def test_an_image_over_the_time_limit_is_timeout_and_the_next_request_succeeds(server_factory):
    s = server_factory(workers=2, task_timeout=0.5)
    (slow,) = write_slow_inputs(s, 1)
    # a tiny image takes milliseconds even with the big kernel, however busy the machine
    tiny = slow_image(60, 80)
    write_image(s.path("tiny/t.png"), tiny)
    res = s.ok({"images": [{"input": slow, "output": "out/slow.jpg"},
                           {"input": "tiny/t.png", "output": "out/fast.png"}],
                "operations": SLOW_OPS})
    first, second = res["results"]
    assert first["status"] == "error" and first["error"]["code"] == "timeout", first
    assert not s.path("out/slow.jpg").exists()
    assert second["status"] == "ok", second
    assert size_of(s.path("out/fast.png")) == (80, 60)
    assert res["summary"]["failed"] == 1 and res["summary"]["succeeded"] == 1

    again = s.ok({"images": [{"input": "tiny/t.png", "output": f"after/{i}.png"} for i in range(2)],
                  "operations": ["grayscale", "rotate=90"]})
    assert [x["status"] for x in again["results"]] == ["ok", "ok"], again["results"]
    assert size_of(s.path("after/1.png")) == (60, 80)
    assert temp_files(s.data_root) == []


def test_thread_executor(server_factory, tmp_path):
    state = tmp_path / "state"
    s = server_factory(executor="thread", workers=2, state_dir=state)
    h = s.get("/health").json()
    assert h["status"] == "ok" and h["executor"] == "thread" and h["workers"] == 2
    res = s.ok({"images": [{"input": "testimages/cyclo1.jpg", "output": "out/c1.jpg"},
                           {"input": "testimages/missing.jpg", "output": "out/m.jpg"},
                           {"input": "testimages/cyclo2.jpg", "output": "out/c2.png"}],
                "operations": ["splitQuadrants=True", "resize=2", {"op": "blur", "kernel": 5}]})
    assert [x["status"] for x in res["results"]] == ["ok", "error", "ok"]
    assert res["results"][1]["error"]["code"] == "not_found"
    assert sorted(os.listdir(s.path("out"))) == sorted([f"c1_{i}.jpg" for i in range(4)] +
                                                       [f"c2_{i}.png" for i in range(4)])
    for o in res["results"][0]["outputs"] + res["results"][2]["outputs"]:
        assert size_of(s.path(o["path"])) == (o["width"], o["height"])
        assert s.path(o["path"]).stat().st_size == o["bytes"]
    # IMGSRV_STATE_DIR: the state lives there, not in the data root
    assert not s.path(".imgsrv").exists(), "IMGSRV_STATE_DIR was given but .imgsrv was made in the data root"
    assert any(state.iterdir()), "nothing in IMGSRV_STATE_DIR"


def test_command_line_options_override_the_environment(server_factory):
    s = server_factory(workers=2, executor="process", args=("--workers", "3", "--executor", "thread"))
    h = s.get("/health").json()
    assert (h["executor"], h["workers"]) == ("thread", 3)
    res = s.ok({"images": [{"input": "testimages/cyclo1.jpg", "output": "out/c.jpg"}], "operations": ["grayscale"]})
    assert res["results"][0]["status"] == "ok"

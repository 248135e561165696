"""Property: no sequence of requests without ``overwrite: always`` changes a byte of a file
imgsrv did not write.

The requests go the product's way, minus HTTP: the planner (paths, output names, the
overwrite policy with the record of what imgsrv wrote), the worker (read, render, write) and
the store (what was written). Between requests the "user" writes files at names the requests
may use, or changes files imgsrv wrote (which makes them the user's).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import RequestError
from app.operations import parse_operation
from app.plan import Planner, build_pipeline
from app.render.worker import run_image
from app.state import Store
from app.tasks import Overwrite, Status
from tests import images

NAMES = ["out/a.jpg", "out/a_0.jpg", "out/a_1.jpg", "out/b.png", "out/sub/c.jpg"]
OPERATIONS = [["grayscale"], ["split=1x2"], ["resize=0.5"], ["flip=vertical", "quality=50"]]

REQUEST = st.tuples(st.just("request"), st.lists(st.sampled_from(NAMES), min_size=1, max_size=3),
                    st.sampled_from(OPERATIONS), st.sampled_from([Overwrite.OWN, Overwrite.NEVER]), st.booleans())
USER_WRITES = st.tuples(st.just("user"), st.sampled_from(NAMES), st.binary(min_size=1, max_size=64))
STEPS = st.lists(st.one_of(REQUEST, USER_WRITES), min_size=1, max_size=8)


@pytest.fixture
def world(tmp_path):
    root = Path(os.path.realpath(tmp_path)) / "root"
    (root / "in").mkdir(parents=True)
    shutil.copyfile(images.testimage("chelsea.jpg"), root / "in" / "cat.jpg")
    shutil.copyfile(images.testimage("camera.png"), root / "in" / "camera.png")
    return root


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_no_request_without_always_changes_a_file_imgsrv_did_not_write(world, steps):
    root = world / f"run{os.getpid()}"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(world / "in", root / "in")
    store = Store(root / ".imgsrv")
    planner = Planner(str(root), 10**8, store.expected, state_dir=str(root / ".imgsrv"), owned=store.owned)
    users: dict[str, bytes] = {}  # the files imgsrv did not write, as the user left them
    try:
        for step in steps:
            if step[0] == "user":
                _kind, name, data = step
                path = root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                users[name] = data
            else:
                _kind, outputs, ops, overwrite, skip = step
                pipeline = build_pipeline([parse_operation(op) for op in ops], "keep", 10**8)
                pairs = [(("in/cat.jpg", "in/camera.png")[i % 2], out) for i, out in enumerate(outputs)]
                try:
                    planned = planner.images(pairs, pipeline, skip_existing=skip, overwrite=overwrite)
                except RequestError:
                    continue  # refused as a whole: nothing written
                reports = [run_image(p.task) for p in planned]  # type: ignore[arg-type]
                store.record(reports, pipeline.digest())
                written = {os.path.relpath(o.path, root) for r in reports if r.status == Status.OK
                           for o in r.outputs}
                for name, data in users.items():
                    assert (root / name).read_bytes() == data, f"{name} was changed by {step}"
                    assert name not in written
        for name, data in users.items():
            assert (root / name).read_bytes() == data
        assert not list(root.rglob(".imgsrv-tmp-*")), "a temporary file was left"
    finally:
        store.close()

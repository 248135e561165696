"""SPEC "POST /plan": normalised operations and output paths; nothing read or written."""
from __future__ import annotations

import pytest

from .helpers import fields, folders, snapshot

EXAMPLE_OPS = ["splitQuadrants=True", "resize=2", {"op": "blur", "kernel": 5}]


@pytest.fixture(scope="module")
def schemas(server) -> dict[str, dict]:
    r = server.get("/operations")
    assert r.status_code == 200
    return {o["name"]: o["schema"] for o in r.json()["operations"]}


def plan(server, body) -> dict:
    before, dirs = snapshot(server.data_root), folders(server.data_root)
    r = server.post("/plan", json=body)
    assert r.status_code == 200, r.text
    assert snapshot(server.data_root) == before, "/plan changed files"
    assert folders(server.data_root) == dirs, "/plan made folders"
    return r.json()


def test_plan_of_the_example(server, outdir, schemas):
    res = plan(server, {"images": [{"input": "testimages/cyclo1.jpg", "output": f"{outdir}/cyclo1_processed.jpg"},
                                   {"input": "testimages/cyclo2.jpg", "output": f"{outdir}/cyclo2_processed.png"}],
                        "operations": EXAMPLE_OPS})
    assert res["operations"] == [
        {"op": "split", "rows": 2, "cols": 2, "overlap": 0},
        {"op": "resize", "scale": 2.0, "width": None, "height": None, "fit": "contain"},
        {"op": "blur", "kernel": 5, "sigma": 0.0},
    ]
    assert [im["input"] for im in res["images"]] == ["testimages/cyclo1.jpg", "testimages/cyclo2.jpg"]
    assert [im["output"] for im in res["images"]] == [f"{outdir}/cyclo1_processed.jpg",
                                                      f"{outdir}/cyclo2_processed.png"]
    assert res["images"][0]["outputs"] == [f"{outdir}/cyclo1_processed_{i}.jpg" for i in range(4)]
    assert res["images"][1]["outputs"] == [f"{outdir}/cyclo2_processed_{i}.png" for i in range(4)]
    assert res["outputs"] == 8
    assert not server.path(outdir).exists()


@pytest.mark.parametrize("op, expect", [
    ("crop=bottom:100", {"op": "crop", "bottom": 100}),
    ("crop=10,20,30,40", {"op": "crop", "x": 10, "y": 20, "width": 30, "height": 40}),
    ("redact=0,-100,200,100", {"op": "redact", "x": 0, "y": -100, "width": 200, "height": 100, "mode": "fill",
                               "color": [0, 0, 0]}),
    ("faces=action:blur,min_neighbors:3", {"op": "faces", "action": "blur", "min_neighbors": 3, "scale_factor": 1.1,
                                           "min_size": 30}),
    ("faces", {"op": "faces", "action": "detect"}),
    ("quality=30", {"op": "encode", "quality": 30}),
    ("encode=quality:30", {"op": "encode", "quality": 30}),
    ("threshold=otsu", {"op": "threshold", "method": "otsu"}),
    ("threshold=127", {"op": "threshold", "method": "binary", "value": 127}),
    ("resize=800x600", {"op": "resize", "width": 800, "height": 600, "scale": None, "fit": "contain"}),
    ("resize=0.5", {"op": "resize", "scale": 0.5, "width": None, "height": None}),
    ("split=3x4", {"op": "split", "rows": 3, "cols": 4, "overlap": 0}),
    ("rotate=90", {"op": "rotate", "angle": 90}),
    ("flip=horizontal", {"op": "flip", "axis": "horizontal"}),
    ("grayscale", {"op": "grayscale"}),
    ("blur=5", {"op": "blur", "kernel": 5, "sigma": 0.0}),
    ({"op": "blur", "kernel": 0, "sigma": 3}, {"op": "blur", "kernel": 0, "sigma": 3.0}),
], ids=lambda v: v if isinstance(v, str) else None)
def test_plan_normalises_every_operation_to_the_object_form(server, outdir, schemas, op, expect):
    res = plan(server, {"images": [{"input": "testimages/cyclo1.jpg", "output": f"{outdir}/x.jpg"}],
                        "operations": [op]})
    (norm,) = res["operations"]
    assert isinstance(norm, dict)
    for key, value in expect.items():
        assert norm.get(key) == value, f"{key}: {norm}"
    props = set(schemas[norm["op"]]["properties"])
    assert set(norm) == props, f"not every parameter is explicit: {sorted(props - set(norm))} missing"


def test_plan_does_not_read_inputs(server, outdir):
    """A missing input and a text file named .jpg are fine for /plan: it reads no image."""
    server.path(f"{outdir}/in").mkdir(parents=True)
    server.path(f"{outdir}/in/text.jpg").write_text("this is not a JPEG")
    res = plan(server, {"images": [{"input": f"{outdir}/in/missing.jpg", "output": f"{outdir}/out/a.jpg"},
                                   {"input": f"{outdir}/in/text.jpg", "output": f"{outdir}/out/b.png"}],
                        "operations": ["grayscale", "split=1x2"]})
    assert [im["outputs"] for im in res["images"]] == [[f"{outdir}/out/a_0.jpg", f"{outdir}/out/a_1.jpg"],
                                                       [f"{outdir}/out/b_0.png", f"{outdir}/out/b_1.png"]]
    assert res["outputs"] == 4
    assert not server.path(f"{outdir}/out").exists()


def test_plan_without_operations(server, outdir):
    res = plan(server, {"images": [{"input": "testimages/camera.png", "output": f"{outdir}/c.webp"}]})
    assert res["operations"] == []
    assert res["images"][0]["outputs"] == [f"{outdir}/c.webp"]
    assert res["outputs"] == 1


BAD_BODIES = {
    "not_json": (b"not json{", 422),
    "wrong_type": ({"images": [{"input": 5, "output": "o/x.jpg"}]}, 422),
    "unknown_op": ({"images": [{"input": "testimages/cyclo1.jpg", "output": "o/x.jpg"}], "operations": ["emboss"]}, 422),
    "out_of_range": ({"images": [{"input": "testimages/cyclo1.jpg", "output": "o/x.jpg"}],
                      "operations": ["resize=2", "grayscale", {"op": "blur", "kernel": 4}]}, 422),
    "dotdot": ({"images": [{"input": "../x.jpg", "output": "o/x.jpg"}]}, 403),
    "abs_output_elsewhere": ({"images": [{"input": "testimages/cyclo1.jpg", "output": "/tmp/x.jpg"}]}, 403),
    "output_is_input": ({"images": [{"input": "testimages/cyclo1.jpg",
                                     "output": "./testimages/../testimages/cyclo1.jpg"}]}, 422),
    "same_output": ({"images": [{"input": "testimages/cyclo1.jpg", "output": "o/x.jpg"},
                                {"input": "testimages/cyclo2.jpg", "output": "o/x.jpg"}]}, 422),
    "bad_extension": ({"images": [{"input": "testimages/cyclo1.jpg", "output": "o/x.txt"}]}, 422),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_plan_gives_the_same_validation_errors_as_process(server, name):
    bad, status = BAD_BODIES[name]
    before = snapshot(server.data_root)
    answers = []
    for path in ("/plan", "/process"):
        if isinstance(bad, bytes):
            r = server.client.post(path, content=bad, headers={"content-type": "application/json"})
        else:
            r = server.post(path, json=bad)
        answers.append(r)
    plan_r, process_r = answers
    assert plan_r.status_code == process_r.status_code == status, (plan_r.text, process_r.text)
    assert fields(plan_r.json()) == fields(process_r.json())
    assert plan_r.json()["detail"] == process_r.json()["detail"]
    assert snapshot(server.data_root) == before

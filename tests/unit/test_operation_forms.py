"""Both syntaxes of every operation: the string form and the object form parse to the same
model and, run through the pipeline on a real photo, give the same pixels and shape."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest

from app.operations import OPERATIONS, Context, parse_operation
from app.pipeline import Pipeline, run
from app.plan import build_pipeline

from .conftest import load


@dataclass(frozen=True)
class Row:
    string: str
    obj: dict[str, Any]
    shape: tuple[int, ...]  # shape of the first output item
    items: int = 1  # how many items the pipeline yields
    changes: bool | None = None  # True: pixels must change; False: must stay; None: shape changes anyway
    image: str = "chelsea.jpg"  # 451 wide, 300 high, BGR

    def __str__(self) -> str:  # the test id
        return self.string


ROWS = [
    # resize
    Row("resize=0.5", {"op": "resize", "scale": 0.5}, (150, 226, 3)),
    Row("resize=2", {"op": "resize", "scale": 2}, (600, 902, 3)),
    Row("resize=200x100", {"op": "resize", "width": 200, "height": 100}, (100, 150, 3)),
    Row("resize=200x", {"op": "resize", "width": 200}, (133, 200, 3)),
    Row("resize=x150", {"op": "resize", "height": 150}, (150, 226, 3)),
    Row("resize=width:200,height:100,fit:cover", {"op": "resize", "width": 200, "height": 100, "fit": "cover"},
        (100, 200, 3)),
    Row("resize=width:200,height:100,fit:stretch", {"op": "resize", "width": 200, "height": 100, "fit": "stretch"},
        (100, 200, 3)),
    # split
    Row("split=True", {"op": "split"}, (150, 225, 3), items=4),
    Row("splitQuadrants=True", {"op": "split", "rows": 2, "cols": 2}, (150, 225, 3), items=4),
    Row("split=3x4", {"op": "split", "rows": 3, "cols": 4}, (100, 112, 3), items=12),
    Row("split=rows:2,cols:3,overlap:10", {"op": "split", "rows": 2, "cols": 3, "overlap": 10},
        (155, 155, 3), items=6),
    # blur
    Row("blur=5", {"op": "blur", "kernel": 5}, (300, 451, 3), changes=True),
    Row("blur=kernel:0,sigma:3", {"op": "blur", "kernel": 0, "sigma": 3.0}, (300, 451, 3), changes=True),
    Row("blur=0", {"op": "blur", "kernel": 0, "sigma": 1.0}, (300, 451, 3), changes=True),
    # sharpen
    Row("sharpen", {"op": "sharpen", "amount": 1.0, "sigma": 1.0, "threshold": 0}, (300, 451, 3), changes=True),
    Row("sharpen=1.5", {"op": "sharpen", "amount": 1.5}, (300, 451, 3), changes=True),
    Row("sharpen=amount:2,sigma:1.5,threshold:3", {"op": "sharpen", "amount": 2, "sigma": 1.5, "threshold": 3},
        (300, 451, 3), changes=True),
    # grayscale
    Row("grayscale", {"op": "grayscale"}, (300, 451)),
    # threshold
    Row("threshold=127", {"op": "threshold", "value": 127}, (300, 451)),
    Row("threshold=otsu", {"op": "threshold", "method": "otsu"}, (300, 451)),
    Row("threshold=adaptive_gaussian", {"op": "threshold", "method": "adaptive_gaussian"}, (300, 451)),
    Row("threshold=method:adaptive_mean,block_size:15,c:5",
        {"op": "threshold", "method": "adaptive_mean", "block_size": 15, "c": 5}, (300, 451)),
    # crop
    Row("crop=10,20,100,50", {"op": "crop", "x": 10, "y": 20, "width": 100, "height": 50}, (50, 100, 3)),
    Row("crop=bottom:100", {"op": "crop", "bottom": 100}, (200, 451, 3)),
    Row("crop=top:10,bottom:20,left:30,right:40", {"op": "crop", "top": 10, "bottom": 20, "left": 30, "right": 40},
        (270, 381, 3)),
    Row("crop=x:-200,y:-100,width:200,height:100", {"op": "crop", "x": -200, "y": -100, "width": 200, "height": 100},
        (100, 200, 3)),
    # redact
    Row("redact=0,-100,200,100", {"op": "redact", "x": 0, "y": -100, "width": 200, "height": 100},
        (300, 451, 3), changes=True),
    Row("redact=x:10,y:10,width:50,height:50,mode:pixelate",
        {"op": "redact", "x": 10, "y": 10, "width": 50, "height": 50, "mode": "pixelate"}, (300, 451, 3), changes=True),
    Row("redact=x:10,y:10,width:50,height:50,mode:blur,color:[0,0,255]",
        {"op": "redact", "x": 10, "y": 10, "width": 50, "height": 50, "mode": "blur", "color": [0, 0, 255]},
        (300, 451, 3), changes=True),
    Row("redact=x:10,y:10,width:50,height:50,color:[0,0,255]",
        {"op": "redact", "x": 10, "y": 10, "width": 50, "height": 50, "color": [0, 0, 255]}, (300, 451, 3),
        changes=True),
    # rotate
    Row("rotate=90", {"op": "rotate", "angle": 90}, (451, 300, 3)),
    Row("rotate=180", {"op": "rotate", "angle": 180}, (300, 451, 3), changes=True),
    Row("rotate=270", {"op": "rotate", "angle": 270}, (451, 300, 3)),
    # flip
    Row("flip=horizontal", {"op": "flip", "axis": "horizontal"}, (300, 451, 3), changes=True),
    Row("flip=vertical", {"op": "flip", "axis": "vertical"}, (300, 451, 3), changes=True),
    # faces (on a photo with a face)
    Row("faces", {"op": "faces"}, (512, 512, 3), changes=False, image="astronaut.jpg"),
    Row("faces=blur", {"op": "faces", "action": "blur"}, (512, 512, 3), changes=True, image="astronaut.jpg"),
    Row("faces=action:blur,min_neighbors:3", {"op": "faces", "action": "blur", "min_neighbors": 3},
        (512, 512, 3), changes=True, image="astronaut.jpg"),
    Row("faces=action:pixelate,scale_factor:1.15,min_size:40",
        {"op": "faces", "action": "pixelate", "scale_factor": 1.15, "min_size": 40}, (600, 512, 3), changes=True,
        image="grace_hopper.jpg"),
    # encode: no pixel changes
    Row("encode=quality:30", {"op": "encode", "quality": 30}, (300, 451, 3), changes=False),
    Row("quality=30", {"op": "encode", "quality": 30}, (300, 451, 3), changes=False),
    Row("encode=30", {"op": "encode", "quality": 30}, (300, 451, 3), changes=False),
    Row("encode=quality:80,optimize:true,progressive:true,compression:9",
        {"op": "encode", "quality": 80, "optimize": True, "progressive": True, "compression": 9},
        (300, 451, 3), changes=False),
]


def test_the_table_covers_all_twelve_operations():
    assert {row.obj["op"] for row in ROWS} == set(OPERATIONS)
    assert len(OPERATIONS) == 12


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_string_and_object_forms_parse_to_the_same_model(row: Row):
    from_string = parse_operation(row.string)
    from_object = parse_operation(row.obj)
    assert from_string is not None
    assert from_string == from_object
    assert from_string.op == row.obj["op"]
    # every parameter the row names comes through with its value
    dumped = from_string.model_dump(mode="json")
    for key, value in row.obj.items():
        assert dumped[key] == (list(value) if isinstance(value, tuple) else value), key


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_string_and_object_forms_give_identical_pixels(row: Row):
    image = load(row.image)
    ctx = Context()
    by_string = run(image, [parse_operation(row.string)], ctx)
    by_object = run(image, [parse_operation(row.obj)], ctx)
    assert len(by_string) == len(by_object) == row.items
    assert by_string[0].image.shape == row.shape
    for a, b in zip(by_string, by_object):
        assert a.image.dtype == np.uint8
        assert a.suffix == b.suffix
        assert np.array_equal(a.image, b.image)
        assert a.faces == b.faces
    if row.changes is not None and by_string[0].image.shape == image.shape:
        assert (not np.array_equal(by_string[0].image, image)) == row.changes
    # the input array is never modified in place
    assert np.array_equal(image, load(row.image))


def test_quality_alias_sets_how_the_output_is_encoded():
    pipeline = build_pipeline([parse_operation("quality=30"), parse_operation("blur=3")], "keep", 10**8)
    assert pipeline.encode.quality == 30
    # the last encode wins, wherever it stands
    pipeline = build_pipeline([parse_operation("quality=30"), parse_operation({"op": "encode", "quality": 70})],
                              "keep", 10**8)
    assert pipeline.encode.quality == 70


def test_two_encodes_merge_later_parameters_winning():
    ops = [parse_operation("quality=30"), parse_operation("blur=3"), parse_operation("encode=optimize:true")]
    pipeline = build_pipeline(ops, "keep", 10**8)
    assert (pipeline.encode.quality, pipeline.encode.optimize, pipeline.encode.progressive) == (30, True, False)
    later = build_pipeline([*ops, parse_operation("encode=quality:80")], "keep", 10**8).encode
    assert (later.quality, later.optimize) == (80, True), "the later quality wins, the earlier optimize stays"
    assert [op.op for op in pipeline.operations] == ["blur"], "encode is how outputs are written, not a step"
    assert pipeline.normalized() == [
        {"op": "blur", "kernel": 3, "sigma": 0.0},
        {"op": "encode", "quality": 30, "optimize": True, "progressive": False, "compression": 3}]


def test_blur_0_uses_the_default_sigma(chelsea):
    op = parse_operation("blur=0")
    assert (op.kernel, op.sigma) == (0, 1.0)
    [item] = run(chelsea, [op], Context())
    assert np.array_equal(item.image, cv2.GaussianBlur(chelsea, (0, 0), 1.0))


def test_without_encode_jpeg_quality_is_90_and_png_compression_3():
    enc = Pipeline(()).encode
    assert (enc.quality, enc.compression) == (90, 3)


@pytest.mark.parametrize("text", ["split=False", "split=false", "split=None", "splitQuadrants=False",
                                  "split=FALSE", "split=null"])
def test_split_turned_off_parses_to_none(text):
    assert parse_operation(text) is None


def test_split_turned_off_does_nothing_in_a_pipeline(chelsea):
    ops = [parse_operation("split=False"), parse_operation("resize=0.5"), parse_operation("splitQuadrants=False")]
    pipeline = build_pipeline(ops, "keep", 10**8)
    assert len(pipeline.operations) == 1
    assert pipeline.fanout_shape == ()
    items = run(chelsea, pipeline.operations, Context())
    assert len(items) == 1 and items[0].image.shape == (150, 226, 3)


def test_split_3x4_means_3_rows_of_4_columns(chelsea):
    op = parse_operation("split=3x4")
    assert (op.rows, op.cols) == (3, 4)
    tiles = run(chelsea, [op], Context())
    assert len(tiles) == 12
    # a row holds 4 tiles whose widths add up to the image width
    assert sum(t.image.shape[1] for t in tiles[:4]) == 451
    assert sum(tiles[i * 4].image.shape[0] for i in range(3)) == 300


def test_names_are_case_insensitive_in_the_string_form():
    assert parse_operation("SplitQuadrants=TRUE") == parse_operation({"op": "split"})
    assert parse_operation("BLUR=5") == parse_operation({"op": "blur", "kernel": 5})
    assert parse_operation(" flip = vertical ") == parse_operation({"op": "flip", "axis": "vertical"})


def test_bare_name_uses_the_defaults():
    assert parse_operation("split") == parse_operation({"op": "split", "rows": 2, "cols": 2, "overlap": 0})
    assert parse_operation("faces") == parse_operation({"op": "faces", "action": "detect"})
    assert parse_operation("blur").kernel == 5


def test_a_parsed_model_is_accepted_again():
    op = parse_operation("crop=bottom:100")
    assert parse_operation(op) == op


def test_sharpen_steepens_edges_and_leaves_flat_areas_alone():
    from app.imaging.filters import sharpen

    step = np.zeros((20, 20), np.uint8)
    step[:, 10:] = 200
    out = sharpen(step, 1.0, 1.0, 0)
    assert (out[:, :6] == 0).all() and (out[:, 14:] == 200).all(), "flat areas away from the edge stay"
    assert (out[:, 10] > 200).all() and (out[:, 9] == 0).all(), "the bright side overshoots, the dark clips at 0"
    # small differences (noise) at or under the threshold are left as they are
    noisy = step.copy()
    noisy[5, 3] = 2
    assert sharpen(noisy, 1.0, 1.0, 3)[5, 3] == 2
    assert sharpen(noisy, 1.0, 1.0, 0)[5, 3] > 2
    # alpha is kept
    rgba = np.dstack([step, step, step, np.full_like(step, 77)])
    assert (sharpen(rgba, 2.0, 1.0, 0)[:, :, 3] == 77).all()

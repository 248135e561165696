"""From a request to tasks: the checks that refuse a whole request before anything is written,
and the output names of fan-out."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.errors import InvalidRequest, PathOutsideRoot
from app.operations import parse_operation
from app.api.errors import STATUS_OF_REFUSAL
from app.plan import Planner, build_pipeline
from tests import images

BUDGET = 100_000_000


def pipeline(*ops, metadata: str = "keep"):
    return build_pipeline([parse_operation(op) for op in ops], metadata, BUDGET)


@pytest.fixture()
def photos(root) -> str:
    """Two real photos under ROOT/in."""
    images.jpeg(Path(root, "in"), "a.jpg", source="astronaut.jpg")
    images.jpeg(Path(root, "in"), "b.jpg", source="chelsea.jpg")
    return root


def test_plan_resolves_paths_and_names_outputs(photos):
    [p] = Planner(photos, BUDGET).images([("in/a.jpg", "out/a.png")], pipeline("blur=3"))
    assert p.outputs == ["out/a.png"]
    assert p.task.input == os.path.join(photos, "in", "a.jpg")
    assert p.task.outputs == (os.path.join(photos, "out", "a.png"),)
    assert p.task.max_pixels == BUDGET
    assert not os.path.exists(os.path.join(photos, "out"))  # planning writes nothing


def test_plan_names_the_tiles_of_a_fan_out(photos):
    [p] = Planner(photos, BUDGET).images([("in/a.jpg", "testoutput/a_processed.jpg")],
                                         pipeline("splitQuadrants=True", "resize=2"))
    assert p.outputs == [f"testoutput/a_processed_{i}.jpg" for i in range(4)]
    assert p.task.outputs == tuple(os.path.join(photos, "testoutput", f"a_processed_{i}.jpg") for i in range(4))


def test_plan_names_nested_fan_out(photos):
    [p] = Planner(photos, BUDGET).images([("in/a.jpg", "o/a.jpg")], pipeline("split=True", "split=1x3"))
    assert len(p.outputs) == 12
    assert p.outputs[:4] == ["o/a_0_0.jpg", "o/a_0_1.jpg", "o/a_0_2.jpg", "o/a_1_0.jpg"]
    assert p.outputs[-1] == "o/a_3_2.jpg"


def test_split_turned_off_or_1x1_adds_no_suffix(photos):
    for ops in (("split=False",), ("split=1x1",), ("splitQuadrants=None", "blur=3")):
        [p] = Planner(photos, BUDGET).images([("in/a.jpg", "o/a.jpg")], pipeline(*ops))
        assert p.outputs == ["o/a.jpg"]


@pytest.mark.parametrize("output", ["in/a.jpg", "./in/a.jpg", "in/../in/a.jpg", "in//a.jpg"])
def test_output_equal_to_its_input_is_refused(photos, output):
    with pytest.raises(InvalidRequest) as exc:
        Planner(photos, BUDGET).images([("in/a.jpg", output)], pipeline("blur=3"))
    assert exc.value.field == "images[0].output"
    assert STATUS_OF_REFUSAL[exc.value.code] == 422


def test_output_equal_to_its_input_through_an_absolute_path_is_refused(photos):
    with pytest.raises(InvalidRequest):
        Planner(photos, BUDGET).images([("in/a.jpg", os.path.join(photos, "in", "a.jpg"))], pipeline("blur=3"))


def test_output_that_is_a_symlink_to_the_input_is_refused(photos):
    os.symlink(os.path.join(photos, "in", "a.jpg"), os.path.join(photos, "link.jpg"))
    with pytest.raises(InvalidRequest):
        Planner(photos, BUDGET).images([("in/a.jpg", "link.jpg")], pipeline("blur=3"))


def test_two_images_with_the_same_output_are_refused(photos):
    with pytest.raises(InvalidRequest) as exc:
        Planner(photos, BUDGET).images([("in/a.jpg", "out/x.jpg"), ("in/b.jpg", "out/./x.jpg")], pipeline("blur=3"))
    assert exc.value.field == "images[1].output"
    assert "images[0]" in exc.value.message


def test_two_images_whose_tiles_collide_are_refused(photos):
    # both would write o/a_0.jpg .. o/a_3.jpg
    pairs = [("in/a.jpg", "o/a.jpg"), ("in/b.jpg", "o/a.jpg")]
    with pytest.raises(InvalidRequest):
        Planner(photos, BUDGET).images(pairs, pipeline("split=True"))


def test_an_output_overwriting_another_images_input_is_refused(photos):
    with pytest.raises(InvalidRequest) as exc:
        Planner(photos, BUDGET).images([("in/a.jpg", "out/a.jpg"), ("in/b.jpg", "in/a.jpg")], pipeline("blur=3"))
    assert exc.value.field == "images[1].output"


def test_the_same_input_twice_to_different_outputs_is_fine(photos):
    planned = Planner(photos, BUDGET).images([("in/a.jpg", "o/1.jpg"), ("in/a.jpg", "o/2.png")], pipeline("blur=3"))
    assert [p.outputs for p in planned] == [["o/1.jpg"], ["o/2.png"]]


@pytest.mark.parametrize("output", ["out/a.gif", "out/a", "out/a.jpg.txt", "out/.jpg", "out/a.svg"])
def test_unknown_output_extension_is_refused(photos, output):
    with pytest.raises(InvalidRequest) as exc:
        Planner(photos, BUDGET).images([("in/a.jpg", output)], pipeline("blur=3"))
    assert exc.value.field == "images[0].output"
    assert ".jpg" in exc.value.message and ".png" in exc.value.message


@pytest.mark.parametrize("ext", [".jpg", ".JPEG", ".png", ".PNG", ".webp", ".tif", ".tiff", ".bmp"])
def test_known_output_extensions_in_any_case_are_accepted(photos, ext):
    [p] = Planner(photos, BUDGET).images([("in/a.jpg", "out/a" + ext)], pipeline("blur=3"))
    assert p.outputs == ["out/a" + ext]


def test_paths_outside_the_root_are_refused_naming_the_field(photos):
    with pytest.raises(PathOutsideRoot) as exc:
        Planner(photos, BUDGET).images([("in/a.jpg", "o/a.jpg"), ("../../etc/passwd", "o/b.jpg")], pipeline("blur=3"))
    assert exc.value.field == "images[1].input"
    with pytest.raises(PathOutsideRoot) as exc:
        Planner(photos, BUDGET).images([("in/a.jpg", "/tmp/evil.jpg")], pipeline("blur=3"))
    assert exc.value.field == "images[0].output"


def test_a_missing_input_is_not_a_planning_error(photos):
    # missing inputs are a per-image error found by the worker, not a refusal of the request
    [p] = Planner(photos, BUDGET).images([("in/missing.jpg", "o/m.jpg")], pipeline("blur=3"))
    assert p.task.input == os.path.join(photos, "in", "missing.jpg")


def test_build_pipeline_drops_operations_turned_off():
    p = build_pipeline([None, parse_operation("blur=3"), None], "strip", BUDGET)
    assert [op.op for op in p.operations] == ["blur"]
    assert p.metadata == "strip"


def test_build_pipeline_refuses_a_fixed_size_over_the_budget():
    ops = [parse_operation("blur=3"), parse_operation("resize=width:20000,height:20000,fit:stretch")]
    with pytest.raises(InvalidRequest) as exc:
        build_pipeline(ops, "keep", BUDGET)
    assert exc.value.field == "operations[1]"
    # a cover of the same size too; within the budget it is fine
    with pytest.raises(InvalidRequest):
        build_pipeline([parse_operation("resize=width:20000,height:20000,fit:cover")], "keep", BUDGET)
    assert build_pipeline([parse_operation("resize=width:10000,height:10000,fit:cover")], "keep", BUDGET)


def test_pipeline_digest_depends_on_operations_and_metadata():
    a = pipeline("blur=3")
    assert a.digest() == pipeline({"op": "blur", "kernel": 3}).digest()
    assert a.digest() != pipeline("blur=5").digest()
    assert a.digest() != pipeline("blur=3", metadata="strip").digest()


def test_normalized_operations_have_every_parameter_explicit():
    [crop, enc] = pipeline("crop=bottom:100", "quality=30").normalized()
    assert crop == {"op": "crop", "x": None, "y": None, "width": None, "height": None,
                    "top": 0, "bottom": 100, "left": 0, "right": 0}
    assert enc == {"op": "encode", "quality": 30, "optimize": False, "progressive": False, "compression": 3}

"""From a request to tasks: the checks that refuse a whole request before anything is written,
and the output names of fan-out."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.errors import InvalidRequest, PathOutsideRoot, RequestError
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


# -- the rules about outputs, skip-existing and the record of what imgsrv wrote ------------------

from app.errors import ErrorCode  # noqa: E402
from app.formats import Format  # noqa: E402
from app.pipeline import Budget  # noqa: E402
from app.plan import PlannedImage, mirrored_output, output_format  # noqa: E402
from app.tasks import CompareTask, Expected, Output, Overwrite, Owned, RenderTask, Report, WriteRule  # noqa: E402


class Records:
    """What the store would answer: the manifest (by outputs and pipeline digest) and owned files."""

    def __init__(self, expected=None, owned=None):
        self.expected, self.owned_files, self.asked = expected, owned or {}, []

    def manifest(self, outputs, digest):
        self.asked.append((tuple(outputs), digest))
        return self.expected

    def owned(self, paths):
        return {p: self.owned_files[p] for p in paths if p in self.owned_files}


def test_an_image_carries_its_format_limits_and_the_record_of_its_outputs(photos):
    out_real = os.path.join(photos, "o", "a.png")
    mine = Owned(10, 20, "j0")
    records = Records(owned={out_real: mine})
    planner = Planner(photos, BUDGET, records.manifest, owned=records.owned, max_input_bytes=12345)
    [p] = planner.images([("in/a.jpg", "o/a.png")], pipeline("blur=3"))
    assert (p.index, p.input, p.output) == (0, "in/a.jpg", "o/a.png")
    t = p.task
    assert (t.format, t.max_input_bytes, t.sync, t.temp_tag, t.expected) == (Format.PNG, 12345, True, "", None)
    assert t.rule == WriteRule(Overwrite.OWN, (mine,), None)
    assert records.asked == [], "no skip-existing: the manifest is not asked"
    [p] = planner.images([("in/a.jpg", "o/a.png")], pipeline("blur=3"), overwrite=Overwrite.ALWAYS)
    assert p.task.rule == WriteRule(Overwrite.ALWAYS)
    [p] = planner.images([("in/a.jpg", "o/a.png")], pipeline("blur=3"), overwrite=Overwrite.NEVER)
    assert p.task.rule == WriteRule(Overwrite.NEVER)
    [p] = Planner(photos, BUDGET).images([("in/a.jpg", "o/a.png")], pipeline("blur=3"))
    assert p.task.rule == WriteRule(Overwrite.OWN), "no record kept: own protects every file"


def test_skip_existing_asks_the_manifest_about_every_output(photos):
    expected = Expected("hash", (Output(os.path.join(photos, "o", "a_0.jpg"), 1, 1, 1),))
    records = Records(expected)
    planner = Planner(photos, BUDGET, records.manifest)
    split = pipeline("split=True")
    [p] = planner.images([("in/a.jpg", "o/a.jpg")], split, skip_existing=True)
    assert p.task.expected == expected
    assert records.asked == [(tuple(os.path.join(photos, "o", f"a_{i}.jpg") for i in range(4)), split.digest())]
    records.expected = None
    [p] = planner.images([("in/a.jpg", "o/a.jpg")], split, skip_existing=True)
    assert p.task.expected is None
    [p] = Planner(photos, BUDGET).images([("in/a.jpg", "o/a.jpg")], split, skip_existing=True)
    assert p.task.expected is None, "no manifest: nothing to skip"


def test_the_state_folder_is_neither_an_input_nor_an_output(photos):
    state = os.path.join(photos, ".imgsrv")
    images.jpeg(Path(state), "x.jpg")
    planner = Planner(photos, BUDGET, state_dir=state)
    for pair, field in ((("in/a.jpg", ".imgsrv/y.jpg"), "images[0].output"), ((".imgsrv/x.jpg", "o/x.jpg"),
                                                                              "images[0].input")):
        with pytest.raises(PathOutsideRoot, match="state folder") as exc:
            planner.images([pair], pipeline("blur=3"))
        assert exc.value.field == field


def test_outputs_stay_under_the_output_root(photos):
    planner = Planner(photos, BUDGET, output_root=os.path.join(photos, "out"))
    with pytest.raises(PathOutsideRoot, match="output root") as exc:
        planner.images([("in/a.jpg", "in/b2.jpg")], pipeline("blur=3"))
    assert exc.value.field == "images[0].output"
    [p] = planner.images([("in/a.jpg", "out/a.jpg")], pipeline("blur=3"))
    assert p.task.outputs == (os.path.join(photos, "out", "a.jpg"),)


def test_an_output_writing_another_images_input_names_both(photos):
    with pytest.raises(InvalidRequest) as exc:
        Planner(photos, BUDGET).images([("in/a.jpg", "o/a.jpg"), ("in/b.jpg", "o/b.jpg"), ("in/c.jpg", "in/b.jpg")],
                                       pipeline("blur=3"))
    assert exc.value.field == "images[2].output"
    assert exc.value.message == "images[2] would overwrite the input of images[1]"
    with pytest.raises(InvalidRequest) as exc:
        Planner(photos, BUDGET).images([("in/a.jpg", "o/1.jpg"), ("in/a.jpg", "o/2.jpg"), ("in/c.jpg", "in/a.jpg")],
                                       pipeline("blur=3"))
    assert exc.value.message == "images[2] would overwrite the input of images[0]"
    with pytest.raises(InvalidRequest) as exc:
        Planner(photos, BUDGET).images([("in/a.jpg", "in/a.jpg")], pipeline("blur=3"))
    assert exc.value.message == "the output is the input; imgsrv never overwrites an input"


def test_an_output_extension_message_names_what_was_given():
    with pytest.raises(InvalidRequest) as exc:
        output_format("out/a.GIF", "x.output")
    assert exc.value.field == "x.output"
    assert exc.value.message == ("the output's extension .gif is not one of .bmp, .jpeg, .jpg, .png, .tif, .tiff, "
                                 ".webp")
    with pytest.raises(InvalidRequest, match=r"extension \(none\) is not"):
        output_format("out/a", "output")
    assert output_format("a.JPEG", "output") == Format.JPEG


def test_a_folder_jobs_outputs_mirror_its_inputs_with_the_format_asked():
    assert mirrored_output("sub/a.png", "out", None) == os.path.join("out", "sub", "a.png")
    assert mirrored_output("sub/a.b.png", "out", "jpeg") == os.path.join("out", "sub", "a.b.jpg")
    assert mirrored_output("a.jpg", "o", "tiff") == os.path.join("o", "a.tif")


# -- a job's images: a problem fails that image alone ------------------------------------------------


def test_a_job_image_is_planned_unflushed_with_the_jobs_mark_and_record(photos):
    out_real = os.path.join(photos, "o", "a.jpg")
    mine = Owned(1, 2, "j1")
    expected = Expected("h", (Output(out_real, 1, 1, 1),))
    records = Records(expected, {out_real: mine})
    planner = Planner(photos, BUDGET, records.manifest, owned=records.owned)
    p = planner.job_image(7, "in/a.jpg", "o/a.jpg", pipeline("blur=3"), skip_existing=True, job="j1", temp_tag="j1-")
    assert (p.index, p.input, p.output, p.outputs, p.failure) == (7, "in/a.jpg", "o/a.jpg", ["o/a.jpg"], None)
    t = p.task
    assert (t.input, t.outputs, t.sync, t.temp_tag, t.expected) == (os.path.join(photos, "in", "a.jpg"),
                                                                     (out_real,), False, "j1-", expected)
    assert t.rule == WriteRule(Overwrite.OWN, (mine,), "j1")
    p = planner.job_image(7, "in/a.jpg", "o/a.jpg", pipeline("blur=3"), skip_existing=False,
                          overwrite=Overwrite.NEVER)
    assert (p.task.expected, p.task.rule, p.task.temp_tag) == (None, WriteRule(Overwrite.NEVER), "")


def test_a_job_image_whose_output_an_earlier_one_took_fails_alone(photos):
    p = Planner(photos, BUDGET).job_image(3, "in/b.jpg", "o/a.jpg", pipeline("split=True"), skip_existing=True,
                                          taken_by="in/a.jpg")
    assert p == PlannedImage(3, "in/b.jpg", "o/a.jpg", [f"o/a_{i}.jpg" for i in range(4)], None, Report.failure(
        ErrorCode.OUTPUT_EXISTS, "in/a.jpg and in/b.jpg both map to the output o/a.jpg; the first one keeps it"))


@pytest.mark.parametrize("inp, out, code, words", [
    ("../x.jpg", "o/x.jpg", ErrorCode.NOT_FOUND, "leads outside the data root"),
    ("in/a.jpg", "../x.jpg", ErrorCode.WRITE_ERROR, "leads outside the data root"),
    ("in/a.jpg", "o/x.gif", ErrorCode.WRITE_ERROR, "extension .gif"),
    ("in/a.jpg", "in/a.jpg", ErrorCode.WRITE_ERROR, "the output is the input"),
])
def test_a_job_image_with_a_path_that_cannot_be_used_fails_alone(photos, inp, out, code, words):
    p = Planner(photos, BUDGET).job_image(5, inp, out, pipeline("split=1x2"), skip_existing=False)
    assert (p.index, p.input, p.output, p.task) == (5, inp, out, None)
    assert p.outputs == output_names_of(out, 2)
    assert p.failure.status == "error" and p.failure.error_code == code and words in p.failure.error_message


def output_names_of(out, n):
    stem, ext = os.path.splitext(out)
    return [f"{stem}_{i}{ext}" for i in range(n)]


def test_a_job_image_whose_output_leads_into_the_source_folder_fails_alone(photos):
    os.symlink(os.path.join(photos, "in"), os.path.join(photos, "back"))
    source = os.path.join(photos, "in")
    planner = Planner(photos, BUDGET)
    p = planner.job_image(2, "in/a.jpg", "back/c.jpg", pipeline("blur=3"), skip_existing=False, source=source)
    assert p == PlannedImage(2, "in/a.jpg", "back/c.jpg", ["back/c.jpg"], None, Report.failure(
        ErrorCode.WRITE_ERROR, "the output back/c.jpg leads into the source folder (through a link): a job never "
                               "writes among its inputs"))
    ok = planner.job_image(2, "in/a.jpg", "in2/c.jpg", pipeline("blur=3"), skip_existing=False, source=source)
    assert ok.failure is None and ok.task.outputs == (os.path.join(photos, "in2", "c.jpg"),)
    assert planner.job_image(2, "in/a.jpg", "back/c.jpg", pipeline("blur=3"), skip_existing=False).failure is None


# -- folder jobs, comparisons, uploads ---------------------------------------------------------------


@pytest.mark.parametrize("source, output_dir, field, message", [
    ("nope", "out", "source.dir", "the source folder does not exist or is not a folder"),
    ("in/a.jpg", "out", "source.dir", "the source folder does not exist or is not a folder"),
    ("in", "in", "output_dir", "output_dir is the source folder; imgsrv never overwrites an input"),
    ("in", "in/sub", "output_dir", "output_dir lies inside the source folder: outputs could be taken for inputs, "
                                   "or replace them"),
    ("in", ".", "output_dir", "the source folder lies inside output_dir: outputs could replace inputs"),
    ("../x", "out", "source.dir", None),
    ("in", "../out", "output_dir", None),
])
def test_a_folder_job_whose_folders_could_mix_inputs_and_outputs_is_refused(photos, source, output_dir, field, message):
    with pytest.raises(RequestError) as exc:
        Planner(photos, BUDGET).folder_job(source, True, output_dir)
    assert exc.value.field == field
    if message is not None:
        assert exc.value.message == message


def test_a_folder_job_beside_its_source_is_fine(photos):
    assert Planner(photos, BUDGET).folder_job("in", True, "out") is None
    assert Planner(photos, BUDGET).folder_job("in", False, "in-out") is None, "a name sharing a prefix is no parent"


def test_a_comparison_resolves_both_inputs_and_its_output(photos):
    out_real = os.path.join(photos, "d", "diff.png")
    mine = Owned(3, 4)
    records = Records(owned={out_real: mine})
    planner = Planner(photos, 1234, owned=records.owned, max_input_bytes=999)
    a, b = os.path.join(photos, "in", "a.jpg"), os.path.join(photos, "in", "b.jpg")
    assert planner.compare("in/a.jpg", "in/b.jpg", None, 2.5) == CompareTask(a, b, None, 2.5, 1234,
                                                                             max_input_bytes=999)
    assert planner.compare("in/a.jpg", "in/b.jpg", "d/diff.png", 0.0) == CompareTask(
        a, b, out_real, 0.0, 1234, WriteRule(Overwrite.OWN, (mine,)), Format.PNG, 999)
    assert planner.compare("in/a.jpg", "in/b.jpg", "d/diff.png", 0.0, Overwrite.ALWAYS).rule == \
        WriteRule(Overwrite.ALWAYS)


@pytest.mark.parametrize("a, b, output, field, words", [
    ("in/a.jpg", "in/b.jpg", "in/b.jpg", "output", "the output is one of the inputs; imgsrv never overwrites an input"),
    ("in/a.jpg", "in/b.jpg", "./in/a.jpg", "output", "the output is one of the inputs"),
    ("in/a.jpg", "in/b.jpg", "d/diff.gif", "output", "extension .gif"),
    ("in/a.jpg", "in/b.jpg", "../diff.png", "output", "outside"),
    ("../a.jpg", "in/b.jpg", None, "a", "outside"),
    ("in/a.jpg", "../b.jpg", None, "b", "outside"),
])
def test_a_comparison_with_a_path_it_cannot_use_is_refused(photos, a, b, output, field, words):
    with pytest.raises(RequestError) as exc:
        Planner(photos, BUDGET).compare(a, b, output, 0.0)
    assert exc.value.field == field and words in exc.value.message
    if words.startswith("the output is one of the inputs;"):
        assert exc.value.message == words


def test_an_upload_is_planned_with_the_limits(photos):
    p = pipeline("blur=3")
    task = Planner(photos, 4321, max_answer_bytes=777).upload(b"bytes", p, Format.WEBP)
    assert task == RenderTask(b"bytes", p, Format.WEBP, 4321, 777)


# -- build_pipeline: what no image could afford --------------------------------------------------


def test_a_fixed_size_is_judged_by_its_width_times_its_height():
    wide = parse_operation("resize=width:20000,height:100,fit:stretch")  # 2 megapixels
    with pytest.raises(InvalidRequest) as exc:
        build_pipeline([None, wide], "keep", 1_000_000)
    assert (exc.value.field, exc.value.message) == ("operations[1]", "resize to 20000x100 makes more than the limit "
                                                                     "of 1000000 pixels")
    assert build_pipeline([parse_operation("resize=width:100,height:20000,fit:stretch")], "keep", 2_000_000)


def test_the_output_pixels_budget_counts_every_tile_and_allows_exactly_the_limit():
    budget = Budget(max_output_pixels=4 * 300 * 100, max_work=1e15)
    at_limit = [parse_operation("split=2x2"), parse_operation("resize=width:300,height:100,fit:stretch")]
    assert build_pipeline(at_limit, "keep", 10**8, budget=budget).fanout_shape == (4,)
    over = [parse_operation("split=2x2"), parse_operation("resize=width:300,height:101,fit:stretch")]
    with pytest.raises(InvalidRequest) as exc:
        build_pipeline(over, "keep", 10**8, budget=budget)
    assert exc.value.field == "operations[1]"
    assert exc.value.message == f"4 images of 300x101 make more than IMGSRV_MAX_OUTPUT_PIXELS ({4 * 300 * 100}) pixels"


def test_the_work_budget_names_the_operation_over_it_for_a_megapixel():
    budget = Budget(max_output_pixels=10**9, max_work=1e9)
    ops = [None, parse_operation("grayscale"), parse_operation("quality=50"), parse_operation("blur=kernel:0,sigma:100")]
    with pytest.raises(InvalidRequest) as exc:
        build_pipeline(ops, "keep", 10**8, budget=budget)
    assert exc.value.field == "operations[3]"
    assert exc.value.message.endswith(" for even a 1000x1000 image") and "IMGSRV_MAX_WORK" in exc.value.message


def test_the_pipeline_keeps_the_planes_setting():
    assert build_pipeline([parse_operation("crop=0,0,10,10")], "keep", BUDGET).planes is True
    assert build_pipeline([parse_operation("crop=0,0,10,10")], "keep", BUDGET, planes=False).planes is False

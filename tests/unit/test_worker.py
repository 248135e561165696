"""One task from input path to written outputs: what is written, what is reported, and that
a failing image writes nothing and reports its error code (run_image never raises)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from app.operations import parse_operation
from app.files import TEMP_PREFIX
from app.plan import build_pipeline, output_names
from app.render.worker import run_image
from app.tasks import Expected, ImageTask, Overwrite, WriteRule
from tests import images

BUDGET = 100_000_000


def task(root: str, inp, output: str, *ops, metadata: str = "keep", max_pixels: int = BUDGET,
         expected: Expected | None = None) -> ImageTask:
    pipeline = build_pipeline([parse_operation(op) for op in ops], metadata, max_pixels)
    outputs = tuple(output_names(os.path.join(root, output), pipeline.fanout_shape))
    # the overwrite policy is the planner's (tests/unit/test_plan.py): these tasks may replace their outputs
    return ImageTask(str(inp), outputs, pipeline, max_pixels, expected, rule=WriteRule(Overwrite.ALWAYS))


def decoded(path) -> np.ndarray:
    img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def files_under(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


@pytest.fixture()
def photo(root) -> Path:
    return images.jpeg(Path(root, "in"), "astronaut.jpg", source="astronaut.jpg")


# ---------------------------------------------------------------- successful tasks


def test_full_task_writes_every_output_with_the_reported_size_and_bytes(root, photo):
    t = task(root, photo, "out/astro.jpg", "crop=0,0,400,300", "splitQuadrants=True", "quality=80")
    report = run_image(t)
    assert report.status == "ok", report.error_message
    assert report.error_code is None
    assert report.input_bytes == photo.stat().st_size
    assert [o.path for o in report.outputs] == [os.path.join(root, "out", f"astro_{i}.jpg") for i in range(4)]
    for out in report.outputs:
        img = decoded(out.path)
        assert (out.width, out.height) == (200, 150) == (img.shape[1], img.shape[0])
        assert out.bytes == os.path.getsize(out.path)
        assert out.faces is None
        assert Image.open(out.path).format == "JPEG"
    # the tiles are the quadrants of the cropped photo
    source = decoded(str(photo))[:300, :400]
    tl = decoded(report.outputs[0].path).astype(int)
    br = decoded(report.outputs[3].path).astype(int)
    assert np.abs(tl - source[:150, :200]).mean() < 4
    assert np.abs(br - source[150:, 200:]).mean() < 4
    assert [n for n in os.listdir(os.path.join(root, "out")) if n.startswith(TEMP_PREFIX)] == []


def test_quality_setting_changes_the_output_size(root, photo):
    small = run_image(task(root, photo, "o/q30.jpg", "quality=30"))
    large = run_image(task(root, photo, "o/q95.jpg", "encode=quality:95"))
    assert small.status == large.status == "ok"
    assert small.outputs[0].bytes < large.outputs[0].bytes


@pytest.mark.parametrize("ext,fmt", [(".png", "PNG"), (".webp", "WEBP"), (".tif", "TIFF"), (".bmp", "BMP"),
                                     (".JPEG", "JPEG")])
def test_output_format_follows_the_extension(root, photo, ext, fmt):
    report = run_image(task(root, photo, "o/a" + ext, "resize=width:100"))
    assert report.status == "ok", report.error_message
    with Image.open(report.outputs[0].path) as im:
        assert im.format == fmt and im.size == (100, 100)


@pytest.mark.parametrize("scale,side", [(0.5, 256), (0.25, 128), (0.1, 51), (0.4, 205), (0.13, 67)])
def test_resize_by_scale_on_a_jpeg_gives_the_scaled_size(root, photo, scale, side):
    """512x512 JPEG scaled by ``scale``: the output is round(512 * scale) on each side."""
    report = run_image(task(root, photo, "o/small.png", f"resize={scale}"))
    assert report.status == "ok"
    assert (report.outputs[0].width, report.outputs[0].height) == (side, side)
    assert decoded(report.outputs[0].path).shape == (side, side, 3)


@pytest.mark.parametrize("op,size", [("resize=width:100", (100, 100)), ("resize=64x32", (32, 32)),
                                     ("resize=x60", (60, 60)), ("resize=width:300,height:100,fit:cover", (300, 100))])
def test_resize_to_a_size_on_a_jpeg(root, photo, op, size):
    report = run_image(task(root, photo, "o/s.png", op))
    assert report.status == "ok"
    assert (report.outputs[0].width, report.outputs[0].height) == size
    # the right picture, upright and in the right colours: close to a full-size decode resized
    # (a wrong orientation or swapped channels gives a mean difference of 30 and more)
    full = cv2.resize(decoded(str(photo)), size, interpolation=cv2.INTER_AREA).astype(int)
    if "cover" not in op:
        assert np.abs(decoded(report.outputs[0].path).astype(int) - full).mean() < 8


@pytest.mark.parametrize("op", ["resize=width:100", "resize=0.5", "resize=0.6", "blur=3"])
def test_grayscale_jpeg_stays_single_channel(root, op):
    """A gray JPEG comes out gray (PNG mode L), whatever the operations' parameters."""
    src = Path(root, "in", "gray.jpg")
    src.parent.mkdir(parents=True)
    Image.open(images.testimage("camera.png")).save(src, "JPEG", quality=90)
    report = run_image(task(root, src, "o/g.png", op))
    assert report.status == "ok"
    with Image.open(report.outputs[0].path) as im:
        assert im.mode == "L"


def test_resize_by_scale_on_an_exif_rotated_jpeg(root):
    photo = images.exif_jpeg(Path(root, "in"), 6, size=(120, 80))
    report = run_image(task(root, photo, "o/r.png", "resize=0.5"))
    assert report.status == "ok"
    assert (report.outputs[0].width, report.outputs[0].height) == (60, 40)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_resize_to_a_width_on_an_exif_rotated_jpeg_is_upright(root, orientation):
    photo = images.exif_jpeg(Path(root, "in"), orientation, size=(1200, 800))
    report = run_image(task(root, photo, "o/r.png", "resize=width:150"))
    assert report.status == "ok"
    assert (report.outputs[0].width, report.outputs[0].height) == (150, 100)
    reference = cv2.resize(cv2.cvtColor(np.asarray(images.upright_reference((1200, 800))), cv2.COLOR_RGB2BGR),
                           (150, 100), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(decoded(report.outputs[0].path).astype(int) - reference).mean() < 4


def test_faces_are_reported_on_the_output(root):
    photo = images.jpeg(Path(root, "in"), "grace.jpg", source="grace_hopper.jpg")
    report = run_image(task(root, photo, "o/g.jpg", "faces=blur"))
    assert report.status == "ok"
    [out] = report.outputs
    assert out.faces and set(out.faces[0]) == {"x", "y", "width", "height"}
    f = out.faces[0]
    assert f["x"] + f["width"] <= out.width and f["y"] + f["height"] <= out.height


def test_16_bit_png_input_is_written_scaled(root):
    src = images.png16(Path(root, "in"), width=256)
    report = run_image(task(root, src, "o/g.png", "grayscale"))
    assert report.status == "ok"
    out = decoded(report.outputs[0].path)
    assert out.dtype == np.uint8 and out[0, 0] == 0 and out[0, -1] == 255 and abs(int(out[0, 128]) - 128) <= 1


def test_rgba_png_to_jpeg_is_flattened_onto_white_and_to_png_keeps_alpha(root):
    src = images.rgba_png(Path(root, "in"), size=(64, 48))
    jpg = run_image(task(root, src, "o/flat.jpg", "flip=horizontal"))
    png = run_image(task(root, src, "o/alpha.png", "flip=horizontal"))
    assert jpg.status == png.status == "ok"
    flat = decoded(jpg.outputs[0].path)
    assert flat.shape == (48, 64, 3)
    assert np.all(flat[4:-4, -26:-4] >= 245)  # the transparent half, now on the right, is white
    alpha = decoded(png.outputs[0].path)
    assert alpha.shape == (48, 64, 4) and np.all(alpha[:, 32:, 3] == 0)


def test_palette_and_gray_inputs(root):
    pal = run_image(task(root, images.palette_png(Path(root, "in")), "o/p.jpg", "resize=0.5"))
    gray = run_image(task(root, images.testimage("camera.png"), "o/c.png", "rotate=90"))
    assert pal.status == gray.status == "ok"
    assert (pal.outputs[0].width, pal.outputs[0].height) == (226, 150)
    assert decoded(gray.outputs[0].path).shape == (512, 512)


# ---------------------------------------------------------------- metadata


def test_metadata_keep_carries_exif_with_orientation_reset(root):
    photo = images.exif_jpeg(Path(root, "in"), 6)
    report = run_image(task(root, photo, "o/keep.jpg", "blur=3", metadata="keep"))
    assert report.status == "ok"
    assert (report.outputs[0].width, report.outputs[0].height) == (120, 80)  # upright
    with Image.open(report.outputs[0].path) as im:
        exif = im.getexif()
        assert exif.get(0x010F) == "ImgsrvCam" and exif.get(0x0110) == "Model X"
        assert exif.get(0x0132) == "2024:05:06 07:08:09"
        assert exif.get(0x0112, 1) == 1
        assert im.size == (120, 80)


def test_metadata_strip_writes_no_exif(root):
    photo = images.exif_jpeg(Path(root, "in"), 6)
    report = run_image(task(root, photo, "o/strip.jpg", "blur=3", metadata="strip"))
    assert report.status == "ok"
    with Image.open(report.outputs[0].path) as im:
        assert "exif" not in im.info
        assert len(im.getexif()) == 0
        assert im.size == (120, 80)


def test_metadata_keep_on_every_tile_and_only_for_jpeg_outputs(root):
    photo = images.exif_jpeg(Path(root, "in"), 6)  # stored on its side: 80x120, upright 120x80
    report = run_image(task(root, photo, "o/t.jpg", "split=True"))
    assert report.status == "ok" and len(report.outputs) == 4
    for out in report.outputs:
        exif = Image.open(out.path).getexif()
        assert (exif.get(0x010F), exif.get(0x0110), exif.get(0x0132)) == ("ImgsrvCam", "Model X", "2024:05:06 07:08:09")
        assert exif.get(0x0112, 1) == 1, "the orientation tag must be reset: the pixels are upright"
        assert decoded(out.path).shape[:2] == (40, 60)
    [png] = run_image(task(root, photo, "o/t.png", "blur=3")).outputs
    data = Path(png.path).read_bytes()
    assert b"eXIf" not in data and b"ImgsrvCam" not in data, "a PNG output must carry no EXIF"
    assert not Image.open(png.path).getexif()
    assert decoded(png.path).shape[:2] == (80, 120), "the PNG's pixels are upright"


# ---------------------------------------------------------------- failures: error report, nothing written


def assert_failed(report, code: str, root: str, before: list[str]):
    assert report.status == "error"
    assert report.error_code == code
    assert report.error_message
    assert report.outputs == []
    assert files_under(root) == before, "a failed image must write nothing"


@pytest.mark.parametrize("make", [
    lambda d: images.truncated_jpeg(d, 0.5),
    lambda d: images.truncated_jpeg(d, 0.99),
    images.empty_file,
    lambda d: images.not_an_image(d, "html"),
    lambda d: images.not_an_image(d, "pdf"),
    images.png_bad_crc,
], ids=["truncated50", "truncated99", "empty", "html", "pdf", "bad-crc"])
def test_undecodable_input_is_a_decode_error_and_writes_nothing(root, make):
    src = make(Path(root, "in"))
    before = files_under(root)
    report = run_image(task(root, src, "out/x.jpg", "blur=3"))
    assert_failed(report, "decode_error", root, before)
    assert report.input_bytes == src.stat().st_size


@pytest.mark.parametrize("make", [images.png_bomb, images.jpeg_bomb], ids=["png", "jpeg"])
def test_header_bomb_is_too_large_and_writes_nothing(root, make):
    src = make(Path(root, "in"))
    before = files_under(root)
    assert_failed(run_image(task(root, src, "out/x.png", "resize=0.01")), "too_large", root, before)


def test_image_over_a_small_budget_is_too_large(root, photo):
    before = files_under(root)
    assert_failed(run_image(task(root, photo, "out/x.png", "blur=3", max_pixels=512 * 512 - 1)),
                  "too_large", root, before)


def test_resize_result_over_the_budget_is_too_large(root, photo):
    before = files_under(root)
    assert_failed(run_image(task(root, photo, "out/x.png", "resize=4", max_pixels=1_000_000)),
                  "too_large", root, before)


def test_missing_input_is_not_found(root):
    before = files_under(root)
    assert_failed(run_image(task(root, os.path.join(root, "nope.jpg"), "out/x.jpg", "blur=3")),
                  "not_found", root, before)


def test_input_that_is_a_folder_is_not_found(root):
    os.makedirs(os.path.join(root, "dir.jpg"))
    report = run_image(task(root, os.path.join(root, "dir.jpg"), "out/x.jpg", "blur=3"))
    assert report.status == "error" and report.error_code == "not_found"


@pytest.mark.timeout(20)
def test_input_that_is_a_fifo_is_a_decode_error(root):
    fifo = os.path.join(root, "pipe.jpg")
    os.mkfifo(fifo)
    report = run_image(task(root, fifo, "out/x.jpg", "blur=3"))
    assert report.status == "error" and report.error_code == "decode_error"


def test_crop_outside_the_image_is_an_invalid_operation(root, photo):
    before = files_under(root)
    report = run_image(task(root, photo, "out/x.jpg", "crop=600,600,10,10"))
    assert_failed(report, "invalid_operation", root, before)
    assert "512x512" in report.error_message


def test_split_too_fine_for_the_image_is_an_invalid_operation(root):
    src = images.solid_png(Path(root, "in"), "tiny.png", (3, 3, 3), 7)
    before = files_under(root)
    assert_failed(run_image(task(root, src, "out/x.png", "split=4x4")), "invalid_operation", root, before)


def test_output_folder_that_cannot_be_made_is_a_write_error(root, photo):
    Path(root, "blocked").write_bytes(b"a file where a folder should be")
    before = files_under(root)
    report = run_image(task(root, photo, "blocked/sub/x.jpg", "blur=3"))
    assert_failed(report, "write_error", root, before)
    assert Path(root, "blocked").read_bytes() == b"a file where a folder should be"


def test_output_hard_linked_to_the_input_is_refused_and_the_input_kept(root, photo):
    original = photo.read_bytes()
    link = os.path.join(root, "out", "link.jpg")
    os.makedirs(os.path.dirname(link))
    os.link(photo, link)
    report = run_image(task(root, photo, "out/link.jpg", "grayscale"))
    assert report.status == "error" and report.error_code == "write_error"
    assert photo.read_bytes() == original


def test_a_fan_out_failing_on_one_tile_writes_no_tile(root, photo):
    """The third tile's path is taken by a folder: the image fails, and no tile of it may be left."""
    os.makedirs(os.path.join(root, "out", "x_2.png"))
    report = run_image(task(root, photo, "out/x.png", "split=True"))
    assert report.status == "error" and report.error_code == "write_error"
    assert sorted(os.listdir(os.path.join(root, "out"))) == ["x_2.png"]


def test_a_failed_rewrite_keeps_the_previous_output(root, photo):
    ok = run_image(task(root, photo, "out/x.jpg", "blur=3"))
    assert ok.status == "ok"
    previous = Path(root, "out", "x.jpg").read_bytes()
    report = run_image(task(root, photo, "out/x.jpg", "crop=900,900,5,5"))
    assert report.status == "error"
    assert Path(root, "out", "x.jpg").read_bytes() == previous


# ---------------------------------------------------------------- skip existing


def test_unchanged_input_and_outputs_are_skipped(root, photo):
    first = run_image(task(root, photo, "out/x.jpg", "split=True"))
    assert first.status == "ok" and first.input_hash
    expected = Expected(first.input_hash, tuple(first.outputs))
    again = run_image(task(root, photo, "out/x.jpg", "split=True", expected=expected))
    assert again.status == "skipped" and again.input_bytes == photo.stat().st_size
    assert again.outputs == first.outputs  # a skipped image reports the outputs it made before
    # an output touched since: processed again
    Path(first.outputs[2].path).write_bytes(b"changed")
    redo = run_image(task(root, photo, "out/x.jpg", "split=True", expected=expected))
    assert redo.status == "ok"
    assert decoded(first.outputs[2].path).shape == (256, 256, 3)


def test_changed_input_is_not_skipped(root, photo):
    first = run_image(task(root, photo, "out/x.jpg", "blur=3"))
    expected = Expected(first.input_hash, tuple(first.outputs))
    photo.write_bytes(images.jpeg_bytes("chelsea.jpg"))
    report = run_image(task(root, photo, "out/x.jpg", "blur=3", expected=expected))
    assert report.status == "ok"
    assert (report.outputs[0].width, report.outputs[0].height) == (451, 300)


def test_report_timings_name_the_stages(root, photo):
    report = run_image(task(root, photo, "out/x.jpg", "blur=3", "grayscale"))
    assert {"read", "decode", "blur", "grayscale", "encode", "write"} <= set(report.timings)

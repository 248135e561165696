"""JPEG-to-JPEG crops and fills on the YCbCr planes (imaging.planar): when they apply, and that
they give the usual path's output, or hand the image over to it."""
from __future__ import annotations

import io
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from PIL import Image

from app.errors import DecodeError
from app.imaging import codec, planar
from app.operations import parse_operation
from app.operations import PlaneStep
from app.pipeline import Pipeline, Timings
from app.render import Source, render
from app.render.planes import apply_planes, run_planes
from tests import images
from tests.images import decode_bytes
from tests.unit.conftest import load

needs_turbojpeg = pytest.mark.needs("turbojpeg")


def pipeline(*ops: str) -> Pipeline:
    return Pipeline.of([parse_operation(op) for op in ops])


def rendered(data: bytes, p: Pipeline, planes: bool, fmt: str = "jpeg"):
    (out,) = render(Source(data), codec.probe(data, 10**8), replace(p, planes=planes), fmt, 10**8, Timings())
    return out


def subsampling(blob: bytes) -> tuple:
    """(h, v) sampling factors of each component, from the JPEG's frame header."""
    with Image.open(io.BytesIO(blob)) as im:
        return tuple(im.layer[i][1:3] for i in range(len(im.layer)))


def _jpeg(img: np.ndarray, *params: int, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality, *params])
    assert ok
    return buf.tobytes()


@pytest.fixture
def encodes(monkeypatch) -> list[int]:
    """The planes encoder, counted: shows the planes path ran (its outputs may equal the usual ones)."""
    calls: list[int] = []
    real = planar.encode
    monkeypatch.setattr(planar, "encode", lambda p, quality: (calls.append(quality), real(p, quality))[1])
    return calls


# --- which pipelines run on the planes ---------------------------------------------------------

def test_the_seed_pipeline_runs_on_the_planes():
    steps = pipeline("crop=bottom:100", "redact=0,-100,200,100", "quality=75").plan_planes(2048, 1536)
    # the redaction's box is resolved against the cropped size
    assert steps == (PlaneStep("crop", (0, 0, 2048, 1436)), PlaneStep("redact", (0, 1336, 200, 100), (0, 0, 0)))


@pytest.mark.parametrize("ops", [
    ["resize=0.5"], ["blur=3"], ["grayscale"], ["split=True"], ["rotate=90"], ["flip=horizontal"], ["faces"],
    ["redact=0,0,10,10", "blur=3"],
    ["redact=x:0,y:0,width:10,height:10,mode:blur"],
    ["redact=x:0,y:0,width:10,height:10,mode:pixelate"],
    ["crop=0,0,100,100", "encode=quality:80,optimize:true"],
    ["encode=progressive:true"],
    ["crop=1,0,100,100"],  # starts on an odd column
    ["crop=0,0,101,100"],  # ends on an odd column inside the image
    ["redact=10,11,20,20"],  # starts on an odd row
    ["crop=5000,0,10,10"],  # outside: the usual path reports it
])
def test_what_needs_the_pixels_takes_the_usual_path(ops):
    assert pipeline(*ops).plan_planes(640, 480) is None


def test_boxes_may_end_on_an_odd_edge_of_the_image_and_wholly_outside_boxes_do_nothing():
    assert pipeline("crop=left:2").plan_planes(641, 481) == (PlaneStep("crop", (2, 0, 639, 481)),)
    assert pipeline("redact=-9,-9,9,9").plan_planes(641, 481) == (PlaneStep("redact", (632, 472, 9, 9), (0, 0, 0)),)
    assert pipeline("redact=-10,0,10,10").plan_planes(641, 481) is None  # starts on column 631
    assert pipeline("redact=600,470,100,100", "redact=2000,0,5,5").plan_planes(641, 481) == (
        PlaneStep("redact", (600, 470, 41, 11), (0, 0, 0)),)
    assert pipeline("quality=60").plan_planes(640, 480) == ()


@pytest.mark.parametrize("box, size, ok", [
    ((0, 0, 10, 10), (100, 100), True),
    ((2, 4, 6, 8), (100, 100), True),
    ((1, 0, 10, 10), (100, 100), False),
    ((0, 1, 10, 10), (100, 100), False),
    ((0, 0, 9, 10), (100, 100), False),
    ((0, 0, 10, 9), (100, 100), False),
    ((90, 0, 11, 10), (101, 100), True),  # ends at the odd right edge
    ((0, 90, 10, 11), (100, 101), True),  # ends at the odd bottom edge
])
def test_a_box_must_hold_whole_chroma_samples(box, size, ok):
    assert planar.aligned(box, *size) is ok


@pytest.mark.parametrize("bgr", [(0, 0, 0), (255, 255, 255), (0, 0, 255), (0, 255, 0), (255, 0, 0),
                                 (40, 120, 200)])
def test_fill_colours_convert_to_ycbcr_as_opencv_converts_them(bgr):
    y, cb, cr = planar.ycbcr(bgr)
    pixel = np.array([[[y, cr, cb]]], np.uint8)  # OpenCV's order is Y, Cr, Cb
    back = cv2.cvtColor(pixel, cv2.COLOR_YCrCb2BGR)[0, 0]
    assert np.abs(back.astype(int) - np.array(bgr)).max() <= 2


def test_black_is_exactly_jpeg_black():
    assert planar.ycbcr((0, 0, 0)) == (0, 128, 128)


# --- the planes give the usual output --------------------------------------------------------

@needs_turbojpeg
@pytest.mark.parametrize("name", ["coffee.jpg", "astronaut.jpg", "chelsea.jpg"])
def test_crop_and_redact_on_the_planes_match_the_usual_path(name):
    data = images.jpeg_bytes(name)
    p = pipeline("crop=bottom:40", "redact=0,-60,120,60", "quality=75")
    fast, usual = rendered(data, p, True), rendered(data, p, False)
    assert fast.blob != usual.blob  # the planes path really ran: its bytes are its own
    assert (fast.width, fast.height) == (usual.width, usual.height)
    a, b = decode_bytes(fast.blob), decode_bytes(usual.blob)
    assert a.shape == b.shape == (usual.height, usual.width, 3)
    assert cv2.PSNR(a, b) > 40
    # black, but for JPEG's ringing near the box's edge: both paths alike
    assert a[-56:, :116].max() <= 10 and b[-56:, :116].max() <= 10
    assert abs(int(a[-60:, :120].max()) - int(b[-60:, :120].max())) <= 8
    assert subsampling(fast.blob) == subsampling(usual.blob) == ((2, 2), (1, 1), (1, 1))
    # against the source's own pixels, the planes lose no more than the usual path
    source = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:-40]
    source[-60:, :120] = 0
    assert cv2.PSNR(a, source) >= cv2.PSNR(b, source) - 0.2


@needs_turbojpeg
def test_an_odd_sized_jpeg_keeps_its_size_and_its_edge_boxes():
    data = _jpeg(load("coffee.jpg")[:101, :151], quality=95)
    p = pipeline("redact=140,90,11,11", "quality=90")  # to the bottom-right corner
    fast, usual = rendered(data, p, True), rendered(data, p, False)
    assert fast.blob != usual.blob  # the planes path ran
    assert (fast.width, fast.height) == (151, 101)
    out = decode_bytes(fast.blob)
    assert out.shape == (101, 151, 3)
    other = decode_bytes(usual.blob)
    # black, but for JPEG's ringing near the box's edge: both paths alike
    assert out[94:, 144:].max() <= 10 and other[94:, 144:].max() <= 10
    assert abs(int(out[90:, 140:].max()) - int(other[90:, 140:].max())) <= 8
    assert cv2.PSNR(out, other) > 38
    assert subsampling(fast.blob) == subsampling(usual.blob) == ((2, 2), (1, 1), (1, 1))


@needs_turbojpeg
def test_nothing_of_a_filled_odd_edge_is_left_in_the_file(encodes):
    # The encoder reads luminance in whole chroma samples: for an odd size, one column and one
    # row beyond the image. They must repeat the edge, not hold the pixels the fill covered.
    data = _jpeg(np.full((33, 35, 3), 240, np.uint8))
    out = rendered(data, pipeline("redact=0,0,35,33"), True)
    assert encodes == [90]  # the planes path ran
    planes = planar.decode(out.blob)
    assert planes is not None and (planes.width, planes.height) == (35, 33)
    assert planes.y.base is not None and planes.y.base.shape == (34, 36)
    assert planes.y.base.max() <= 2  # the padding decoded from the file is black too
    assert decode_bytes(out.blob).max() <= 2


@needs_turbojpeg
def test_a_one_row_output_is_still_4_2_0():
    data = _jpeg(load("coffee.jpg")[:33, :64])
    p = pipeline("crop=x:0,y:32,width:64,height:1")
    fast, usual = rendered(data, p, True), rendered(data, p, False)
    assert fast.blob != usual.blob and (fast.width, fast.height) == (64, 1)
    assert subsampling(fast.blob) == subsampling(usual.blob) == ((2, 2), (1, 1), (1, 1))


@needs_turbojpeg
def test_the_fill_colour_is_kept():
    data = images.jpeg_bytes("astronaut.jpg")
    p = pipeline("redact=x:100,y:100,width:200,height:100,color:[40,120,200]")
    fast = rendered(data, p, True)
    assert fast.blob != rendered(data, p, False).blob  # the planes path ran
    box = decode_bytes(fast.blob)[110:190, 110:290].reshape(-1, 3)
    assert np.abs(np.median(box, axis=0) - np.array([40, 120, 200])).max() <= 2


@needs_turbojpeg
def test_exif_is_kept_with_the_planes(tmp_path, encodes):
    data = images.exif_jpeg(tmp_path, 1, size=(120, 80)).read_bytes()
    p = pipeline("crop=0,0,100,60")
    fast = rendered(data, p, True)
    assert fast.blob != rendered(data, p, False).blob
    with Image.open(io.BytesIO(fast.blob)) as im:
        exif = im.getexif()
        assert im.size == (100, 60) and exif[0x010F] == "ImgsrvCam" and exif.get(0x0112, 1) == 1
    stripped = rendered(data, replace(p, metadata="strip"), True)
    with Image.open(io.BytesIO(stripped.blob)) as im:
        assert im.size == (100, 60) and not im.getexif()
    assert len(encodes) == 2  # both through the planes


@needs_turbojpeg
def test_threads_decode_and_encode_planes_at_once(encodes):
    datas = [images.jpeg_bytes(n) for n in ("coffee.jpg", "astronaut.jpg", "chelsea.jpg", "grace_hopper.jpg")] * 4
    p = pipeline("crop=top:2", "redact=0,0,32,32")
    alone = [rendered(d, p, True).blob for d in datas]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda d: rendered(d, p, True).blob, datas))
    assert together == alone
    assert len(encodes) == 2 * len(datas)  # every one through the planes


@needs_turbojpeg
def test_the_planes_are_views_until_a_fill():
    data = images.jpeg_bytes("coffee.jpg")
    steps = pipeline("crop=2,2,100,50", "redact=0,0,10,10").plan_planes(600, 400)
    timings = Timings()
    planes = run_planes(data, steps, timings)
    assert planes is not None and (planes.width, planes.height) == (100, 50)
    assert planes.cb.shape == planes.cr.shape == (25, 50)
    assert planes.y[:10, :10].max() == 0 and planes.cb[:5, :5].min() == planes.cb[:5, :5].max() == 128
    assert set(timings.ms) == {"decode", "crop", "redact"}
    # the crop is a view of the decoded planes, and the fill writes into them: no copy
    full = planar.decode(data)
    cut = apply_planes(full, steps)
    for part, whole in ((cut.y, full.y), (cut.cb, full.cb), (cut.cr, full.cr)):
        assert np.shares_memory(part, whole)
    assert full.y[2:12, 2:12].max() == 0 and full.cb[1:6, 1:6].min() == full.cb[1:6, 1:6].max() == 128


# --- everything else goes the usual way --------------------------------------------------------


@needs_turbojpeg
def test_other_subsamplings_and_gray_jpegs_are_not_decoded_to_planes():
    img = load("coffee.jpg")
    assert planar.decode(_jpeg(img, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444)) is None
    assert planar.decode(_jpeg(img, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422)) is None
    assert planar.decode(_jpeg(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))) is None
    assert planar.decode(_jpeg(img)) is not None


@needs_turbojpeg
@pytest.mark.parametrize("sampling", ["444", "gray"])
def test_a_jpeg_the_planes_cannot_take_gets_the_usual_output(sampling):
    img = load("coffee.jpg")
    data = (_jpeg(img, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444) if sampling == "444"
            else _jpeg(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)))
    p = pipeline("crop=0,0,200,100", "redact=0,0,20,20")
    assert rendered(data, p, True).blob == rendered(data, p, False).blob


@needs_turbojpeg
def test_a_truncated_jpeg_is_refused_as_before(tmp_path):
    data = images.truncated_jpeg(tmp_path).read_bytes()
    assert planar.decode(data) is None
    p = pipeline("crop=bottom:10")
    errors = []
    for planes in (True, False):
        with pytest.raises(DecodeError) as info:
            rendered(data, p, planes)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


@needs_turbojpeg
def test_an_oriented_jpeg_is_turned_upright_by_the_usual_path(tmp_path):
    data = images.exif_jpeg(tmp_path, 6, size=(120, 80)).read_bytes()  # stored 80x120, upright 120x80
    out = rendered(data, pipeline("crop=0,0,100,60"), True)
    assert (out.width, out.height) == (100, 60)
    assert out.blob == rendered(data, pipeline("crop=0,0,100,60"), False).blob


@needs_turbojpeg
def test_png_outputs_and_inputs_take_the_usual_path():
    data = images.jpeg_bytes("coffee.jpg")
    p = pipeline("crop=0,0,200,100")
    assert rendered(data, p, True, "png").blob == rendered(data, p, False, "png").blob
    png_data = (images.testimage("camera.png")).read_bytes()
    assert rendered(png_data, p, True, "jpeg").blob == rendered(png_data, p, False, "jpeg").blob


@needs_turbojpeg
def test_an_encoder_failure_falls_back_to_the_usual_path(monkeypatch):
    data = images.jpeg_bytes("coffee.jpg")
    p = pipeline("crop=bottom:40", "redact=0,0,20,20")
    tried: list[int] = []

    def broken(planes, quality):
        tried.append(quality)
        raise OSError("libturbojpeg could not encode the planes")

    monkeypatch.setattr(planar.decoder(), "encode", broken)
    assert rendered(data, p, True).blob == rendered(data, p, False).blob
    assert tried == [90]  # the planes path got as far as the encoder


@pytest.mark.parametrize("variable", ["TJ_ARITHMETIC", "TJ_PROGRESSIVE", "TJ_RESTART", "TJ_OPTIMIZE"])
def test_libturbojpeg_encoder_settings_in_the_environment_turn_the_planes_off(monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    monkeypatch.setattr(planar, "_decoder", None)
    monkeypatch.setattr(planar, "_problem", None)  # loaded afresh, as in a new worker
    assert planar.decoder() is None and variable in (planar.unavailable() or "")


def test_without_libturbojpeg_everything_takes_the_usual_path(monkeypatch):
    monkeypatch.setattr(planar, "_decoder", None)
    monkeypatch.setattr(planar, "_problem", "libturbojpeg is not installed")
    data = images.jpeg_bytes("coffee.jpg")
    assert planar.decode(data) is None
    p = pipeline("crop=bottom:100", "redact=0,-100,200,100", "quality=75")
    out = rendered(data, p, True)
    assert out.blob == rendered(data, p, False).blob and (out.width, out.height) == (600, 300)


@pytest.mark.parametrize("setting, problem, expected", [
    (True, None, "JPEG planes: on (libturbojpeg)"),
    (True, "libturbojpeg is not installed", "JPEG planes: off, libturbojpeg is not installed"),
    (False, None, "JPEG planes: off (IMGSRV_JPEG_PLANES=false)"),
])
def test_the_server_says_at_start_up_whether_the_planes_are_on(monkeypatch, caplog, setting, problem, expected):
    from app.api.app import log_jpeg_planes
    from app.config import Settings

    monkeypatch.setattr(planar, "unavailable", lambda: problem)
    with caplog.at_level("INFO", logger="imgsrv"):
        log_jpeg_planes(Settings(jpeg_planes=setting))
    assert expected in caplog.text

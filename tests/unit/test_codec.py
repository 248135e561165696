"""Reading headers, decoding and encoding: broken and hostile files are refused with the
right error, unusual but valid files decode to the right 8-bit pixels, EXIF is honoured."""
from __future__ import annotations

import io
import struct

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from app.errors import DecodeError, TooLarge
from app.imaging import codec
from tests import images

BUDGET = 100_000_000


def read(path, max_pixels: int = BUDGET, reduce: int = 1) -> np.ndarray:
    data = path.read_bytes()
    return codec.decode(data, codec.probe(data, max_pixels), reduce)


def pillow_bgr(path) -> np.ndarray:
    """What Pillow sees, upright, in OpenCV's channel order."""
    im = ImageOps.exif_transpose(Image.open(path))
    arr = np.asarray(im)
    if arr.ndim == 2:
        return arr
    if arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)
    return cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)


# ---------------------------------------------------------------- refused inputs


@pytest.mark.parametrize("fraction", [0.5, 0.99])
def test_truncated_jpeg_is_a_decode_error(tmp_path, fraction):
    path = images.truncated_jpeg(tmp_path, fraction)
    # the trap: OpenCV's imread quietly returns an image with the missing part grey
    assert cv2.imread(str(path)) is not None
    with pytest.raises(DecodeError) as exc:
        read(path)
    assert exc.value.code == "decode_error"
    assert "truncated" in exc.value.message or "corrupt" in exc.value.message


def test_jpeg_cut_inside_its_header_is_a_decode_error(tmp_path):
    with pytest.raises(DecodeError):
        read(images.jpeg_header_only(tmp_path))


def test_empty_file_is_a_decode_error(tmp_path):
    with pytest.raises(DecodeError) as exc:
        read(images.empty_file(tmp_path))
    assert "empty" in exc.value.message


@pytest.mark.parametrize("kind", images.NOT_IMAGE_KINDS)
def test_text_html_pdf_svg_named_jpg_are_decode_errors(tmp_path, kind):
    with pytest.raises(DecodeError) as exc:
        read(images.not_an_image(tmp_path, kind))
    assert exc.value.code == "decode_error"


def test_png_with_a_bad_crc_is_a_decode_error(tmp_path):
    with pytest.raises(DecodeError):
        read(images.png_bad_crc(tmp_path))


@pytest.mark.parametrize("make", [images.png_bomb, images.jpeg_bomb], ids=["png", "jpeg"])
def test_header_bomb_is_refused_by_probe_before_decoding(tmp_path, make):
    path = make(tmp_path)
    data = path.read_bytes()
    assert len(data) < 1000
    with pytest.raises(TooLarge) as exc:
        codec.probe(data, BUDGET)
    assert exc.value.code == "too_large"
    assert "50000x50000" in exc.value.message
    # probe only reads the header: with a big enough budget it reports the claimed size
    # (decoding would need 7.5 GB, and the pixel data is garbage)
    header = codec.probe(data, 3_000_000_000)
    assert (header.width, header.height) == (50000, 50000)


def test_pixel_budget_boundary_on_a_real_photo():
    data = images.testimage("astronaut.jpg").read_bytes()
    assert codec.probe(data, 512 * 512).width == 512
    with pytest.raises(TooLarge):
        codec.probe(data, 512 * 512 - 1)


# ---------------------------------------------------------------- unusual valid inputs


def test_16_bit_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    out = read(images.png16(tmp_path, width=256))
    assert out.dtype == np.uint8 and out.shape == (8, 256)
    src = images.gradient16(256, 8)[0].astype(float)
    row = out[0].astype(float)
    assert row[0] == 0 and row[-1] == 255
    assert abs(row[128] - 128) <= 1  # mid grey, not 255 as clipping would give
    assert np.all(np.abs(row - src * 255 / 65535) <= 1)
    assert np.all(np.diff(row) >= 0)


def test_rgba_png_keeps_its_alpha(tmp_path):
    out = read(images.rgba_png(tmp_path, size=(64, 48)))
    assert out.shape == (48, 64, 4)
    assert np.all(out[:, :32, 3] == 0) and np.all(out[:, 32:, 3] == 255)
    assert np.all(out[:, 32:, :3] == (0, 0, 255))  # red in BGR
    # PNG keeps the alpha losslessly
    again = codec.decode(png := codec.encode(out, "png"), codec.probe(png, BUDGET))
    assert np.array_equal(again, out)


def test_rgba_written_as_jpeg_is_flattened_onto_white(tmp_path):
    img = read(images.rgba_png(tmp_path, size=(64, 48)))
    jpg = codec.encode(img, "jpeg", quality=95)
    out = codec.decode(jpg, codec.probe(jpg, BUDGET))
    assert out.shape == (48, 64, 3)
    # the transparent half was blue underneath: it must come out white, not blue or black
    assert np.all(out[4:-4, 4:26] >= 245)
    assert np.all(np.abs(out[4:-4, 38:-4].astype(int) - (0, 0, 255)) <= 12)


def test_flatten_alpha_blends_partial_transparency():
    img = np.zeros((2, 2, 4), np.uint8)
    img[..., 3] = 128  # black, half transparent
    out = codec.flatten_alpha(img)
    assert out.shape == (2, 2, 3) and np.all(np.abs(out.astype(int) - 127) <= 1)


def test_palette_png_decodes_to_its_colours(tmp_path):
    path = images.palette_png(tmp_path)
    assert Image.open(path).mode == "P"
    out = read(path)
    assert out.shape == (300, 451, 3)
    expected = cv2.cvtColor(np.asarray(Image.open(path).convert("RGB")), cv2.COLOR_RGB2BGR)
    assert np.array_equal(out, expected)


def test_gray_png_decodes_to_one_channel(tmp_path):
    path = images.gray_png(tmp_path)
    out = read(path)
    assert out.shape == (512, 512)
    assert np.array_equal(out, np.asarray(Image.open(path)))
    assert read(images.testimage("camera.png")).shape == (512, 512)


def test_png_content_named_jpg_is_decoded_by_its_content(tmp_path):
    path = images.gray_png(tmp_path, name="actually_png.jpg")
    data = path.read_bytes()
    assert codec.probe(data, BUDGET).format == "png"
    assert read(path).shape == (512, 512)


# ---------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_comes_out_upright(tmp_path, orientation):
    path = images.exif_jpeg(tmp_path, orientation)
    data = path.read_bytes()
    header = codec.probe(data, BUDGET)
    assert header.orientation == orientation
    out = codec.decode(data, header)
    assert out.shape == (80, 120, 3)  # upright: wider than high
    expected = pillow_bgr(path)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 2
    # and it is the known upright picture (red block top-left, blue bar at the bottom)
    reference = cv2.cvtColor(np.asarray(images.upright_reference()), cv2.COLOR_RGB2BGR)
    assert np.abs(out.astype(int) - reference.astype(int)).mean() < 3


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_orientation_of_png_webp_tiff_comes_out_upright(tmp_path, fmt, orientation):
    path = images.oriented_image(tmp_path, orientation, fmt)
    out = read(path)
    assert pillow_bgr(path).shape == (80, 120, 3)  # what a viewer shows
    reference = cv2.cvtColor(np.asarray(images.upright_reference()), cv2.COLOR_RGB2BGR)
    assert out.shape == (80, 120, 3)
    assert np.array_equal(out, reference)  # all three are lossless here


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_upright_with_reduced_decode(tmp_path, orientation):
    out = read(images.exif_jpeg(tmp_path, orientation), reduce=2)
    assert out.shape == (40, 60, 3)
    reference = cv2.resize(cv2.cvtColor(np.asarray(images.upright_reference()), cv2.COLOR_RGB2BGR), (60, 40),
                           interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - reference.astype(int)).mean() < 6


# ---------------------------------------------------------------- EXIF kept on output


def exif_of(jpeg: bytes) -> Image.Exif:
    return Image.open(io.BytesIO(jpeg)).getexif()


def test_upright_exif_resets_only_the_orientation(tmp_path):
    data = images.exif_jpeg(tmp_path, 6).read_bytes()
    raw = codec.probe(data, BUDGET).exif
    assert raw is not None and raw.startswith(b"Exif\x00\x00")
    fixed = codec.upright_exif(raw)
    assert len(fixed) == len(raw)
    exif = Image.Exif()
    exif.load(fixed[6:])
    assert exif[0x0112] == 1
    assert (exif[0x010F], exif[0x0110], exif[0x0132]) == ("ImgsrvCam", "Model X", "2024:05:06 07:08:09")


def test_encode_with_exif_keeps_make_model_datetime_with_orientation_1(tmp_path):
    path = images.exif_jpeg(tmp_path, 8)
    data = path.read_bytes()
    header = codec.probe(data, BUDGET)
    img = codec.decode(data, header)
    out = codec.encode(img, "jpeg", exif=header.exif)
    exif = exif_of(out)
    assert exif.get(0x0112) == 1
    assert exif.get(0x010F) == "ImgsrvCam" and exif.get(0x0110) == "Model X"
    assert exif.get(0x0132) == "2024:05:06 07:08:09"
    # a viewer that honours EXIF shows exactly the pixels we wrote
    again = codec.decode(out, codec.probe(out, BUDGET))
    assert again.shape == img.shape
    assert np.abs(pillow_bgr(io.BytesIO(out)).astype(int) - again.astype(int)).max() <= 2


def test_insert_exif_into_a_jpeg_without_exif():
    jpeg = codec.encode(cv2.imread(str(images.testimage("chelsea.jpg"))), "jpeg")
    assert 0x010F not in exif_of(jpeg)
    exif = Image.Exif()
    exif[0x010F] = "Cam"
    exif[0x0112] = 3
    raw = exif.tobytes()
    assert raw.startswith(b"Exif\x00\x00")
    out = codec.insert_exif(jpeg, raw)
    assert exif_of(out).get(0x010F) == "Cam" and exif_of(out).get(0x0112) == 1
    assert Image.open(io.BytesIO(out)).size == (451, 300)
    assert np.array_equal(codec.decode(out, codec.probe(out, BUDGET)), codec.decode(jpeg, codec.probe(jpeg, BUDGET)))


@pytest.mark.parametrize("order,mark", [(">", b"MM"), ("<", b"II")], ids=["motorola", "intel"])
def test_upright_exif_in_both_byte_orders(order, mark):
    # a hand-made EXIF block: Make="XY" (inline) and Orientation=6
    ifd = struct.pack(order + "H", 2)
    ifd += struct.pack(order + "HHI", 0x010F, 2, 3) + b"XY\x00\x00"
    ifd += struct.pack(order + "HHIH", 0x0112, 3, 1, 6) + b"\x00\x00"
    ifd += struct.pack(order + "I", 0)
    raw = b"Exif\x00\x00" + mark + struct.pack(order + "H", 42) + struct.pack(order + "I", 8) + ifd
    before = Image.Exif()
    before.load(raw[6:])
    assert before[0x0112] == 6 and before[0x010F] == "XY"
    fixed = codec.upright_exif(raw)
    exif = Image.Exif()
    exif.load(fixed[6:])
    assert exif[0x0112] == 1 and exif[0x010F] == "XY"


def test_encode_without_exif_writes_none(tmp_path):
    data = images.exif_jpeg(tmp_path, 6).read_bytes()
    header = codec.probe(data, BUDGET)
    out = codec.encode(codec.decode(data, header), "jpeg")
    assert 0x010F not in exif_of(out) and 0x0112 not in exif_of(out)


# ---------------------------------------------------------------- encoding


def test_jpeg_quality_trades_size_for_fidelity(astronaut):
    low = codec.encode(astronaut, "jpeg", quality=30)
    high = codec.encode(astronaut, "jpeg", quality=95)
    assert len(low) < len(high)
    err_low = np.abs(codec.decode(low, codec.probe(low, BUDGET)).astype(int) - astronaut).mean()
    err_high = np.abs(codec.decode(high, codec.probe(high, BUDGET)).astype(int) - astronaut).mean()
    assert err_high < err_low


def test_progressive_jpeg_is_marked_progressive(astronaut):
    out = codec.encode(astronaut, "jpeg", progressive=True)
    assert Image.open(io.BytesIO(out)).info.get("progressive") or Image.open(io.BytesIO(out)).info.get("progression")


@pytest.mark.parametrize("fmt", ["png", "bmp", "tiff", "webp", "jpeg"])
@pytest.mark.parametrize("kind", ["bgr", "gray", "bgra"])
def test_every_format_round_trips_size_and_content(chelsea, fmt, kind):
    img = {"bgr": chelsea, "gray": cv2.cvtColor(chelsea, cv2.COLOR_BGR2GRAY),
           "bgra": np.dstack([chelsea, np.full(chelsea.shape[:2], 200, np.uint8)])}[kind]
    data = codec.encode(img, fmt, quality=100)
    header = codec.probe(data, BUDGET)
    assert header.format == fmt and (header.width, header.height) == (451, 300)
    out = codec.decode(data, header)
    assert out.shape[:2] == (300, 451)
    if fmt in ("png", "bmp", "tiff"):  # lossless, layout kept
        assert np.array_equal(out, img)
    elif fmt == "jpeg" and kind == "bgra":  # JPEG has no alpha: flattened onto white
        assert out.shape == (300, 451, 3)
        assert np.abs(out.astype(int) - codec.flatten_alpha(img).astype(int)).mean() < 2
    else:
        comparable = out if out.shape == img.shape else cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
        assert np.abs(comparable.astype(int) - img.astype(int)).mean() < 2


def test_png_compression_level_is_lossless(astronaut):
    fast = codec.encode(astronaut, "png", compression=0)
    small = codec.encode(astronaut, "png", compression=9)
    assert len(small) < len(fast)
    for data in (fast, small):
        assert np.array_equal(codec.decode(data, codec.probe(data, BUDGET)), astronaut)

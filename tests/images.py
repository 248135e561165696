"""Generators of test inputs, shared by the unit and end-to-end tests.

Every function writes one file into ``folder`` (created if needed) and returns its
``pathlib.Path``. Nothing is downloaded: inputs come from the real photos in
``testimages/`` or are crafted byte by byte. Functions whose content must be checked
against a known value also have a companion that returns that value (``upright_reference``).
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

TESTIMAGES = Path(__file__).resolve().parent.parent / "testimages"

# Pillow transposes that produce what a camera stores for each EXIF orientation, given the
# upright picture. Orientation N says "to show me upright, apply transform T_N"; we store
# inverse(T_N)(upright), so that applying T_N (what a viewer / exif_transpose does) restores it.
_STORE_TRANSFORM = {
    1: [],
    2: [Image.Transpose.FLIP_LEFT_RIGHT],
    3: [Image.Transpose.ROTATE_180],
    4: [Image.Transpose.FLIP_TOP_BOTTOM],
    5: [Image.Transpose.TRANSPOSE],
    6: [Image.Transpose.ROTATE_90],     # viewer rotates 90 clockwise, so store it 90 counter-clockwise
    7: [Image.Transpose.TRANSVERSE],
    8: [Image.Transpose.ROTATE_270],    # viewer rotates 90 counter-clockwise
}


def decode_bytes(blob: bytes) -> np.ndarray:
    """An encoded image (a response body, an output in memory), as OpenCV decodes it."""
    import cv2

    img = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None, "the bytes do not decode as an image"
    return img


def _out(folder, name: str) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _write(folder, name: str, data: bytes) -> Path:
    path = _out(folder, name)
    path.write_bytes(data)
    return path


def testimage(name: str) -> Path:
    """Path of a real photo in ``testimages/`` (astronaut.jpg, grace_hopper.jpg, camera.png, ...)."""
    path = TESTIMAGES / name
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def jpeg_bytes(name: str = "astronaut.jpg", quality: int = 90) -> bytes:
    """JPEG bytes of a real photo (re-encoded by Pillow when it is not a JPEG already)."""
    path = testimage(name)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        return path.read_bytes()
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def jpeg(folder, name: str = "photo.jpg", source: str = "astronaut.jpg") -> Path:
    """A valid JPEG copied from a real photo."""
    return _write(folder, name, jpeg_bytes(source))


def truncated_jpeg(folder, fraction: float = 0.5, name: str | None = None,
                   source: str = "astronaut.jpg") -> Path:
    """A JPEG cut after ``fraction`` of its bytes (0.5, 0.99: inside the scan data).

    cv2.imread fills the missing part with grey; a correct decoder must refuse it.
    """
    data = jpeg_bytes(source)
    cut = max(1, int(len(data) * fraction))
    if cut >= len(data):
        cut = len(data) - 2  # at least drop the EOI marker
    return _write(folder, name or f"truncated_{int(fraction * 100)}.jpg", data[:cut])


def jpeg_header_only(folder, name: str = "header_cut.jpg", source: str = "astronaut.jpg") -> Path:
    """A JPEG cut inside its header: SOI and the first segments, no start of frame."""
    data = jpeg_bytes(source)
    sof = data.find(b"\xff\xc0")
    if sof < 0:
        sof = data.find(b"\xff\xc2")
    cut = min(sof, 40) if sof > 0 else 40
    return _write(folder, name, data[:cut])


def empty_file(folder, name: str = "empty.jpg") -> Path:
    """A zero-byte file with an image name."""
    return _write(folder, name, b"")


_NOT_IMAGES = {
    "text": b"hello, this is not an image\n" * 4,
    "html": b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
            b"<body><h1>Not Found</h1></body></html>\n",
    "pdf": b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
           b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
    "svg": b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
           b'<rect width="100" height="100" fill="red"/></svg>\n',
}
NOT_IMAGE_KINDS = tuple(_NOT_IMAGES)


def not_an_image(folder, kind: str = "text", name: str | None = None) -> Path:
    """Text, HTML, PDF or SVG content (``kind``) saved under an image name (default KIND.jpg)."""
    return _write(folder, name or f"{kind}.jpg", _NOT_IMAGES[kind])


def gradient16(width: int = 256, height: int = 8) -> np.ndarray:
    """A uint16 horizontal gradient: column 0 is 0, the last column is 65535."""
    row = np.linspace(0, 65535, width).round().astype(np.uint16)
    return np.tile(row, (height, 1))


def png16(folder, name: str = "gradient16.png", width: int = 256, height: int = 8) -> Path:
    """A 16-bit grayscale PNG holding ``gradient16``: 8-bit output must be scaled (65535 -> 255,
    32768 -> ~128), not clipped (which would make everything above 255 white)."""
    path = _out(folder, name)
    Image.fromarray(gradient16(width, height)).save(path, "PNG")  # mode I;16 -> 16-bit PNG
    return path


def rgba_png(folder, name: str = "rgba.png", size: tuple[int, int] = (64, 48)) -> Path:
    """An RGBA PNG: opaque red (RGB 255,0,0) except its left half, which is fully transparent
    and blue (so a wrong flatten shows blue instead of the white background)."""
    w, h = size
    arr = np.zeros((h, w, 4), np.uint8)
    arr[:, :] = (255, 0, 0, 255)
    arr[:, : w // 2] = (0, 0, 255, 0)
    path = _out(folder, name)
    Image.fromarray(arr, "RGBA").save(path, "PNG")
    return path


def palette_png(folder, name: str = "palette.png", source: str = "chelsea.jpg") -> Path:
    """A palette (mode P, 256 colours) PNG made from a real photo."""
    path = _out(folder, name)
    Image.open(testimage(source)).convert("RGB").quantize(256).save(path, "PNG")
    return path


def gray_png(folder, name: str = "gray.png", source: str = "astronaut.jpg") -> Path:
    """An 8-bit grayscale (mode L) PNG made from a real photo."""
    path = _out(folder, name)
    Image.open(testimage(source)).convert("L").save(path, "PNG")
    return path


def upright_reference(size: tuple[int, int] = (120, 80)) -> Image.Image:
    """An asymmetric upright RGB picture (width > height): every flip or rotation of it differs.

    Red block top-left, green block top-right (smaller), blue bar along the bottom, on grey.
    """
    w, h = size
    arr = np.full((h, w, 3), 128, np.uint8)
    arr[: h // 3, : w // 3] = (255, 0, 0)
    arr[: h // 4, w - w // 6:] = (0, 255, 0)
    arr[h - h // 5:, w // 4:] = (0, 0, 255)
    return Image.fromarray(arr, "RGB")


def exif_jpeg(folder, orientation: int, name: str | None = None,
              size: tuple[int, int] = (120, 80), make: str = "ImgsrvCam",
              model: str = "Model X", datetime: str = "2024:05:06 07:08:09") -> Path:
    """A JPEG with EXIF Orientation=``orientation`` (1..8) whose upright content is
    ``upright_reference(size)``; also carries Make, Model and DateTime tags."""
    if orientation not in _STORE_TRANSFORM:
        raise ValueError("orientation must be 1..8")
    img = upright_reference(size)
    for t in _STORE_TRANSFORM[orientation]:
        img = img.transpose(t)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = make
    exif[0x0110] = model
    exif[0x0132] = datetime
    path = _out(folder, name or f"orient_{orientation}.jpg")
    img.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def oriented_image(folder, orientation: int, fmt: str = "PNG", name: str | None = None,
                   size: tuple[int, int] = (120, 80)) -> Path:
    """Like ``exif_jpeg`` but lossless: a PNG (eXIf chunk), WebP (EXIF chunk) or TIFF
    (Orientation tag 274 in its IFD) with orientation ``orientation`` whose upright content is
    exactly ``upright_reference(size)``."""
    if orientation not in _STORE_TRANSFORM:
        raise ValueError("orientation must be 1..8")
    img = upright_reference(size)
    for t in _STORE_TRANSFORM[orientation]:
        img = img.transpose(t)
    ext = {"PNG": ".png", "WEBP": ".webp", "TIFF": ".tif"}[fmt]
    path = _out(folder, name or f"orient_{orientation}{ext}")
    if fmt == "TIFF":
        img.save(path, "TIFF", tiffinfo={0x0112: orientation})
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(path, fmt, exif=exif.tobytes(), **({"lossless": True} if fmt == "WEBP" else {}))
    return path


def _png_chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    if crc is None:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bad_crc(folder, name: str = "bad_crc.png", size: tuple[int, int] = (32, 16)) -> Path:
    """A small valid-looking PNG whose IDAT chunk has a wrong CRC."""
    w, h = size
    raw = b"".join(b"\x00" + bytes((x * 7) & 255 for x in range(w)) for _ in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(raw)
    good_crc = zlib.crc32(b"IDAT" + idat) & 0xFFFFFFFF
    data = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", idat, crc=good_crc ^ 0xDEADBEEF) + _png_chunk(b"IEND", b""))
    return _write(folder, name, data)


def png_bomb(folder, name: str = "bomb.png", width: int = 50000, height: int = 50000) -> Path:
    """A tiny PNG whose (valid, correct-CRC) IHDR claims ``width`` x ``height`` RGB pixels,
    followed by an IDAT chunk of garbage instead of image data. Decoding it would need
    gigabytes; the file is under 200 bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", b"\x00garbage" * 16) + b"\x00garbage" * 4)
    return _write(folder, name, data)


def jpeg_bomb(folder, name: str = "bomb.jpg", width: int = 50000, height: int = 50000) -> Path:
    """A tiny JPEG whose SOF0 header claims ``width`` x ``height`` (3 components), followed by
    garbage instead of tables and scan data."""
    soi = b"\xff\xd8"
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    comps = b"".join(bytes((cid, 0x11, 0)) for cid in (1, 2, 3))
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 8 + 3 * 3, 8, height, width, 3) + comps
    return _write(folder, name, soi + app0 + sof0 + b"\x00garbage" * 16)


def solid_png(folder, name: str, shape: tuple, value=0) -> Path:
    """A PNG of a single colour, ``shape`` (h, w) gray or (h, w, c) BGR/BGRA as numpy sees it."""
    import cv2

    path = _out(folder, name)
    arr = np.zeros(shape, np.uint8)
    arr[...] = value
    ok, buf = cv2.imencode(".png", arr)
    assert ok
    path.write_bytes(buf.tobytes())
    return path

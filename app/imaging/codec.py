"""Reading image headers, decoding, encoding and EXIF.

Inputs are read once as bytes. The header is parsed first (Pillow, lazily: no pixel is
decoded) so that the pixel budget is checked before any large buffer is allocated; then
``cv2.imdecode`` decodes the same bytes. ``cv2.imread`` is never used: it silently fills a
truncated JPEG with grey, where ``imdecode`` refuses it.
"""
from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DecodeError, TooLarge, WriteError
from ..formats import EXTENSION, Format

# imgsrv checks the pixel budget itself (probe), so Pillow's own bomb guard stays out of the way.
Image.MAX_IMAGE_PIXELS = None

_PIL_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "TIFF": "tiff", "BMP": "bmp",
                "GIF": "gif", "PPM": "ppm"}

DEFAULT_QUALITY = 90
DEFAULT_COMPRESSION = 3


@dataclass(frozen=True)
class Header:
    """What the file's header says, read without decoding pixels."""

    format: str  # jpeg, png, webp, tiff, bmp, gif, ppm
    width: int
    height: int
    gray: bool  # a single-channel image
    orientation: int  # EXIF orientation 1..8 (1 = upright)
    exif: bytes | None  # the raw EXIF block of a JPEG ("Exif\0\0" + TIFF data)

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) once turned upright: orientations 5-8 swap the sides."""
        return (self.height, self.width) if self.orientation >= 5 else (self.width, self.height)


def probe(data: bytes, max_pixels: int) -> Header:
    """Parse the header; refuse what is not an image or has more than ``max_pixels`` pixels."""
    if not data:
        raise DecodeError("the file is empty")
    header = _probe_jpeg(data) if data.startswith(b"\xff\xd8\xff") else None
    if header is None:
        header = _probe_pillow(data)
    if header.width * header.height > max_pixels:
        raise TooLarge(f"the image has {header.width}x{header.height} = {header.width * header.height} pixels, "
                       f"more than the limit of {max_pixels}")
    return header


# SOF markers: baseline, extended, progressive, lossless, with Huffman or arithmetic coding.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _probe_jpeg(data: bytes) -> Header | None:
    """A JPEG's size and EXIF from its markers, in microseconds (Pillow's open takes over a
    millisecond on a camera JPEG). None when the markers are unusual: Pillow then decides."""
    pos, n, exif = 2, len(data), None
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker == 0xE1 and exif is None and data[pos + 4:pos + 10] == b"Exif\x00\x00":
            exif = bytes(data[pos + 4:pos + 2 + length])
        elif marker in _SOF:
            if pos + 10 > n:
                return None
            height, width = struct.unpack_from(">HH", data, pos + 5)
            components = data[pos + 9]
            if not width or not height:
                return None  # the height comes later (DNL): rare, let Pillow read it
            return Header("jpeg", width, height, components == 1, exif_orientation(exif), exif)
        elif marker == 0xDA:  # scan data before any frame header
            return None
        pos += 2 + length
    return None


def exif_orientation(exif: bytes | None) -> int:
    """The orientation tag (1..8) of a raw EXIF block; 1 when absent or unreadable."""
    entry = _orientation_entry(exif) if exif else None
    if entry is None:
        return 1
    tiff, order, offset = entry
    (value,) = struct.unpack_from(order + "H", tiff, offset + 8)
    return value if 1 <= value <= 8 else 1


def _orientation_entry(exif: bytes) -> tuple[bytes, str, int] | None:
    """(TIFF data, byte order, offset of the IFD0 entry of the orientation tag), or None."""
    if not exif.startswith(b"Exif\x00\x00") or len(exif) < 14:
        return None
    tiff = exif[6:]
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    if order is None:
        return None
    try:
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for i in range(count):
            offset = ifd + 2 + 12 * i
            tag, typ = struct.unpack_from(order + "HH", tiff, offset)
            if tag == 0x0112 and typ == 3:  # Orientation, SHORT
                struct.unpack_from(order + "H", tiff, offset + 8)
                return tiff, order, offset
    except struct.error:
        return None
    return None


def _probe_pillow(data: bytes) -> Header:
    """What Pillow's ``open`` reads of the header. Only what it parsed before the pixel data
    is used: ``getexif()`` would decode a whole PNG first (the bomb this guards against), and
    counting frames would read a whole GIF; multi-frame files are decoded at their first frame."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                fmt = _PIL_FORMATS.get(im.format or "")
                width, height = im.size
                gray = im.mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F")
                exif = im.info.get("exif")
    except UnidentifiedImageError:
        raise DecodeError("not a recognised image format (JPEG, PNG, WebP, TIFF, BMP)") from None
    except Exception as exc:
        raise DecodeError(f"unreadable image header: {exc}") from None
    if fmt is None:
        raise DecodeError("not a supported image format (JPEG, PNG, WebP, TIFF, BMP)")
    if not isinstance(exif, bytes):
        exif = None
    elif not exif.startswith(b"Exif\x00\x00"):
        exif = b"Exif\x00\x00" + exif  # WebP and PNG may hold the TIFF data alone
    # OpenCV's TIFF decoder applies the orientation tag itself
    orientation = 1 if fmt == "tiff" else exif_orientation(exif)
    return Header(fmt, width, height, gray, orientation, exif if fmt == "jpeg" else None)


_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
_REDUCED_GRAY = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


def decode(data: bytes, header: Header, reduce: int = 1, gray: bool = False) -> np.ndarray:
    """Decode to uint8 gray, BGR or BGRA, upright (EXIF orientation applied).

    For JPEG only: ``reduce`` 2, 4 or 8 asks libjpeg for a reduced-size decode (1.8x faster
    at 1/4 than decoding at full size, before the shrink it saves); ``gray`` decodes the
    luminance alone.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if header.format == "jpeg" and (reduce in _REDUCED or gray):
        gray = gray or header.gray
        if reduce in _REDUCED:
            flags = (_REDUCED_GRAY if gray else _REDUCED)[reduce]
        else:
            flags = cv2.IMREAD_GRAYSCALE
        flags |= cv2.IMREAD_IGNORE_ORIENTATION
    else:
        flags = cv2.IMREAD_UNCHANGED  # keeps alpha, 16 bits and gray; ignores EXIF orientation
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as exc:
        raise DecodeError(f"the image data is corrupt: {exc.err or exc}") from None
    if img is None or img.size == 0:
        raise DecodeError(f"the {header.format.upper()} data is corrupt or truncated")
    return orient(to_uint8(img), header.orientation)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Scale 16-bit and float images to 8 bits (scaled, not clipped); drop singleton channels."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return cv2.convertScaleAbs(img, alpha=255.0 / 65535.0)
    if img.dtype in (np.float32, np.float64):
        return cv2.convertScaleAbs(np.clip(img, 0.0, 1.0), alpha=255.0)
    if img.dtype == np.int8:
        return cv2.convertScaleAbs(img.astype(np.int16) + 128)
    info = np.iinfo(img.dtype)
    return cv2.convertScaleAbs(img.astype(np.float64) - info.min, alpha=255.0 / (info.max - info.min))


def orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an image stored with EXIF ``orientation`` upright."""
    if orientation == 2:
        return cv2.flip(img, 1)
    if orientation == 3:
        return cv2.rotate(img, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(img, 0)
    if orientation == 5:
        return cv2.transpose(img)
    if orientation == 6:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.flip(cv2.transpose(img), -1)
    if orientation == 8:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def flatten_alpha(img: np.ndarray, background: int = 255) -> np.ndarray:
    """Composite a BGRA image onto a plain (white) background; other images pass through."""
    if img.ndim != 3 or img.shape[2] != 4:
        return img
    alpha = img[:, :, 3:4].astype(np.float32) / 255.0
    bgr = img[:, :, :3].astype(np.float32)
    return (bgr * alpha + background * (1.0 - alpha) + 0.5).astype(np.uint8)


def encode(img: np.ndarray, fmt: str, quality: int = DEFAULT_QUALITY, optimize: bool = False,
           progressive: bool = False, compression: int = DEFAULT_COMPRESSION,
           exif: bytes | None = None) -> bytes:
    """Encode to ``fmt`` (jpeg, png, webp, tiff, bmp); JPEG gets ``exif`` when given."""
    params: list[int] = []
    if fmt == "jpeg":
        img = flatten_alpha(img)
        params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, int(optimize),
                  cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]
    elif fmt == "png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, compression]
    elif fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality]
    try:
        ok, buf = cv2.imencode(EXTENSION[Format(fmt)], img, params)
    except cv2.error as exc:
        raise WriteError(f"could not encode {fmt.upper()}: {exc.err or exc}") from None
    if not ok:
        raise WriteError(f"could not encode {fmt.upper()}")
    out = buf.tobytes()
    if fmt == "jpeg" and exif:
        out = insert_exif(out, exif)
    return out


def upright_exif(exif: bytes) -> bytes:
    """The EXIF block with its orientation tag set to 1 (the pixels are upright now)."""
    entry = _orientation_entry(exif)
    if entry is None:
        return exif
    tiff, order, offset = entry
    patched = bytearray(tiff)
    struct.pack_into(order + "H", patched, offset + 8, 1)
    return b"Exif\x00\x00" + bytes(patched)


def insert_exif(jpeg: bytes, exif: bytes) -> bytes:
    """Insert an APP1 EXIF segment after SOI and a JFIF APP0 segment, if any."""
    payload = upright_exif(exif)
    if len(payload) + 2 > 0xFFFF or not jpeg.startswith(b"\xff\xd8"):
        return jpeg
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":
        pos = 4 + struct.unpack(">H", jpeg[4:6])[0]
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:pos] + segment + jpeg[pos:]

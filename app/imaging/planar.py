"""JPEG to JPEG without leaving YCbCr: crop and fill a JPEG's own Y, Cb and Cr planes.

A camera JPEG keeps luminance (Y) at full size and the two chroma planes (Cb, Cr) at half the
width and half the height (4:2:0 subsampling). The usual path decodes to BGR, which upsamples
the chroma and converts every pixel, and the encoder converts every pixel back and downsamples
the chroma again. For a pipeline that only crops, blacks out boxes and re-encodes, that round
trip costs time and memory: BGR takes twice the memory of the planes, and on W1 of
benchmarks/bench.py (2048x1536 camera JPEGs) run_task takes 29.2 ms per image through BGR
and 23.9 ms on the planes, and the CLI on 2 cores does 65.5 against 88.6 images/s.
Here the decoder hands over the planes as stored, the boxes are cut and filled in them, and the
encoder takes them as they are. Outputs have the same size and subsampling as the usual path's.
Their pixels differ a little, because the usual path's chroma is upsampled and downsampled
again (which smooths it) and here it stays as stored: against the source, the planes come out
within 0.2 dB of the usual path in the tests, and 36.86 against 36.82 dB mean on the
benchmark's W1 images (benchmarks/planes-w1.md).

When it applies (``Pipeline.plan_planes`` and ``run_planes``):
- the input is a YCbCr JPEG with 4:2:0 subsampling and EXIF orientation 1;
- every operation is a crop or a ``fill`` redaction whose box starts on even coordinates and
  ends on even coordinates or at the image's edge: a chroma sample covers 2x2 pixels, so such
  a box holds whole chroma samples;
- the output is a JPEG, not ``optimize``d or ``progressive``.

The planes are decoded and encoded by libturbojpeg 2.0 or later, the TurboJPEG library of
libjpeg-turbo (Debian and Ubuntu: ``libturbojpeg0``; conda-forge: ``libjpeg-turbo``; Homebrew:
``jpeg-turbo``), called through ctypes. The decoder stops at its first warning: corrupt or
truncated data is never half-decoded here (PyTurboJPEG would turn that warning into a Python
warning and return what was decoded). The encoder uses the accurate integer DCT, as OpenCV's
does. Without the library, for any other input or pipeline, and for any data the decoder warns
about, the image takes the usual path, which reports errors as always.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .geometry import Box

_TJSAMP_420 = 2
_TJCS_YCBCR = 1
_TJFLAG_ACCURATEDCT = 4096  # the integer DCT of libjpeg's default (and of cv2.imencode), not the fast one
_TJFLAG_STOPONWARNING = 8192  # fail on the first warning instead of returning what was decoded


class _Handle:
    """A TurboJPEG handle, destroyed with its thread's local storage."""

    def __init__(self, make, destroy):
        self.value = make()
        self._destroy = destroy
        if not self.value:
            raise OSError("libturbojpeg could not allocate a handle")

    def __del__(self):
        if getattr(self, "value", None):
            self._destroy(self.value)


class _TurboJPEG:
    """The TurboJPEG functions the planes need; a decompressor and a compressor per thread."""

    def __init__(self, lib: ctypes.CDLL):
        int_p, vp, ulong = ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.c_ulong

        def fn(name: str, restype, *argtypes):
            f = getattr(lib, name)
            f.restype, f.argtypes = restype, list(argtypes)
            return f

        self.init_decompress = fn("tjInitDecompress", vp)
        self.init_compress = fn("tjInitCompress", vp)
        self.destroy = fn("tjDestroy", ctypes.c_int, vp)
        self.header = fn("tjDecompressHeader3", ctypes.c_int, vp, ctypes.c_char_p, ulong, int_p, int_p, int_p, int_p)
        self.to_planes = fn("tjDecompressToYUVPlanes", ctypes.c_int, vp, ctypes.c_char_p, ulong,
                            ctypes.POINTER(vp), ctypes.c_int, int_p, ctypes.c_int, ctypes.c_int)
        self.from_planes = fn("tjCompressFromYUVPlanes", ctypes.c_int, vp, ctypes.POINTER(vp), ctypes.c_int, int_p,
                              ctypes.c_int, ctypes.c_int, ctypes.POINTER(vp), ctypes.POINTER(ulong), ctypes.c_int,
                              ctypes.c_int)
        self.free = fn("tjFree", None, vp)
        self.plane_width = fn("tjPlaneWidth", ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int)
        self.plane_height = fn("tjPlaneHeight", ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int)
        fn("tjGetErrorCode", ctypes.c_int, vp)  # 2.0 and later, with the stop-on-warning flag
        self.local = threading.local()

    def _handle(self, kind: str) -> int:
        h = getattr(self.local, kind, None)
        if h is None:
            make = self.init_decompress if kind == "decompressor" else self.init_compress
            h = _Handle(make, self.destroy)
            setattr(self.local, kind, h)
        return h.value

    def decode(self, data: bytes) -> Planes | None:
        h = self._handle("decompressor")
        w, ht, sub, cs = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        if self.header(h, data, len(data), ctypes.byref(w), ctypes.byref(ht), ctypes.byref(sub), ctypes.byref(cs)):
            return None
        if sub.value != _TJSAMP_420 or cs.value != _TJCS_YCBCR:
            return None
        width, height = w.value, ht.value
        # libturbojpeg pads the luminance plane to whole chroma samples (even sizes)
        planes = [np.empty((self.plane_height(i, height, _TJSAMP_420), self.plane_width(i, width, _TJSAMP_420)),
                           np.uint8) for i in range(3)]
        pointers = (ctypes.c_void_p * 3)(*(p.ctypes.data for p in planes))
        strides = (ctypes.c_int * 3)(*(p.shape[1] for p in planes))
        if self.to_planes(h, data, len(data), pointers, width, strides, height, _TJFLAG_STOPONWARNING):
            return None
        return Planes(planes[0][:height, :width], planes[1], planes[2])

    def encode(self, p: Planes, quality: int) -> bytes:
        h = self._handle("compressor")
        chroma = ((p.height + 1) // 2, (p.width + 1) // 2)
        if p.cb.shape != chroma or p.cr.shape != chroma:
            raise ValueError(f"chroma planes of {p.cb.shape} and {p.cr.shape} for a {p.width}x{p.height} image")
        planes = (_padded(p.y), p.cb, p.cr)  # the encoder reads luminance in whole chroma samples
        pointers = (ctypes.c_void_p * 3)(*(q.ctypes.data for q in planes))
        strides = (ctypes.c_int * 3)(*(q.strides[0] for q in planes))
        dest, size = ctypes.c_void_p(), ctypes.c_ulong(0)  # libturbojpeg allocates (and grows) the output
        try:
            if self.from_planes(h, pointers, p.width, strides, p.height, _TJSAMP_420, ctypes.byref(dest),
                                ctypes.byref(size), quality, _TJFLAG_ACCURATEDCT):
                raise OSError("libturbojpeg could not encode the planes")
            return ctypes.string_at(dest.value, size.value)
        finally:
            if dest.value:
                self.free(dest)


def _padded(y: np.ndarray) -> np.ndarray:
    """``y`` as a view whose row and column after the last, when its size is odd, repeat the
    edge (what libjpeg's own padding does), so that no pixel outside the image reaches the file."""
    h, w = y.shape
    if h % 2 == 0 and w % 2 == 0:
        return y
    out = np.empty((h + h % 2, w + w % 2), np.uint8)
    out[:h, :w] = y
    out[:h, w:] = y[:, -1:]
    out[h:, :] = out[h - 1:h, :]
    return out[:h, :w]


_lock = threading.Lock()
_decoder: _TurboJPEG | None = None
_problem: str | None = None


_NAMES = ("libturbojpeg.so.0", "libturbojpeg.0.dylib", "libturbojpeg.dylib")
# Where the loader does not look: a conda environment's lib/, and Homebrew's jpeg-turbo, which
# is keg-only (not linked into Homebrew's lib/).
_FOLDERS = (os.path.join(sys.prefix, "lib"), "/opt/homebrew/opt/jpeg-turbo/lib", "/usr/local/opt/jpeg-turbo/lib")


def _library_paths():
    yield from (p for p in (os.path.join(d, n) for d in _FOLDERS for n in _NAMES) if os.path.exists(p))
    yield from _NAMES  # the loader's own search
    found = ctypes.util.find_library("turbojpeg")  # slower (runs ldconfig): last
    if found:
        yield found


# libturbojpeg's encoder reads these from the environment (arithmetic coding, progressive,
# restart markers, optimized tables): the planes' outputs would then differ from the usual path's.
_ENCODER_VARIABLES = ("TJ_OPTIMIZE", "TJ_ARITHMETIC", "TJ_RESTART", "TJ_PROGRESSIVE")


def _load() -> tuple[_TurboJPEG | None, str | None]:
    if set_vars := [v for v in _ENCODER_VARIABLES if v in os.environ]:
        return None, f"{', '.join(set_vars)} set in the environment would change libturbojpeg's output"
    problem = "libturbojpeg is not installed"
    for path in _library_paths():
        try:
            return _TurboJPEG(ctypes.CDLL(path)), None
        except OSError:
            continue
        except AttributeError as exc:  # a library older than 2.0
            problem = f"{path} is too old ({exc})"
    return None, problem


def decoder() -> _TurboJPEG | None:
    """The TurboJPEG decoder of this process, loaded on first use; None when unavailable."""
    global _decoder, _problem
    if _decoder is None and _problem is None:
        with _lock:
            if _decoder is None and _problem is None:
                _decoder, _problem = _load()
    return _decoder


def unavailable() -> str | None:
    """Why JPEGs cannot be worked on as planes in this process; None when they can."""
    decoder()
    return _problem


@dataclass
class Planes:
    """A 4:2:0 image as stored in a JPEG: ``y`` is h x w, ``cb`` and ``cr`` are ceil(h/2) x ceil(w/2)."""

    y: np.ndarray
    cb: np.ndarray
    cr: np.ndarray

    @property
    def width(self) -> int:
        return self.y.shape[1]

    @property
    def height(self) -> int:
        return self.y.shape[0]


def aligned(box: Box, width: int, height: int) -> bool:
    """Whether ``box`` in a ``width`` x ``height`` image holds whole chroma samples."""
    x, y, w, h = box
    return (x % 2 == 0 and y % 2 == 0 and ((x + w) % 2 == 0 or x + w == width)
            and ((y + h) % 2 == 0 or y + h == height))


def decode(data: bytes) -> Planes | None:
    """The planes of a 4:2:0 YCbCr JPEG; None for any other JPEG, for data the decoder warns
    about, or without libturbojpeg."""
    tj = decoder()
    if tj is None:
        return None
    try:
        return tj.decode(data)
    except (OSError, MemoryError, ctypes.ArgumentError):  # the usual path decodes it (and reports its errors)
        return None


def _chroma(box: Box) -> tuple[slice, slice]:
    x, y, w, h = box
    return slice(y // 2, (y + h + 1) // 2), slice(x // 2, (x + w + 1) // 2)


def crop(p: Planes, box: Box) -> Planes:
    """The part of the planes inside an aligned ``box``: views, no copy."""
    x, y, w, h = box
    rows, cols = _chroma(box)
    return Planes(p.y[y:y + h, x:x + w], p.cb[rows, cols], p.cr[rows, cols])


def ycbcr(bgr: Sequence[int]) -> tuple[int, int, int]:
    """A ``[b, g, r]`` colour in JPEG's YCbCr (JFIF, full range)."""
    b, g, r = bgr
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return tuple(min(255, max(0, int(round(v)))) for v in (y, cb, cr))  # type: ignore[return-value]


def fill(p: Planes, box: Box, bgr: Sequence[int]) -> None:
    """Fill an aligned ``box`` with a colour, in place."""
    x, y, w, h = box
    rows, cols = _chroma(box)
    vy, vcb, vcr = ycbcr(bgr)
    p.y[y:y + h, x:x + w] = vy
    p.cb[rows, cols] = vcb
    p.cr[rows, cols] = vcr


def encode(p: Planes, quality: int) -> bytes | None:
    """A baseline 4:2:0 JPEG of the planes, at ``quality``; None when libturbojpeg fails (the
    usual path then encodes the image, and reports its errors)."""
    tj = decoder()
    if tj is None:  # pragma: no cover - planes only exist where the library is
        return None
    try:
        return tj.encode(p, quality)
    except (OSError, ValueError, MemoryError, ctypes.ArgumentError):
        return None

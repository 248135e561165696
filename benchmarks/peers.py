#!/usr/bin/env python3
"""What bench.py compares imgsrv with, run in a process of its own for each measurement:

    python benchmarks/peers.py MODE WORKLOAD SRC DST     # prints one JSON line

- ``seq``: the naive sequential Pillow loop (what the seeds did), method (a);
- ``pool``: the same function over multiprocessing.Pool(cores), method (b);
- ``floor``: the codec floor, method (e): per image the best single-threaded cv2.imdecode (at
  the size and in the mode imgsrv plans for the workload) plus the best cv2.imencode of the
  workload's output, with the workload's encoder settings; for W2 also the reduced-decode
  comparison, and for JPEG crops and fills (W1) libturbojpeg's cost of decoding to YCbCr
  planes and encoding from them, measured the same way;
- ``pfloor``: the floor's measurement in one process per core at once, method (f).

None of this is imgsrv: the workloads are written again here with Pillow and OpenCV, so that
the floor's output is what the workload produces (its operations are not timed).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass

import cv2
import numpy as np

from harness import CORES, image_files

# ---------------------------------------------------------------------------------------------
# (a), (b): the workloads with Pillow
# ---------------------------------------------------------------------------------------------


def _out_name(dst_dir: str, src: str, fmt: str, suffix: str = "") -> str:
    stem = os.path.splitext(os.path.basename(src))[0]
    return os.path.join(dst_dir, stem + suffix + (".png" if fmt == "png" else ".jpg"))


def pil_workload(name: str, src: str, dst_dir: str) -> int:
    """Run workload ``name`` on one file with Pillow; returns the bytes written."""
    from PIL import Image, ImageDraw, ImageFilter

    written = []
    with Image.open(src) as im:
        w, h = im.size
        if name == "W1":
            im = im.crop((0, 0, w, h - 100))
            ImageDraw.Draw(im).rectangle([0, h - 200, 199, h - 101], fill=(0, 0, 0))
            written.append(_out_name(dst_dir, src, "jpeg"))
            im.save(written[-1], "JPEG", quality=75)
        elif name == "W2":
            im = im.resize((round(w * 0.25), round(h * 0.25)))
            written.append(_out_name(dst_dir, src, "jpeg"))
            im.save(written[-1], "JPEG", quality=80)
        elif name == "W3":
            g = im.convert("L")
            # OpenCV's adaptive Gaussian threshold, block 11, C 2: a Gaussian of sigma 2 around each pixel.
            mean = np.asarray(g.filter(ImageFilter.GaussianBlur(2)), dtype=np.int16)
            out = (np.asarray(g, dtype=np.int16) > mean - 2).astype(np.uint8) * 255
            written.append(_out_name(dst_dir, src, "png"))
            Image.fromarray(out, "L").save(written[-1], "PNG", compress_level=3)
        elif name == "W4":
            im.load()
            for i, (r, c) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
                box = (c * w // 2, r * h // 2, (c + 1) * w // 2, (r + 1) * h // 2)
                tile = im.crop(box)
                tile = tile.resize((2 * tile.width, 2 * tile.height), Image.Resampling.BILINEAR)
                written.append(_out_name(dst_dir, src, "jpeg", f"_{i}"))
                tile.save(written[-1], "JPEG", quality=90)
        elif name == "W5":
            written.append(_out_name(dst_dir, src, "jpeg"))
            im.save(written[-1], "JPEG", quality=30, optimize=True)
        elif name == "W6":
            im = im.convert("RGB")
            gray = cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2GRAY)
            for (x, y, bw, bh) in _cascade().detectMultiScale(gray, 1.1, 5, minSize=(30, 30)):
                x, y, bw, bh = int(x), int(y), int(bw), int(bh)
                region = im.crop((x, y, x + bw, y + bh)).filter(ImageFilter.GaussianBlur(max(2, min(bw, bh) // 8)))
                im.paste(region, (x, y))
            written.append(_out_name(dst_dir, src, "jpeg"))
            im.save(written[-1], "JPEG", quality=90)
        else:  # pragma: no cover
            raise ValueError(name)
    return sum(os.path.getsize(p) for p in written)


_CASCADE = None


def _cascade():
    global _CASCADE
    if _CASCADE is None:
        _CASCADE = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    return _CASCADE


def _pil_job(args):
    return pil_workload(*args)


def naive(mode: str, wl: str, src: str, dst: str) -> dict:
    files = image_files(src)
    in_bytes = sum(os.path.getsize(f) for f in files)
    t = time.perf_counter()
    if mode == "seq":
        out_bytes = sum(pil_workload(wl, f, dst) for f in files)
    else:
        import multiprocessing

        with multiprocessing.Pool(CORES) as pool:
            out_bytes = sum(pool.map(_pil_job, [(wl, f, dst) for f in files], chunksize=1))
    elapsed = time.perf_counter() - t
    return {"elapsed": elapsed, "images": len(files), "in_bytes": in_bytes, "out_bytes": out_bytes}


# ---------------------------------------------------------------------------------------------
# (e), (f): the codec floor with OpenCV
# ---------------------------------------------------------------------------------------------

def w1_pixels(img: np.ndarray) -> list[np.ndarray]:
    """crop=bottom:100, redact=0,-100,200,100 (black)."""
    out = img[:img.shape[0] - 100].copy()
    out[out.shape[0] - 100:, :200] = 0
    return [out]


def w2_pixels(img: np.ndarray) -> list[np.ndarray]:
    """resize=0.25 of a 2048x1536 image: 512x384, which a 1/4 decode gives already."""
    if img.shape[:2] != (384, 512):
        img = cv2.resize(img, (512, 384), interpolation=cv2.INTER_AREA)
    return [img]


def w3_pixels(gray: np.ndarray) -> list[np.ndarray]:
    """grayscale, threshold=adaptive_gaussian (block 11, C 2)."""
    return [cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, 11, 2)]


def w4_pixels(img: np.ndarray) -> list[np.ndarray]:
    """splitQuadrants=True, resize=2: four tiles, each twice its size."""
    h, w = img.shape[:2]
    tiles = [img[r * h // 2:(r + 1) * h // 2, c * w // 2:(c + 1) * w // 2] for r in (0, 1) for c in (0, 1)]
    return [cv2.resize(t, (2 * t.shape[1], 2 * t.shape[0]), interpolation=cv2.INTER_LINEAR) for t in tiles]


def w6_pixels(img: np.ndarray) -> list[np.ndarray]:
    """faces=blur: the Haar cascade on a copy of about one megapixel, each face box blurred."""
    h, w = img.shape[:2]
    f = min(1.0, math.sqrt(1_000_000 / (w * h)))
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    gray = cv2.equalizeHist(cv2.resize(gray, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA))
    out = img.copy()
    side = max(1, round(30 * f))
    for (x, y, bw, bh) in _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side)):
        x0, y0 = math.floor(x / f), math.floor(y / f)
        x1, y1 = min(w, math.ceil((x + bw) / f)), min(h, math.ceil((y + bh) / f))
        k = max(3, (min(x1 - x0, y1 - y0) // 4) | 1)
        out[y0:y1, x0:x1] = cv2.GaussianBlur(out[y0:y1, x0:x1], (k, k), 0, borderType=cv2.BORDER_REPLICATE)
    return [out]


def _jpeg(quality: int, optimize: bool = False) -> list[int]:
    return [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, int(optimize),
            cv2.IMWRITE_JPEG_PROGRESSIVE, 0]


@dataclass(frozen=True)
class Floor:
    """A workload as the floor pays for it: the decode imgsrv plans (flag, reduce factor), the
    output's pixels (not timed), its encoder."""

    decode: int
    reduce: int
    pixels: object  # image -> list of output images
    ext: str
    params: list[int]


FLOORS = {
    "W1": Floor(cv2.IMREAD_COLOR, 1, w1_pixels, ".jpg", _jpeg(75)),
    "W2": Floor(cv2.IMREAD_REDUCED_COLOR_4, 4, w2_pixels, ".jpg", _jpeg(80)),
    "W3": Floor(cv2.IMREAD_GRAYSCALE, 1, w3_pixels, ".png", [cv2.IMWRITE_PNG_COMPRESSION, 3]),
    "W4": Floor(cv2.IMREAD_COLOR, 1, w4_pixels, ".jpg", _jpeg(90)),
    "W5": Floor(cv2.IMREAD_COLOR, 1, lambda img: [img], ".jpg", _jpeg(30, optimize=True)),
    "W6": Floor(cv2.IMREAD_COLOR, 1, w6_pixels, ".jpg", _jpeg(90)),
}
PLANES_WORKLOADS = {"W1"}  # JPEG to JPEG crops and fills: imgsrv runs them on the YCbCr planes


def _best(fn, repeat: int = 3, slow: float = 0.08):
    """Best time of ``repeat`` calls (2 when one call takes over ``slow`` seconds) and the result."""
    best, result = float("inf"), None
    for i in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
        if i == 0 and best > slow:
            repeat = min(repeat, 2)
    return best, result


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def floor_times(wl: str, files: list[str]) -> dict:
    """For each image, the best of 3 decodes and the best of 3 encodes of its output(s), in seconds."""
    cv2.setNumThreads(1)
    fl = FLOORS[wl]
    dec, encs, in_bytes, out_bytes = [], [], 0, 0
    for f in files:
        data = _read(f)
        in_bytes += len(data)
        buf = np.frombuffer(data, np.uint8)
        t, img = _best(lambda: cv2.imdecode(buf, fl.decode))
        dec.append(t)
        t_enc = 0.0
        for out in fl.pixels(img):
            t, (_ok, blob) = _best(lambda: cv2.imencode(fl.ext, out, fl.params))
            t_enc += t
            out_bytes += len(blob)
        encs.append(t_enc)
    return {"dec": dec, "enc": encs, "in_bytes": in_bytes, "out_bytes": out_bytes}


def reduced_decode(files: list[str]) -> dict:
    """W2: cv2.imdecode at full size and reduced, and the whole pipeline (decode, resize to 512x384
    with INTER_AREA, encode q80) from a full and from a 1/4 decode: times, sizes, PSNR."""
    variants = {"full": cv2.IMREAD_COLOR, "reduced_2": cv2.IMREAD_REDUCED_COLOR_2,
                "reduced_4": cv2.IMREAD_REDUCED_COLOR_4, "reduced_8": cv2.IMREAD_REDUCED_COLOR_8,
                "grayscale": cv2.IMREAD_GRAYSCALE}
    var_ms: dict[str, list[float]] = {k: [] for k in variants}
    full_ms, reduced_ms, same, psnr, shape = [], [], [], [], None
    for f in files:
        buf = np.frombuffer(_read(f), np.uint8)
        for k, v in variants.items():
            var_ms[k].append(_best(lambda: cv2.imdecode(buf, v), 2)[0] * 1000)

        def path(flag):
            (out,) = w2_pixels(cv2.imdecode(buf, flag))
            return out, cv2.imencode(".jpg", out, _jpeg(80))[1]

        tf, (out_f, _bf) = _best(lambda: path(cv2.IMREAD_COLOR), 2)
        tr, (out_r, _br) = _best(lambda: path(cv2.IMREAD_REDUCED_COLOR_4), 2)
        full_ms.append(tf * 1000)
        reduced_ms.append(tr * 1000)
        same.append(out_f.shape == out_r.shape)
        psnr.append(float(cv2.PSNR(out_f, out_r)) if out_f.shape == out_r.shape else 0.0)
        shape = shape or [out_f.shape[1], out_f.shape[0], out_r.shape[1], out_r.shape[0]]
    return {"decode_variants_ms": {k: statistics.mean(v) for k, v in var_ms.items()},
            "w2": {"full_ms": statistics.mean(full_ms), "reduced_ms": statistics.mean(reduced_ms),
                   "all_same_size": all(same), "psnr_min": min(psnr), "psnr_mean": statistics.mean(psnr),
                   "shape": shape}}


def floor(wl: str, src: str) -> dict:
    """Best single-threaded decode and encode per image / cores; W2's reduced decode; the planes' codec cost."""
    files = image_files(src)
    ft = floor_times(wl, files)
    dec, encs = ft["dec"], ft["enc"]
    extra: dict = {"reduce": FLOORS[wl].reduce}
    if wl == "W2":  # the comparison, on the first 16 images
        extra.update(reduced_decode(files[:16]))
    if wl in PLANES_WORKLOADS:
        extra.update(planes_codec(files))
    per_image = statistics.mean(dec) + statistics.mean(encs)
    return {"elapsed": per_image * len(files) / CORES, "images": len(files), "in_bytes": ft["in_bytes"],
            "out_bytes": ft["out_bytes"], "decode_ms": statistics.mean(dec) * 1000,
            "encode_ms": statistics.mean(encs) * 1000, **extra}


def _warm_codec(_i: int) -> None:
    cv2.setNumThreads(1)


def parallel_floor(wl: str, src: str) -> dict:
    """The floor's measurement run on every core at once: each of CORES processes takes every
    CORES-th image. images / the busiest process's sum of best times is what the codecs can do
    on this machine with all cores busy (the floor assumes they scale perfectly)."""
    import multiprocessing

    files = image_files(src)
    parts = [files[k::CORES] for k in range(CORES)]
    with multiprocessing.get_context("forkserver").Pool(CORES) as pool:
        pool.map(_warm_codec, range(CORES))  # processes up, OpenCV loaded, before anything is timed
        results = pool.starmap(floor_times, [(wl, part) for part in parts])
    busiest = max(sum(r["dec"]) + sum(r["enc"]) for r in results)
    dec = [t for r in results for t in r["dec"]]
    enc = [t for r in results for t in r["enc"]]
    return {"elapsed": busiest, "images": len(files), "in_bytes": sum(r["in_bytes"] for r in results),
            "out_bytes": sum(r["out_bytes"] for r in results), "decode_ms": statistics.mean(dec) * 1000,
            "encode_ms": statistics.mean(enc) * 1000}


# ---------------------------------------------------------------------------------------------
# libturbojpeg's YCbCr planes: the codec cost of a JPEG crop and fill that never leaves YCbCr
# ---------------------------------------------------------------------------------------------

class TurboPlanes:
    """Decode a 4:2:0 JPEG to its Y, Cb, Cr planes and encode planes, with libturbojpeg (2.0+)
    through ctypes: the library imgsrv's planes path uses (app/imaging/planar.py)."""

    ACCURATE_DCT = 4096

    def __init__(self):
        path = ctypes.util.find_library("turbojpeg") or "libturbojpeg.so.0"
        lib = ctypes.CDLL(path)
        vp, ip, ul = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.c_ulong

        def fn(name, restype, *argtypes):
            f = getattr(lib, name)
            f.restype, f.argtypes = restype, list(argtypes)
            return f

        self.header = fn("tjDecompressHeader3", ctypes.c_int, vp, ctypes.c_char_p, ul, ip, ip, ip, ip)
        self.to_planes = fn("tjDecompressToYUVPlanes", ctypes.c_int, vp, ctypes.c_char_p, ul, ctypes.POINTER(vp),
                            ctypes.c_int, ip, ctypes.c_int, ctypes.c_int)
        self.from_planes = fn("tjCompressFromYUVPlanes", ctypes.c_int, vp, ctypes.POINTER(vp), ctypes.c_int, ip,
                              ctypes.c_int, ctypes.c_int, ctypes.POINTER(vp), ctypes.POINTER(ul), ctypes.c_int,
                              ctypes.c_int)
        self.free = fn("tjFree", None, vp)
        self.dec = fn("tjInitDecompress", vp)()
        self.enc = fn("tjInitCompress", vp)()

    def decode(self, data: bytes) -> list[np.ndarray]:
        w, h, sub, cs = (ctypes.c_int() for _ in range(4))
        if self.header(self.dec, data, len(data), *map(ctypes.byref, (w, h, sub, cs))) or sub.value != 2:
            raise ValueError("not a 4:2:0 JPEG")
        cw, ch = (w.value + 1) // 2, (h.value + 1) // 2
        planes = [np.empty((2 * ch, 2 * cw), np.uint8), np.empty((ch, cw), np.uint8), np.empty((ch, cw), np.uint8)]
        ptrs = (ctypes.c_void_p * 3)(*(p.ctypes.data for p in planes))
        strides = (ctypes.c_int * 3)(*(p.shape[1] for p in planes))
        if self.to_planes(self.dec, data, len(data), ptrs, w.value, strides, h.value, 0):
            raise ValueError("libturbojpeg could not decode")
        planes[0] = planes[0][:h.value, :w.value]
        return planes

    def encode(self, planes: list[np.ndarray], quality: int) -> bytes:
        y = planes[0]
        ptrs = (ctypes.c_void_p * 3)(*(p.ctypes.data for p in planes))
        strides = (ctypes.c_int * 3)(*(p.strides[0] for p in planes))
        dest, size = ctypes.c_void_p(), ctypes.c_ulong(0)
        try:
            if self.from_planes(self.enc, ptrs, y.shape[1], strides, y.shape[0], 2, ctypes.byref(dest),
                                ctypes.byref(size), quality, self.ACCURATE_DCT):
                raise ValueError("libturbojpeg could not encode")
            return ctypes.string_at(dest.value, size.value)
        finally:
            if dest.value:
                self.free(dest)


def w1_planes(planes: list[np.ndarray]) -> list[np.ndarray]:
    """W1 on the planes (even sizes): crop the bottom 100 rows, fill the 200x100 box black (Y 0, Cb Cr 128)."""
    y, cb, cr = (p.copy() for p in planes)
    y, cb, cr = y[:y.shape[0] - 100], cb[:cb.shape[0] - 50], cr[:cr.shape[0] - 50]
    y[y.shape[0] - 100:, :200] = 0
    cb[cb.shape[0] - 50:, :100] = 128
    cr[cr.shape[0] - 50:, :100] = 128
    return [y, cb, cr]


def planes_codec(files: list[str]) -> dict:
    """Best decode to planes and best encode from them per image, as the floor measures the
    codecs (the data set's JPEGs are all 4:2:0 with even sizes); {} without libturbojpeg."""
    try:
        tj = TurboPlanes()
    except (OSError, AttributeError):
        return {}
    dec, enc = [], []
    for f in files:
        data = _read(f)
        t, planes = _best(lambda: tj.decode(data))
        dec.append(t)
        out = w1_planes(planes)
        enc.append(_best(lambda: tj.encode(out, 75))[0])
    return {"planes_decode_ms": statistics.mean(dec) * 1000, "planes_encode_ms": statistics.mean(enc) * 1000}


def main(argv: list[str]) -> int:
    mode, wl, src, dst = argv
    if mode in ("seq", "pool"):
        res = naive(mode, wl, src, dst)
    elif mode == "floor":
        res = floor(wl, src)
    elif mode == "pfloor":
        res = parallel_floor(wl, src)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

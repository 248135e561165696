#!/usr/bin/env python3
"""Deterministic generator of camera-trap-like JPEGs for the imgsrv benchmark.

Every image is built from the project's own ``testimages/`` photographs (coffee, chelsea,
astronaut, grace_hopper): a random crop scaled to the frame, a sky gradient at the top,
a procedural ground texture (grass / gravel-like, several octaves plus vertical "blades")
blended into the lower part, exposure and white-balance jitter, sensor noise, and about
one frame in four is a grey, vignetted "night IR" frame. At the bottom a black info bar
(100 px by default) holds white text (camera id, temperatures, date/time, frame counter)
and a white vendor-logo block at the bottom left. The file carries EXIF Make, Model,
DateTime and Orientation=1. At 2048x1536 and JPEG quality 90 the files are about
0.6-1.2 MB, like real trail-camera frames.

An image is a pure function of (seed, index, size) for fixed library versions (NumPy,
OpenCV, Pillow and its libjpeg/FreeType); nothing is downloaded. Files are ``img_00000.jpg``, ...

    python benchmarks/dataset.py --out benchmarks/data/demo --count 64
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from multiprocessing import Pool

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = ("coffee.jpg", "chelsea.jpg", "astronaut.jpg", "grace_hopper.jpg")
BAR_H = 100
QUALITY = 90
GENERATOR_VERSION = 1  # bump when the images change, so cached data sets are rebuilt


def photo_paths() -> list[str]:
    paths = [os.path.join(PROJECT, "testimages", name) for name in PHOTOS]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        sys.exit(f"missing test photos: {', '.join(missing)}")
    return paths


_CACHE: dict[str, Image.Image] = {}


def _load(path: str) -> Image.Image:
    if path not in _CACHE:
        with Image.open(path) as im:
            _CACHE[path] = im.convert("RGB")
    return _CACHE[path]


def _crop_box(rng: np.random.Generator, w: int, h: int, aspect: float) -> tuple[float, float, float, float]:
    """A random box of the given aspect ratio covering 55-100 % of the photo's limiting side."""
    frac = rng.uniform(0.55, 1.0)
    cw, ch = w * frac, w * frac / aspect
    if ch > h * frac:
        ch = h * frac
        cw = ch * aspect
    x0, y0 = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
    return (x0, y0, x0 + cw, y0 + ch)


def _upscaled_noise(rng: np.random.Generator, gh: int, gw: int, H: int, W: int) -> np.ndarray:
    """Smooth noise: a gh x gw grid of normal values resized (bicubic) to H x W."""
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (W, H), interpolation=cv2.INTER_CUBIC)


def ground_texture(rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """Zero-mean procedural ground (grass / gravel): octaves of smooth noise plus vertical blades."""
    tex = np.zeros((H, W), np.float32)
    for cell, weight in ((256, 0.9), (96, 0.8), (32, 0.8), (12, 0.9), (5, 1.0), (2, 0.8)):
        tex += weight * _upscaled_noise(rng, max(2, H // cell), max(2, W // cell), H, W)
    # Blades of grass: noise stretched vertically (tall, thin structures).
    blade_h = int(rng.integers(10, 24))
    tex += 1.3 * _upscaled_noise(rng, max(2, H // blade_h), max(2, W // 2), H, W)
    tex -= tex.mean()
    tex *= rng.uniform(18.0, 28.0) / max(float(tex.std()), 1e-6)
    return tex


def _photo(rng: np.random.Generator, W: int, H: int, photos: list[str]) -> tuple[Image.Image, bool]:
    src = _load(photos[int(rng.integers(len(photos)))])
    im = src.resize((W, H), Image.Resampling.BICUBIC, box=_crop_box(rng, *src.size, W / H))
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    a = np.array(im, dtype=np.float32)

    rows = np.arange(H, dtype=np.float32)[:, None]
    # Sky: the top of the frame drifts towards a pale blue-grey gradient.
    horizon = rng.uniform(0.3, 0.6) * H
    top = int(np.ceil(horizon))
    sky_w = (np.clip((horizon - rows[:top]) / horizon, 0, 1) * rng.uniform(0.3, 0.6))[:, :, None]
    sky = np.array([215.0, 200.0, 170.0], np.float32)[None, None, ::-1] * (1 - 0.25 * rows[:top] / H)[:, :, None]
    a[:top] *= 1 - sky_w
    a[:top] += sky * sky_w

    # Ground: texture blended in below the horizon, tinted like grass or dry soil.
    tex = ground_texture(rng, H, W)
    low = int(horizon)
    ramp = np.clip((rows[low:] - horizon) / (0.25 * H), 0, 1)
    strength = rng.uniform(0.8, 1.3)
    tint = (np.array([0.8, 1.0, 0.6], np.float32) if rng.random() < 0.6
            else np.array([1.0, 0.9, 0.75], np.float32))
    a[low:] += (strength * ramp * tex[low:])[:, :, None] * tint

    # Exposure and white balance.
    a *= rng.uniform(0.8, 1.15)
    a += rng.uniform(-12, 12, size=3).astype(np.float32)

    night = bool(rng.random() < 0.25)
    if night:  # grey IR frame, vignetted, noisier
        g = a @ np.array([0.299, 0.587, 0.114], np.float32)
        yy, xx = np.ogrid[0:H, 0:W]
        r2 = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2
        g = g * (1.0 - 0.45 * np.clip(r2, 0, 1.6)).astype(np.float32) * rng.uniform(0.7, 1.0)
        a = np.repeat(g[:, :, None], 3, axis=2)
        sigma_l, sigma_c = rng.uniform(4.5, 6.5), 0.0
    else:
        sigma_l, sigma_c = rng.uniform(2.8, 4.2), rng.uniform(1.0, 1.8)
    noise = rng.standard_normal((H, W), dtype=np.float32)
    noise *= sigma_l
    noise += 0.5  # rounding for the uint8 conversion below
    a += noise[:, :, None]
    if sigma_c > 0:
        chroma = rng.standard_normal((H, W, 3), dtype=np.float32)
        chroma *= sigma_c
        a += chroma
    np.clip(a, 0, 255, out=a)
    return Image.fromarray(a.astype(np.uint8), "RGB"), night


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except TypeError:  # pragma: no cover - old Pillow
        return ImageFont.load_default()


def _info_bar(rng: np.random.Generator, im: Image.Image, idx: int, night: bool, bar_h: int):
    W, H = im.size
    d = ImageDraw.Draw(im)
    y0 = H - bar_h
    d.rectangle([0, y0, W - 1, H - 1], fill=(0, 0, 0))
    # White vendor-logo block at the bottom left (inside the 200x100 box the seed pipeline redacts).
    lw, lh = int(bar_h * 1.8), int(bar_h * 0.72)
    lx, ly = int(bar_h * 0.1), y0 + (bar_h - lh) // 2
    d.rounded_rectangle([lx, ly, lx + lw, ly + lh], radius=lh // 5, fill=(255, 255, 255))
    d.polygon([(lx + lh * 0.15, ly + lh * 0.8), (lx + lh * 0.45, ly + lh * 0.2), (lx + lh * 0.75, ly + lh * 0.8)],
              fill=(20, 110, 40))
    d.text((lx + lh * 0.85, ly + lh * 0.5), "TRAIL", font=_font(int(lh * 0.38)), fill=(0, 0, 0), anchor="lm")
    t0 = _dt.datetime(2017, 1, 1) + _dt.timedelta(seconds=int(rng.integers(0, 365 * 86400)))
    if night and 7 <= t0.hour < 19:
        t0 = t0.replace(hour=(t0.hour + 12) % 24)
    temp_c = int(rng.integers(-2, 31))
    text = (f"W{int(rng.integers(1, 60)):03d}   {temp_c:3d}\N{DEGREE SIGN}C {int(temp_c * 9 / 5 + 32):3d}"
            f"\N{DEGREE SIGN}F   {t0:%d/%m/%Y %H:%M:%S}   {int(rng.integers(1, 4))}/3   #{idx:05d}")
    d.text((lx + lw + bar_h * 0.4, y0 + bar_h / 2), text, font=_font(int(bar_h * 0.38)),
           fill=(255, 255, 255), anchor="lm")
    return t0


def make_image(seed: int, index: int, size: tuple[int, int] = (2048, 1536), bar_h: int = BAR_H):
    """The image number ``index`` of data set ``seed``: (PIL image, EXIF bytes, is-night)."""
    W, H = size
    rng = np.random.default_rng([seed, index, W, H])
    photo, night = _photo(rng, W, H - bar_h, photo_paths())
    im = Image.new("RGB", (W, H), (0, 0, 0))
    im.paste(photo, (0, 0))
    t0 = _info_bar(rng, im, index, night, bar_h)
    exif = Image.Exif()
    exif[0x010F] = "TrailScout"  # Make
    exif[0x0110] = "TS-2000 HD"  # Model
    exif[0x0112] = 1  # Orientation
    exif[0x0132] = f"{t0:%Y:%m:%d %H:%M:%S}"  # DateTime
    return im, exif.tobytes(), night


def _write(args) -> tuple[str, int, bool]:
    seed, index, size, out = args
    path = os.path.join(out, f"img_{index:05d}.jpg")
    im, exif, night = make_image(seed, index, size)
    tmp = path + ".tmp"
    im.save(tmp, "JPEG", quality=QUALITY, exif=exif)
    os.replace(tmp, path)
    return path, os.path.getsize(path), night


def generate(out: str, count: int, seed: int = 0, size: tuple[int, int] = (2048, 1536),
             jobs: int | None = None, quiet: bool = False) -> list[str]:
    """Make sure images 0..count-1 are in ``out`` (files already there are kept); returns the paths.

    Files are written under a temporary name and renamed, so an interrupted run leaves no
    half file behind and a later run only makes the missing ones.
    """
    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, f"img_{i:05d}.jpg") for i in range(count)]
    work = [(seed, i, size, out) for i in range(count) if not os.path.exists(paths[i])]
    jobs = jobs or os.cpu_count() or 1
    if jobs > 1 and len(work) > 1:
        with Pool(min(jobs, len(work))) as pool:
            res = pool.map(_write, work, chunksize=1)
    else:
        res = [_write(w) for w in work]
    if not quiet and res:
        mb = np.array([r[1] for r in res]) / 1e6
        print(f"wrote {len(res)} files to {out}: MB min {mb.min():.2f} median {np.median(mb):.2f} "
              f"max {mb.max():.2f} mean {mb.mean():.2f}; night frames {sum(r[2] for r in res)}")
    elif not quiet:
        print(f"all {count} files already in {out}")
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder to write into")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", default="2048x1536", help="WxH")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="generator processes")
    a = ap.parse_args(argv)
    w, h = (int(v) for v in a.size.lower().split("x"))
    generate(a.out, a.count, a.seed, (w, h), a.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

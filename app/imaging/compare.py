"""Image difference with ImageMagick ``compare -fuzz`` semantics.

Two pixels differ when the Euclidean distance of their colours is above ``fuzz`` percent
of 255 (ImageMagick compares the squared channel differences, summed, with the squared
fuzz). Images are compared as BGR: gray is expanded and alpha flattened onto white.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .codec import flatten_alpha


@dataclass
class Difference:
    width: int
    height: int
    different_pixels: int
    different_fraction: float
    mean_abs_diff: float  # mean over pixels and channels of |a - b|, 0..255


def as_bgr(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return flatten_alpha(img)


STRIP = 256  # rows compared at a time: the wide intermediates stay small whatever the image's size


def compare(a: np.ndarray, b: np.ndarray, fuzz: float = 0.0) -> tuple[Difference, np.ndarray]:
    """Statistics of the difference and the mask of changed pixels; ``a`` and ``b`` have the same size.
    Worked strip by strip, so it needs about one byte per pixel beyond the two images."""
    h, w = a.shape[:2]
    limit = fuzz / 100.0 * 255.0
    mask = np.empty((h, w), dtype=bool)
    total = 0
    for y in range(0, h, STRIP):
        d = cv2.absdiff(as_bgr(a[y:y + STRIP]), as_bgr(b[y:y + STRIP]))
        total += int(d.sum(dtype=np.uint64))
        d32 = d.astype(np.int32)
        mask[y:y + STRIP] = (d32 * d32).sum(axis=2) > limit * limit
    n = int(mask.sum())
    return Difference(w, h, n, n / (w * h), round(total / (h * w * 3), 4)), mask


def highlight(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The diff image: a faded grey copy of ``a`` with the changed pixels in red (like ImageMagick)."""
    h, w = a.shape[:2]
    out = np.empty((h, w, 3), dtype=np.uint8)
    for y in range(0, h, STRIP):
        gray = cv2.cvtColor(as_bgr(a[y:y + STRIP]), cv2.COLOR_BGR2GRAY)
        faded = (gray.astype(np.float32) * 0.3 + 255 * 0.7).astype(np.uint8)
        strip = cv2.cvtColor(faded, cv2.COLOR_GRAY2BGR)
        strip[mask[y:y + STRIP]] = (0, 0, 255)
        out[y:y + STRIP] = strip
    return out

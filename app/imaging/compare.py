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


def difference_mask(a: np.ndarray, b: np.ndarray, fuzz: float) -> np.ndarray:
    """Boolean mask of the pixels that differ by more than ``fuzz`` percent."""
    d = cv2.absdiff(as_bgr(a), as_bgr(b)).astype(np.int32)
    dist2 = (d * d).sum(axis=2)
    limit = fuzz / 100.0 * 255.0
    return dist2 > limit * limit


def compare(a: np.ndarray, b: np.ndarray, fuzz: float = 0.0) -> tuple[Difference, np.ndarray]:
    """Statistics of the difference and the mask of changed pixels; ``a`` and ``b`` have the same size."""
    mask = difference_mask(a, b, fuzz)
    h, w = mask.shape
    n = int(mask.sum())
    mad = float(cv2.absdiff(as_bgr(a), as_bgr(b)).mean())
    return Difference(w, h, n, n / (w * h), round(mad, 4)), mask


def highlight(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The diff image: a faded grey copy of ``a`` with the changed pixels in red (like ImageMagick)."""
    gray = cv2.cvtColor(as_bgr(a), cv2.COLOR_BGR2GRAY)
    faded = (gray.astype(np.float32) * 0.3 + 255 * 0.7).astype(np.uint8)
    out = cv2.cvtColor(faded, cv2.COLOR_GRAY2BGR)
    out[mask] = (0, 0, 255)
    return out

"""Hide a rectangular region: fill it, blur it beyond recognition, or pixelate it."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .geometry import Box


def pixel_color(img: np.ndarray, bgr: Sequence[int]) -> tuple[int, ...] | int:
    """A ``[b, g, r]`` colour in the image's own layout (gray: luminance; BGRA: opaque)."""
    b, g, r = bgr
    if img.ndim == 2:
        return int(round(0.114 * b + 0.587 * g + 0.299 * r))
    if img.shape[2] == 4:
        return (b, g, r, 255)
    return (b, g, r)


def redact(img: np.ndarray, box: Box, mode: str = "fill", color: Sequence[int] = (0, 0, 0),
           inplace: bool = False) -> np.ndarray:
    """The image with the (clipped) box hidden: a copy, or ``img`` itself changed when ``inplace``."""
    out = img if inplace else img.copy()
    x, y, w, h = box
    region = out[y:y + h, x:x + w]
    if mode == "fill":
        region[...] = pixel_color(img, color)
    elif mode == "blur":
        # A kernel about a quarter of the box's short side leaves nothing recognisable.
        k = max(3, (min(w, h) // 4) | 1)
        region[...] = cv2.GaussianBlur(region, (k, k), 0, borderType=cv2.BORDER_REPLICATE)
    elif mode == "pixelate":
        block = max(2, round(min(w, h) / 10))
        small = cv2.resize(region, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
        region[...] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    else:  # pragma: no cover - the operation model only lets the three modes through
        raise ValueError(f"unknown redact mode {mode!r}")
    return out


def outline(img: np.ndarray, box: Box, color: Sequence[int] = (0, 255, 0)) -> np.ndarray:
    """A copy of the image with a rectangle drawn around the box."""
    out = img.copy()
    x, y, w, h = box
    thickness = max(2, round(max(img.shape[:2]) / 300))
    inset = thickness // 2  # the line is drawn centred on the rectangle: keep it inside the box
    x0, y0 = x + inset, y + inset
    x1, y1 = max(x0, x + w - 1 - inset), max(y0, y + h - 1 - inset)
    cv2.rectangle(out, (x0, y0), (x1, y1), pixel_color(img, color), thickness)
    return out

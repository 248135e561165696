"""Resize, crop, split, rotate and flip."""
from __future__ import annotations

import math

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, width, height


def target_size(w: int, h: int, scale: float | None, width: int | None, height: int | None,
                fit: str = "contain") -> tuple[int, int]:
    """Output ``(width, height)`` of a resize, without touching pixels.

    ``scale`` alone multiplies both sides; ``width`` or ``height`` alone keeps the aspect
    ratio; both together are a box that the image is fitted into (``contain``), covers
    (``cover``: the result is exactly the box, centre-cropped) or is stretched to.
    """
    if scale is not None:
        return max(1, round(w * scale)), max(1, round(h * scale))
    if width is not None and height is not None:
        if fit == "stretch" or fit == "cover":
            return width, height
        f = min(width / w, height / h)
        return max(1, min(width, round(w * f))), max(1, min(height, round(h * f)))
    if width is not None:
        return width, max(1, round(h * width / w))
    assert height is not None
    return max(1, round(w * height / h)), height


def resize(img: np.ndarray, width: int, height: int, fit: str = "contain") -> np.ndarray:
    """Resize to exactly ``width`` x ``height``; ``cover`` scales to cover and centre-crops."""
    h, w = img.shape[:2]
    if fit == "cover":
        f = max(width / w, height / h)
        sw, sh = max(width, round(w * f)), max(height, round(h * f))
        scaled = _resample(img, sw, sh)
        x0, y0 = (sw - width) // 2, (sh - height) // 2
        return np.ascontiguousarray(scaled[y0:y0 + height, x0:x0 + width])
    return _resample(img, width, height)


def _resample(img: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    shrinking = width * height < w * h
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def resolve_box(w: int, h: int, x: int, y: int, bw: int, bh: int) -> Box | None:
    """Clip a box to a ``w`` x ``h`` image; negative x/y count from the right/bottom edge.

    Returns None when nothing of the box lies inside the image.
    """
    if x < 0:
        x += w
    if y < 0:
        y += h
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(w, x + bw), min(h, y + bh)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def crop(img: np.ndarray, box: Box) -> np.ndarray:
    """The part of the image inside ``box`` (already clipped with resolve_box): a view, no copy."""
    x, y, w, h = box
    return img[y:y + h, x:x + w]


def tile_spans(size: int, parts: int, overlap: int) -> list[tuple[int, int]]:
    """Start/stop of ``parts`` spans covering ``size`` where neighbours share ``overlap`` pixels."""
    edges = [i * size // parts for i in range(parts + 1)]
    before, after = overlap // 2, overlap - overlap // 2
    spans = []
    for i in range(parts):
        start = edges[i] - (before if i > 0 else 0)
        stop = edges[i + 1] + (after if i < parts - 1 else 0)
        spans.append((max(0, start), min(size, stop)))
    return spans


def split(img: np.ndarray, rows: int, cols: int, overlap: int = 0) -> list[np.ndarray]:
    """Tiles in row-major order (top-left first)."""
    h, w = img.shape[:2]
    return [np.ascontiguousarray(img[y0:y1, x0:x1])
            for (y0, y1) in tile_spans(h, rows, overlap)
            for (x0, x1) in tile_spans(w, cols, overlap)]


_ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def rotate(img: np.ndarray, angle: int) -> np.ndarray:
    """Rotate clockwise by 90, 180 or 270 degrees."""
    return cv2.rotate(img, _ROTATIONS[angle])


def flip(img: np.ndarray, axis: str) -> np.ndarray:
    """Mirror left-right (``horizontal``) or top-bottom (``vertical``)."""
    return cv2.flip(img, 1 if axis == "horizontal" else 0)


# -- boxes (faces found earlier in a pipeline) follow the pixels through geometric steps ----------

def clip_boxes(boxes: list[Box], w: int, h: int, dx: int = 0, dy: int = 0) -> list[Box]:
    """Boxes moved by (-dx, -dy) and clipped to a ``w`` x ``h`` image; those left outside are dropped."""
    out = []
    for x, y, bw, bh in boxes:
        x0, y0 = max(0, x - dx), max(0, y - dy)
        x1, y1 = min(w, x - dx + bw), min(h, y - dy + bh)
        if x1 > x0 and y1 > y0:
            out.append((x0, y0, x1 - x0, y1 - y0))
    return out


def scale_boxes(boxes: list[Box], sx: float, sy: float) -> list[Box]:
    """Boxes scaled with the image; edges round outwards so a box still covers every pixel it touched."""
    out = []
    for x, y, bw, bh in boxes:
        x0, y0 = math.floor(x * sx), math.floor(y * sy)
        out.append((x0, y0, max(1, math.ceil((x + bw) * sx) - x0), max(1, math.ceil((y + bh) * sy) - y0)))
    return out


def rotate_boxes(boxes: list[Box], w: int, h: int, angle: int) -> list[Box]:
    """Boxes of a ``w`` x ``h`` image rotated clockwise by ``angle``."""
    if angle == 90:
        return [(h - (y + bh), x, bh, bw) for x, y, bw, bh in boxes]
    if angle == 180:
        return [(w - (x + bw), h - (y + bh), bw, bh) for x, y, bw, bh in boxes]
    return [(y, w - (x + bw), bh, bw) for x, y, bw, bh in boxes]


def flip_boxes(boxes: list[Box], w: int, h: int, axis: str) -> list[Box]:
    if axis == "horizontal":
        return [(w - (x + bw), y, bw, bh) for x, y, bw, bh in boxes]
    return [(x, h - (y + bh), bw, bh) for x, y, bw, bh in boxes]

"""Colour arithmetic shared by the pixel and the JPEG-plane paths."""
from __future__ import annotations


def luma(b: float, g: float, r: float) -> float:
    """ITU-R BT.601 luminance of a colour: what OpenCV's BGR2GRAY and JPEG's Y use."""
    return 0.299 * r + 0.587 * g + 0.114 * b

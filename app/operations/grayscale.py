"""grayscale: shades of grey."""
from __future__ import annotations

from typing import Literal

import numpy as np

from ..imaging import filters as f
from .base import Context, Decode, Operation

GRAY_DECODE = Decode(gray=True)


class Grayscale(Operation):
    """Convert to shades of grey (an alpha channel is kept)."""

    op: Literal["grayscale"] = "grayscale"

    examples = ("grayscale",)

    def decode(self, width: int, height: int) -> Decode:
        return GRAY_DECODE  # libjpeg skips the colour conversion

    def transform(self, image: np.ndarray, ctx: Context) -> np.ndarray:
        return f.grayscale(image)

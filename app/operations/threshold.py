"""threshold: black and white from the luminance."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from ..imaging import filters as f
from .base import Context, Decode, Operation, scalar
from .grayscale import GRAY_DECODE


class Threshold(Operation):
    """Black and white from the image's luminance.

    ``binary`` (pixels above ``value`` turn white), ``binary_inv``, ``otsu`` (value chosen
    from the histogram), ``adaptive_mean`` and ``adaptive_gaussian`` (per neighbourhood of
    ``block_size`` pixels, minus ``c``).
    """

    op: Literal["threshold"] = "threshold"
    method: Literal["binary", "binary_inv", "otsu", "adaptive_mean", "adaptive_gaussian"] = "binary"
    value: int = Field(127, ge=0, le=255, description="cut-off for binary and binary_inv")
    block_size: int = Field(11, ge=3, le=255, description="odd neighbourhood size for the adaptive methods")
    c: float = Field(2.0, ge=-255, le=255, description="subtracted from the neighbourhood mean (adaptive)")

    examples = ("threshold=127", "threshold=otsu", "threshold=adaptive_gaussian")

    @field_validator("block_size")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("block_size must be odd")
        return v

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        value = scalar(text)
        return {"value": value} if isinstance(value, (int, float)) else {"method": text}

    def work(self, width: int, height: int) -> float:
        return float(width * height * (4 if self.method.startswith("adaptive") else 1))

    def decode(self, width: int, height: int) -> Decode:
        return GRAY_DECODE  # it works on the luminance anyway

    def transform(self, image: np.ndarray, ctx: Context) -> np.ndarray:
        return f.threshold(image, self.method, self.value, self.block_size, self.c)

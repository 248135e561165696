"""blur, grayscale, threshold."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from ..imaging import filters as f
from .base import Context, Operation, scalar


class Blur(Operation):
    """Gaussian blur: ``blur=5`` uses a 5x5 kernel; ``kernel`` 0 derives it from ``sigma``."""

    op: Literal["blur"] = "blur"
    kernel: int = Field(5, ge=0, le=255, description="odd kernel size, or 0 to derive it from sigma")
    sigma: float = Field(0.0, ge=0, le=100, description="standard deviation; 0 derives it from the kernel")

    examples = ("blur=5", "blur=kernel:0,sigma:3")

    @field_validator("kernel")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v != 0 and v % 2 == 0:
            raise ValueError("kernel must be odd (or 0 to derive it from sigma)")
        return v

    @model_validator(mode="after")
    def _kernel_or_sigma(self) -> "Blur":
        if self.kernel == 0 and self.sigma == 0:
            raise ValueError("kernel 0 needs a sigma above 0")
        return self

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        return {"kernel": scalar(text)}

    def transform(self, image: np.ndarray, ctx: Context) -> np.ndarray:
        return f.blur(image, self.kernel, self.sigma)


class Grayscale(Operation):
    """Convert to shades of grey (an alpha channel is kept)."""

    op: Literal["grayscale"] = "grayscale"

    examples = ("grayscale",)

    def transform(self, image: np.ndarray, ctx: Context) -> np.ndarray:
        return f.grayscale(image)


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

    def transform(self, image: np.ndarray, ctx: Context) -> np.ndarray:
        return f.threshold(image, self.method, self.value, self.block_size, self.c)

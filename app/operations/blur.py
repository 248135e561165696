"""blur: Gaussian blur."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from ..imaging import filters as f
from .base import Context, Operation, scalar

#: the sigma of ``blur=0`` (kernel 0 and no sigma): the original py-image-server's requests send it
DEFAULT_SIGMA = 1.0


def kernel_size(kernel: int, sigma: float) -> int:
    """The side of a Gaussian kernel: ``kernel``, or OpenCV's choice for ``sigma`` on 8-bit images."""
    return kernel or (round(sigma * 6 + 1) | 1)


class Blur(Operation):
    """Gaussian blur: ``blur=5`` uses a 5x5 kernel; ``kernel`` 0 derives it from ``sigma``.

    ``blur=0`` (kernel 0 without a sigma) blurs with sigma 1.0, a 7x7 kernel.
    """

    op: Literal["blur"] = "blur"
    kernel: int = Field(5, ge=0, le=255, description="odd kernel size, or 0 to derive it from sigma")
    sigma: float = Field(0.0, ge=0, le=100, description=f"standard deviation; 0 derives it from the kernel "
                                                        f"(with kernel 0: {DEFAULT_SIGMA})")

    examples = ("blur=5", "blur=0", "blur=kernel:0,sigma:3")

    @field_validator("kernel")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v != 0 and v % 2 == 0:
            raise ValueError("kernel must be odd (or 0 to derive it from sigma)")
        return v

    @model_validator(mode="after")
    def _default_sigma(self) -> "Blur":
        if self.kernel == 0 and self.sigma == 0:
            self.sigma = DEFAULT_SIGMA
        return self

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        return {"kernel": scalar(text)}

    def work(self, width: int, height: int) -> float:
        return float(width * height * 2 * kernel_size(self.kernel, self.sigma))  # two passes of the kernel

    def transform(self, image: np.ndarray, ctx: Context) -> np.ndarray:
        return f.blur(image, self.kernel, self.sigma)

"""sharpen: an unsharp mask."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..imaging import filters as f
from .base import Context, Operation, scalar
from .blur import kernel_size


class Sharpen(Operation):
    """Sharpen with an unsharp mask: add ``amount`` times the difference between the image and
    its Gaussian blur (``sigma``), where that difference is above ``threshold`` levels.

    ``sharpen`` uses amount 1 and sigma 1; ``sharpen=1.5`` sets the amount.
    """

    op: Literal["sharpen"] = "sharpen"
    amount: float = Field(1.0, gt=0, le=10, description="strength: 1 adds the whole difference once")
    sigma: float = Field(1.0, gt=0, le=100, description="radius of the blur the image is compared with")
    threshold: int = Field(0, ge=0, le=255, description="differences of at most this many levels stay as they are")

    examples = ("sharpen", "sharpen=1.5", "sharpen=amount:2,sigma:1.5,threshold:3")

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        return {"amount": scalar(text)}

    def work(self, width: int, height: int) -> float:
        return float(width * height * (2 * kernel_size(0, self.sigma) + 3))  # the blur, then the mask

    def transform(self, image: np.ndarray, ctx: Context) -> np.ndarray:
        return f.sharpen(image, self.amount, self.sigma, self.threshold)

"""flip: mirror the image."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..imaging import geometry as g
from .base import Context, Operation


class Flip(Operation):
    """Mirror the image: ``horizontal`` swaps left and right, ``vertical`` top and bottom."""

    op: Literal["flip"] = "flip"
    axis: Literal["horizontal", "vertical"]

    examples = ("flip=horizontal", "flip=vertical")

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        return {"axis": text}

    def move_boxes(self, boxes: list[g.Box], width: int, height: int) -> list[g.Box]:
        return g.flip_boxes(boxes, width, height, self.axis)

    def transform(self, image: np.ndarray, ctx: Context) -> np.ndarray:
        return g.flip(image, self.axis)

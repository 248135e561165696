"""rotate: turn the image clockwise by a quarter, a half or three quarters."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..imaging import geometry as g
from .base import Context, Operation, scalar


class Rotate(Operation):
    """Rotate clockwise by 90, 180 or 270 degrees."""

    op: Literal["rotate"] = "rotate"
    angle: Literal[90, 180, 270] = Field(description="degrees clockwise")

    examples = ("rotate=90",)

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        return {"angle": scalar(text)}

    def sizes_after(self, width: int, height: int) -> list[tuple[int, int]]:
        return [(height, width)] if self.angle in (90, 270) else [(width, height)]

    def move_boxes(self, boxes: list[g.Box], width: int, height: int) -> list[g.Box]:
        return g.rotate_boxes(boxes, width, height, self.angle)

    def transform(self, image: np.ndarray, ctx: Context) -> np.ndarray:
        return g.rotate(image, self.angle)

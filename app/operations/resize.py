"""resize: scale by a factor, or to a width and/or height."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ..errors import TooLarge
from ..imaging import geometry as g
from .base import Context, Decode, FULL_DECODE, Operation, scalar, size_pair


class Resize(Operation):
    """Scale by a factor, or to a width and/or height.

    ``resize=0.5`` halves both sides; ``resize=800x600`` fits the image into 800x600
    keeping its aspect ratio (``fit``: ``contain``, ``cover`` or ``stretch``);
    ``resize=800x`` sets the width alone.
    """

    op: Literal["resize"] = "resize"
    scale: float | None = Field(None, gt=0, le=16, description="factor for both sides")
    width: int | None = Field(None, ge=1, le=1_000_000, description="output width in pixels")
    height: int | None = Field(None, ge=1, le=1_000_000, description="output height in pixels")
    fit: Literal["contain", "cover", "stretch"] = Field(
        "contain", description="with width and height: fit inside, cover and centre-crop, or stretch")

    examples = ("resize=0.5", "resize=800x600", "resize=width:800")

    @model_validator(mode="after")
    def _one_way(self) -> "Resize":
        if self.scale is not None and (self.width is not None or self.height is not None):
            raise ValueError("give either scale or width/height, not both")
        if self.scale is None and self.width is None and self.height is None:
            raise ValueError("give scale, or width and/or height")
        return self

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        if "x" in text.lower():
            w, h = size_pair(text)
            return {k: v for k, v in (("width", w), ("height", h)) if v is not None}
        return {"scale": scalar(text)}

    def fixed_size(self) -> tuple[int, int] | None:
        if self.width and self.height and self.fit != "contain":
            return self.width, self.height
        return None

    def size_for(self, w: int, h: int) -> tuple[int, int]:
        return g.target_size(w, h, self.scale, self.width, self.height, self.fit)

    def decode(self, width: int, height: int) -> Decode:
        """A downscale decodes the JPEG at 1/2, 1/4 or 1/8 when the reduced image is still at
        least as large as the result; the resize then runs to that absolute size."""
        if self.fit == "cover":
            return FULL_DECODE
        tw, th = self.size_for(width, height)
        for factor in (8, 4, 2):
            if width // factor >= tw and height // factor >= th:
                return Decode(factor, False, Resize(width=tw, height=th, fit="stretch"))
        return FULL_DECODE

    def sizes_after(self, width: int, height: int) -> list[tuple[int, int]]:
        return [self.size_for(width, height)]

    def work(self, width: int, height: int) -> float:
        tw, th = self.size_for(width, height)
        return float(width * height + 4 * tw * th)

    def move_boxes(self, boxes: list[g.Box], width: int, height: int) -> list[g.Box]:
        tw, th = self.size_for(width, height)
        if self.fit == "cover":
            f = max(tw / width, th / height)
            dx, dy = (max(tw, round(width * f)) - tw) // 2, (max(th, round(height * f)) - th) // 2
            return g.clip_boxes(g.scale_boxes(boxes, f, f), tw, th, dx, dy)
        return g.clip_boxes(g.scale_boxes(boxes, tw / width, th / height), tw, th)

    def transform(self, image: np.ndarray, ctx: Context) -> np.ndarray:
        h, w = image.shape[:2]
        tw, th = self.size_for(w, h)
        if tw * th > ctx.max_pixels:
            raise TooLarge(f"resize would make {tw}x{th} = {tw * th} pixels, more than the limit of {ctx.max_pixels}")
        return g.resize(image, tw, th, self.fit)

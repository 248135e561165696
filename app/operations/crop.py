"""crop: keep a box, or cut margins off."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ..errors import ImageError, InvalidOperation
from ..imaging import geometry as g
from ..imaging import planar
from .base import Context, Operation, PlaneStep, ints


class Crop(Operation):
    """Keep a box, or cut margins off.

    A box is ``x``, ``y``, ``width``, ``height`` (negative ``x``/``y`` count from the
    right/bottom edge; the box is clipped to the image, and one wholly outside it is an
    error). Margins ``top``, ``bottom``, ``left``, ``right`` are cut off: ``crop=bottom:100``.
    """

    op: Literal["crop"] = "crop"
    x: int | None = Field(None, description="left edge of the box; negative counts from the right")
    y: int | None = Field(None, description="top edge of the box; negative counts from the bottom")
    width: int | None = Field(None, ge=1)
    height: int | None = Field(None, ge=1)
    top: int | None = Field(None, ge=0)
    bottom: int | None = Field(None, ge=0)
    left: int | None = Field(None, ge=0)
    right: int | None = Field(None, ge=0)

    examples = ("crop=0,0,640,480", "crop=bottom:100", "crop=x:-200,y:-200,width:200,height:200")

    @model_validator(mode="after")
    def _box_or_margins(self) -> "Crop":
        box = [self.x, self.y, self.width, self.height]
        margins = [self.top, self.bottom, self.left, self.right]
        has_box = any(v is not None for v in box)
        has_margins = any(v is not None for v in margins)
        if has_box and has_margins:
            raise ValueError("give a box (x, y, width, height) or margins (top, bottom, left, right), not both")
        if has_box:
            if self.width is None or self.height is None:
                raise ValueError("a crop box needs width and height")
            self.x = self.x or 0
            self.y = self.y or 0
        elif has_margins:
            self.top, self.bottom = self.top or 0, self.bottom or 0
            self.left, self.right = self.left or 0, self.right or 0
        else:
            raise ValueError("give a box (x, y, width, height) or margins (top, bottom, left, right)")
        return self

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        x, y, w, h = ints(text, 4, "X,Y,W,H")
        return {"x": x, "y": y, "width": w, "height": h}

    def box_for(self, w: int, h: int) -> g.Box:
        """The box to keep in a ``w`` x ``h`` image, clipped to it (InvalidOperation when nothing is left)."""
        if self.width is not None:
            box = g.resolve_box(w, h, self.x or 0, self.y or 0, self.width, self.height or 0)
            if box is None:
                raise InvalidOperation(f"the crop box {self.x},{self.y},{self.width},{self.height} "
                                       f"lies outside the {w}x{h} image")
        else:
            t, b, left, r = self.top or 0, self.bottom or 0, self.left or 0, self.right or 0
            if t + b >= h or left + r >= w:
                raise InvalidOperation(f"cutting top {t}, bottom {b}, left {left}, right {r} "
                                       f"leaves nothing of the {w}x{h} image")
            box = (left, t, w - left - r, h - t - b)
        return box

    def on_planes(self, width: int, height: int) -> tuple[PlaneStep, ...] | None:
        try:
            box = self.box_for(width, height)
        except ImageError:
            return None  # the pixel path reports it
        return (PlaneStep(self.op, box),) if planar.aligned(box, width, height) else None

    def sizes_after(self, width: int, height: int) -> list[tuple[int, int]]:
        try:
            _x, _y, w, h = self.box_for(width, height)
        except ImageError:
            return [(width, height)]
        return [(w, h)]

    def work(self, width: int, height: int) -> float:
        return 0.0  # a view

    def move_boxes(self, boxes: list[g.Box], width: int, height: int) -> list[g.Box]:
        x, y, w, h = self.box_for(width, height)
        return g.clip_boxes(boxes, w, h, x, y)

    def transform(self, image: np.ndarray, ctx: Context) -> np.ndarray:
        h, w = image.shape[:2]
        return g.crop(image, self.box_for(w, h))

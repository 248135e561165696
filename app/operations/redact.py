"""redact: hide a box."""
from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from ..imaging import geometry as g
from ..imaging import planar
from ..imaging import redact as r
from .base import Context, Operation, PlaneStep, ints

Channel = Annotated[int, Field(ge=0, le=255)]


class Redact(Operation):
    """Hide a box: ``fill`` it with ``color`` ([b, g, r], default black), ``blur`` or ``pixelate`` it.

    The box is ``x``, ``y``, ``width``, ``height`` as for crop (negative ``x``/``y`` count
    from the right/bottom edge), clipped to the image; a box wholly outside it does nothing.
    """

    op: Literal["redact"] = "redact"
    x: int = Field(0, description="left edge; negative counts from the right")
    y: int = Field(0, description="top edge; negative counts from the bottom")
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    mode: Literal["fill", "blur", "pixelate"] = "fill"
    color: tuple[Channel, Channel, Channel] = Field((0, 0, 0), description="[b, g, r] for fill, each 0..255")

    examples = ("redact=0,-100,200,100", "redact=x:10,y:10,width:50,height:50,mode:pixelate")

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        x, y, w, h = ints(text, 4, "X,Y,W,H")
        return {"x": x, "y": y, "width": w, "height": h}

    def box_for(self, w: int, h: int) -> g.Box | None:
        """The box to hide in a ``w`` x ``h`` image, clipped; None when it lies wholly outside."""
        return g.resolve_box(w, h, self.x, self.y, self.width, self.height)

    def on_planes(self, width: int, height: int) -> tuple[PlaneStep, ...] | None:
        if self.mode != "fill":
            return None
        hidden = self.box_for(width, height)
        if hidden is None:
            return ()  # wholly outside: nothing to hide
        return (PlaneStep(self.op, hidden, self.color),) if planar.aligned(hidden, width, height) else None

    def work(self, width: int, height: int) -> float:
        box = self.box_for(width, height)
        if box is None:
            return 0.0
        area = box[2] * box[3]
        if self.mode == "blur":  # a Gaussian of a quarter of the box's short side, two passes
            return float(area * 2 * max(3, (min(box[2], box[3]) // 4) | 1))
        return float(area * (2 if self.mode == "pixelate" else 1))

    def transform(self, image: np.ndarray, ctx: Context) -> np.ndarray:
        h, w = image.shape[:2]
        box = self.box_for(w, h)
        if box is None:
            return image
        # When the pipeline owns the array, the box is hidden in place, not in a copy of the whole image.
        return r.redact(image, box, self.mode, self.color, inplace=ctx.inplace)

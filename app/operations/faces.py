"""faces: find frontal faces; report, outline or hide them."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..imaging import redact as r
from ..imaging.faces import DETECT_PIXELS, detect_faces
from .base import Context, Item, Operation


class Faces(Operation):
    """Find frontal faces and report their boxes; optionally ``box``, ``blur``, ``pixelate`` or ``fill`` them.

    ``detect`` changes no pixel. Every action lists the boxes it found on the output.
    """

    op: Literal["faces"] = "faces"
    action: Literal["detect", "box", "blur", "pixelate", "fill"] = "detect"
    scale_factor: float = Field(1.1, ge=1.01, le=2.0, description="step between detection scales (at least "
                                                                 "1.01: each step adds a level to the pyramid)")
    min_neighbors: int = Field(5, ge=0, le=100, description="higher: fewer, surer detections")
    min_size: int = Field(30, ge=1, le=100_000, description="smallest face side in pixels")

    examples = ("faces", "faces=blur", "faces=action:pixelate,min_neighbors:3")

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        return {"action": text}

    def work(self, width: int, height: int) -> float:
        # The cascade runs on a copy of at most a megapixel, at every scale of a pyramid whose
        # levels add up to 1 / (1 - 1/scale_factor^2) times its area: about 50 passes at 1.1.
        levels = 1.0 / (1.0 - 1.0 / (self.scale_factor * self.scale_factor))
        return float(width * height + 8.7 * levels * min(width * height, DETECT_PIXELS))

    def apply(self, item: Item, ctx: Context) -> list[Item]:
        boxes = detect_faces(item.image, self.scale_factor, self.min_neighbors, self.min_size)
        image = item.image
        for i, box in enumerate(boxes):
            if self.action == "box":
                image = r.outline(image, box)
            elif self.action != "detect":
                image = r.redact(image, box, self.action, inplace=ctx.inplace or i > 0)
        return [Item(image, item.suffix, boxes)]

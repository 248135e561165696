"""redact and faces: hide parts of an image."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ..imaging import geometry as g
from ..imaging import redact as r
from ..imaging.faces import detect_faces
from .base import Context, Item, Operation, ints

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

    def transform(self, image, ctx: Context):
        h, w = image.shape[:2]
        box = self.box_for(w, h)
        if box is None:
            return image
        # When the pipeline owns the array, the box is hidden in place, not in a copy of the whole image.
        return r.redact(image, box, self.mode, self.color, inplace=ctx.inplace)


class Faces(Operation):
    """Find frontal faces and report their boxes; optionally ``box``, ``blur``, ``pixelate`` or ``fill`` them.

    ``detect`` changes no pixel. Every action lists the boxes it found on the output.
    """

    op: Literal["faces"] = "faces"
    action: Literal["detect", "box", "blur", "pixelate", "fill"] = "detect"
    scale_factor: float = Field(1.1, gt=1.0, le=2.0, description="step between detection scales")
    min_neighbors: int = Field(5, ge=0, le=100, description="higher: fewer, surer detections")
    min_size: int = Field(30, ge=1, le=100_000, description="smallest face side in pixels")

    examples = ("faces", "faces=blur", "faces=action:pixelate,min_neighbors:3")

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        return {"action": text}

    def apply(self, item: Item, ctx: Context) -> list[Item]:
        boxes = detect_faces(item.image, self.scale_factor, self.min_neighbors, self.min_size)
        image = item.image
        for i, box in enumerate(boxes):
            if self.action == "box":
                image = r.outline(image, box)
            elif self.action != "detect":
                image = r.redact(image, box, self.action, inplace=ctx.inplace or i > 0)
        return [Item(image, item.suffix, boxes)]

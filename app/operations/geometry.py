"""resize, split, crop, rotate, flip."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ..errors import InvalidOperation, TooLarge
from ..imaging import geometry as g
from .base import Context, Item, Operation, ShorthandError, ints, scalar, size_pair


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

    def size_for(self, w: int, h: int) -> tuple[int, int]:
        return g.target_size(w, h, self.scale, self.width, self.height, self.fit)

    def apply(self, item: Item, ctx: Context) -> list[Item]:
        h, w = item.image.shape[:2]
        tw, th = self.size_for(w, h)
        if tw * th > ctx.max_pixels:
            raise TooLarge(f"resize would make {tw}x{th} = {tw * th} pixels, more than the limit of {ctx.max_pixels}")
        faces = item.faces
        if faces:
            if self.fit == "cover":
                f = max(tw / w, th / h)
                dx, dy = (max(tw, round(w * f)) - tw) // 2, (max(th, round(h * f)) - th) // 2
                faces = g.clip_boxes(g.scale_boxes(faces, f, f), tw, th, dx, dy)
            else:
                faces = g.clip_boxes(g.scale_boxes(faces, tw / w, th / h), tw, th)
        return [Item(g.resize(item.image, tw, th, self.fit), item.suffix, faces)]


class Split(Operation):
    """Cut the image into ``rows`` x ``cols`` tiles (row-major: top-left first).

    Each tile is written to its own file, ``STEM_I.EXT``. Neighbouring tiles share
    ``overlap`` pixels. ``split=True`` and ``splitQuadrants=True`` make quadrants;
    ``split=3x4`` makes 3 rows of 4 columns. A 1x1 split is the whole image and adds no suffix.
    """

    op: Literal["split"] = "split"
    rows: int = Field(2, ge=1, le=64)
    cols: int = Field(2, ge=1, le=64)
    overlap: int = Field(0, ge=0, le=100_000, description="pixels shared by neighbouring tiles")

    examples = ("split=True", "splitQuadrants=True", "split=3x4", "split=rows:2,cols:2,overlap:16")

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        if text.lower() in ("true", "1", "yes"):
            return {}
        rows, sep, cols = text.lower().partition("x")
        if not sep:
            raise ShorthandError(f"expected True or ROWSxCOLS, got {text!r}")
        try:
            return {"rows": int(rows), "cols": int(cols)}
        except ValueError:
            raise ShorthandError(f"expected ROWSxCOLS, got {text!r}") from None

    def fanout(self) -> int:
        return self.rows * self.cols

    def apply(self, item: Item, ctx: Context) -> list[Item]:
        if self.rows * self.cols == 1:
            return [item]
        h, w = item.image.shape[:2]
        if self.rows > h or self.cols > w:
            raise InvalidOperation(f"cannot split a {w}x{h} image into {self.rows} rows and {self.cols} columns")
        if self.overlap and self.overlap >= min(h // self.rows, w // self.cols):
            raise InvalidOperation(f"overlap {self.overlap} is not smaller than a {w // self.cols}x{h // self.rows} tile")
        rows = g.tile_spans(h, self.rows, self.overlap)
        cols = g.tile_spans(w, self.cols, self.overlap)
        tiles = g.split(item.image, self.rows, self.cols, self.overlap)
        origins = [(x0, y0, x1 - x0, y1 - y0) for (y0, y1) in rows for (x0, x1) in cols]
        return [Item(tile, item.suffix + (i,),
                     None if item.faces is None else g.clip_boxes(item.faces, tw, th, x0, y0))
                for i, (tile, (x0, y0, tw, th)) in enumerate(zip(tiles, origins))]


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

    def apply(self, item: Item, ctx: Context) -> list[Item]:
        h, w = item.image.shape[:2]
        box = self.box_for(w, h)
        faces = None if item.faces is None else g.clip_boxes(item.faces, box[2], box[3], box[0], box[1])
        return [Item(g.crop(item.image, box), item.suffix, faces)]

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


class Rotate(Operation):
    """Rotate clockwise by 90, 180 or 270 degrees."""

    op: Literal["rotate"] = "rotate"
    angle: Literal[90, 180, 270] = Field(description="degrees clockwise")

    examples = ("rotate=90",)

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        return {"angle": scalar(text)}

    def apply(self, item: Item, ctx: Context) -> list[Item]:
        h, w = item.image.shape[:2]
        faces = None if item.faces is None else g.rotate_boxes(item.faces, w, h, self.angle)
        return [Item(g.rotate(item.image, self.angle), item.suffix, faces)]


class Flip(Operation):
    """Mirror the image: ``horizontal`` swaps left and right, ``vertical`` top and bottom."""

    op: Literal["flip"] = "flip"
    axis: Literal["horizontal", "vertical"]

    examples = ("flip=horizontal", "flip=vertical")

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        return {"axis": text}

    def apply(self, item: Item, ctx: Context) -> list[Item]:
        h, w = item.image.shape[:2]
        faces = None if item.faces is None else g.flip_boxes(item.faces, w, h, self.axis)
        return [Item(g.flip(item.image, self.axis), item.suffix, faces)]

"""split: cut the image into tiles, each written to its own file."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..errors import InvalidOperation
from ..imaging import geometry as g
from .base import Context, Item, Operation, ShorthandError


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
    aliases = ("splitQuadrants",)
    fans_out = True

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

    def sizes_after(self, width: int, height: int) -> list[tuple[int, int]]:
        if self.rows * self.cols == 1 or self.rows > height or self.cols > width:
            return [(width, height)]
        rows, cols = g.tile_spans(height, self.rows, self.overlap), g.tile_spans(width, self.cols, self.overlap)
        return [(x1 - x0, y1 - y0) for (y0, y1) in rows for (x0, x1) in cols]

    def work(self, width: int, height: int) -> float:
        return 0.0  # views

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

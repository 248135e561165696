"""encode: how the final image is written."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..imaging.codec import DEFAULT_COMPRESSION, DEFAULT_QUALITY
from .base import Context, Item, Operation, scalar


class Encode(Operation):
    """How the outputs are written, wherever it stands in the list.

    ``quality`` for JPEG and WebP (default 90), ``optimize`` and ``progressive`` for JPEG,
    ``compression`` for PNG (default 3). ``quality=30`` is short for ``encode=quality:30``.
    """

    op: Literal["encode"] = "encode"
    quality: int = Field(DEFAULT_QUALITY, ge=1, le=100, description="JPEG/WebP quality")
    optimize: bool = Field(False, description="JPEG: optimise Huffman tables (smaller, slower)")
    progressive: bool = Field(False, description="JPEG: progressive scan")
    compression: int = Field(DEFAULT_COMPRESSION, ge=0, le=9, description="PNG zlib level")

    examples = ("encode=quality:30", "quality=30", "encode=quality:80,optimize:true,progressive:true")

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        return {"quality": scalar(text)}

    def apply(self, item: Item, ctx: Context) -> list[Item]:
        return [item]

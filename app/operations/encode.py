"""encode: how the final image is written."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from ..imaging.codec import DEFAULT_COMPRESSION, DEFAULT_QUALITY
from .base import Context, Item, Operation, scalar


class Encode(Operation):
    """How the outputs are written, wherever it stands in the list.

    ``quality`` for JPEG and WebP (default 90), ``optimize`` and ``progressive`` for JPEG,
    ``compression`` for PNG (default 3). ``quality=30`` is short for ``encode=quality:30``.
    Several ``encode`` operations are merged, later parameters winning: ``quality=30`` then
    ``encode=optimize:true`` writes quality 30, optimized.
    """

    op: Literal["encode"] = "encode"
    quality: int = Field(DEFAULT_QUALITY, ge=1, le=100, description="JPEG/WebP quality")
    optimize: bool = Field(False, description="JPEG: optimise Huffman tables (smaller, slower)")
    progressive: bool = Field(False, description="JPEG: progressive scan")
    compression: int = Field(DEFAULT_COMPRESSION, ge=0, le=9, description="PNG zlib level")

    examples = ("encode=quality:30", "quality=30", "encode=quality:80,optimize:true,progressive:true")
    aliases = ("quality",)
    true_means_defaults = False

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        return {"quality": scalar(text)}

    @classmethod
    def merge(cls, encodes: Sequence["Encode"]) -> "Encode":
        """One encode with the parameters each of ``encodes`` set, later ones winning."""
        if len(encodes) == 1:
            return encodes[0]
        params: dict[str, Any] = {}
        for enc in encodes:
            params.update(enc.model_dump(include=enc.model_fields_set - {"op"}))
        return cls(**params)

    def apply(self, item: Item, ctx: Context) -> list[Item]:
        return [item]  # not an image step: the pipeline keeps encode apart (Pipeline.encode)

"""What every operation shares: the model base class, the item that flows through a pipeline,
what an operation may tell the renderer (how to decode for it, its steps on a JPEG's planes),
and the helpers of the string form."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..imaging.geometry import Box


@dataclass
class Item:
    """One image on its way through the pipeline.

    ``suffix`` grows by one tile index per fan-out (split), and names the output file;
    ``faces`` holds the boxes the last ``faces`` operation found (None: none ran).
    """

    image: np.ndarray
    suffix: tuple[int, ...] = ()
    faces: list[Box] | None = field(default=None)


@dataclass(frozen=True)
class Decode:
    """How a JPEG may be decoded for a pipeline whose first operation asks for it.

    ``reduce``: libjpeg decodes at 1/2, 1/4 or 1/8 of the size (in the DCT domain, which averages
    like INTER_AREA); ``gray``: luminance only; ``replacement``: the operation to run instead of
    the first one on the decoded image (a resize to the absolute size it computes for the full
    image, so the output has the same size either way).
    """

    reduce: int = 1
    gray: bool = False
    replacement: "Operation | None" = None


FULL_DECODE = Decode()


@dataclass(frozen=True)
class PlaneStep:
    """One operation done on a JPEG's YCbCr planes (see app.imaging.planar): keep ``box`` (a
    crop, ``color`` None) or fill it with ``color`` ([b, g, r])."""

    op: str
    box: Box
    color: tuple[int, int, int] | None = None

    def size_after(self, width: int, height: int) -> tuple[int, int]:
        return (self.box[2], self.box[3]) if self.color is None else (width, height)


@dataclass(frozen=True)
class Context:
    """Limits and ownership while a pipeline runs.

    ``inplace``: the caller hands its arrays over (a worker with the image it decoded), so an
    operation may change an array instead of copying the whole image first.
    """

    max_pixels: int = 100_000_000
    inplace: bool = False


class ShorthandError(ValueError):
    """The text after ``NAME=`` cannot be read."""


class Operation(BaseModel):
    """Base of every operation model: parameters are validated here, pixels change in ``apply``.

    Subclasses set ``op: Literal[NAME]`` and describe their string form in ``shorthand``.
    ``apply`` may change the item's array only when ``ctx.inplace`` says the pipeline owns it.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    #: examples of the string form, shown in GET /operations and in the docs
    examples: ClassVar[tuple[str, ...]] = ()
    #: other names of the string form (the original py-image-server's ``splitQuadrants``)
    aliases: ClassVar[tuple[str, ...]] = ()
    #: whether ``NAME=True`` means the operation with its defaults (py-image-server's ``splitQuadrants=True``)
    true_means_defaults: ClassVar[bool] = True
    #: whether an image may come out as several (named ``STEM_I.EXT``)
    fans_out: ClassVar[bool] = False

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        # ``op`` has a default so that code can write Blur(kernel=3), but a request must name it.
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        required = target.setdefault("required", [])
        if "op" not in required:
            required.insert(0, "op")
        target.get("properties", {}).get("op", {}).pop("default", None)
        return schema

    @classmethod
    def shorthand(cls, text: str) -> dict[str, Any]:
        """Parameters of the positional string form ``NAME=TEXT``."""
        raise ShorthandError(f"takes no positional value; use {cls.name()}=key:value,...")

    @classmethod
    def name(cls) -> str:
        return cls.model_fields["op"].default

    def fanout(self) -> int:
        """How many items each incoming item becomes."""
        return 1

    def fixed_size(self) -> tuple[int, int] | None:
        """The size of every result when it does not depend on the image's (checked against the pixel limit when planned)."""
        return None

    def decode(self, width: int, height: int) -> Decode:
        """How to decode an upright ``width`` x ``height`` JPEG when this operation comes first."""
        return FULL_DECODE

    def on_planes(self, width: int, height: int) -> tuple[PlaneStep, ...] | None:
        """This operation's steps on the YCbCr planes of a ``width`` x ``height`` 4:2:0 JPEG
        (none: it does nothing there), or None when it needs the decoded pixels."""
        return None

    def sizes_after(self, width: int, height: int) -> list[tuple[int, int]]:
        """The sizes of the images a ``width`` x ``height`` image becomes (several for a fan-out);
        an estimate where the operation would refuse the image."""
        return [(width, height)]

    def work(self, width: int, height: int) -> float:
        """Estimated pixel reads of this operation on a ``width`` x ``height`` image (the work
        budget, IMGSRV_MAX_WORK): one pass unless the operation says more."""
        return float(width * height)

    def move_boxes(self, boxes: list[Box], width: int, height: int) -> list[Box]:
        """Where boxes found on a ``width`` x ``height`` image (faces) lie after this operation."""
        return boxes

    def apply(self, item: Item, ctx: Context) -> list[Item]:
        h, w = item.image.shape[:2]
        faces = None if item.faces is None else self.move_boxes(item.faces, w, h)
        return [Item(self.transform(item.image, ctx), item.suffix, faces)]

    def transform(self, image: np.ndarray, ctx: Context) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets: ``color:[0,0,255],mode:fill`` gives two parts."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def scalar(text: str) -> Any:
    """A value of the string form: a JSON number, boolean, null or list, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def key_values(text: str) -> dict[str, Any]:
    """``key:value,key:value`` to a dict (values through ``scalar``)."""
    out: dict[str, Any] = {}
    for part in split_top_level(text):
        key, sep, value = part.partition(":")
        if not sep or not key.strip():
            raise ShorthandError(f"expected key:value, got {part!r}")
        key = key.strip()
        if key in out:
            raise ShorthandError(f"parameter {key!r} is given twice")
        out[key] = scalar(value.strip())
    return out


def ints(text: str, count: int, what: str) -> list[int]:
    """Exactly ``count`` comma-separated integers."""
    parts = split_top_level(text)
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ShorthandError(f"expected {what} as {count} integers, got {text!r}") from None
    if len(values) != count:
        raise ShorthandError(f"expected {what} as {count} integers, got {len(values)}")
    return values


def size_pair(text: str) -> tuple[int | None, int | None]:
    """``800x600``, ``800x`` or ``x600``."""
    a, sep, b = text.lower().partition("x")
    if not sep:
        raise ShorthandError(f"expected WIDTHxHEIGHT, got {text!r}")
    try:
        return (int(a) if a else None), (int(b) if b else None)
    except ValueError:
        raise ShorthandError(f"expected WIDTHxHEIGHT, got {text!r}") from None

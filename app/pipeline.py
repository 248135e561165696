"""A pipeline is a plain list of operations applied in order, plus how the result is written.

No I/O here: ``run`` takes a decoded image and returns the items to encode. What an operation
means for the decode or for the JPEG planes is the operation's own knowledge (its ``decode``
and ``on_planes``); the pipeline only asks.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .operations import Context, Decode, Item, Operation, PlaneStep
from .operations.encode import Encode

DEFAULT_ENCODE = Encode()


@dataclass(frozen=True)
class Pipeline:
    """The validated image operations of a request, in order, and how outputs are written."""

    operations: tuple[Operation, ...] = ()  # no encode, no operation turned off
    encoding: Encode | None = None  # the request's encode operations merged; None: the defaults
    metadata: str = "keep"  # keep or strip a JPEG input's EXIF
    planes: bool = True  # JPEG-to-JPEG crops and fills may run on the YCbCr planes (app.render.planes)

    @classmethod
    def of(cls, operations: Sequence[Operation | None], metadata: str = "keep", planes: bool = True) -> "Pipeline":
        """From a request's operations: those turned off (``split=False``) dropped, ``encode``s merged."""
        given = [op for op in operations if op is not None]
        encodes = [op for op in given if isinstance(op, Encode)]
        return cls(tuple(op for op in given if not isinstance(op, Encode)),
                   Encode.merge(encodes) if encodes else None, metadata, planes)

    @property
    def encode(self) -> Encode:
        return self.encoding or DEFAULT_ENCODE

    @property
    def fanout_shape(self) -> tuple[int, ...]:
        """Tile counts of every split that fans out, in order: ``(4, 4)`` for two quadrant splits."""
        return tuple(n for op in self.operations if (n := op.fanout()) > 1)

    def normalized(self) -> list[dict]:
        """The operations in object form, every parameter explicit; the merged encode last."""
        ops = [*self.operations, *([self.encoding] if self.encoding is not None else [])]
        return [op.model_dump(mode="json") for op in ops]

    def digest(self) -> str:
        """Identity of what this pipeline does to an image, for the skip-existing manifest."""
        blob = json.dumps({"ops": self.normalized(), "metadata": self.metadata}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def plan_decode(self, width: int, height: int) -> "DecodePlan":
        """How to decode an upright ``width`` x ``height`` JPEG for this pipeline, and the
        operations to run on the result: the first operation says (see Operation.decode)."""
        if not self.operations:
            return DecodePlan(1, False, ())
        first, rest = self.operations[0], self.operations[1:]
        how: Decode = first.decode(width, height)
        ops = ((how.replacement,) + rest) if how.replacement is not None else self.operations
        return DecodePlan(how.reduce, how.gray, ops)

    def plan_planes(self, width: int, height: int) -> tuple[PlaneStep, ...] | None:
        """The steps of this pipeline on the YCbCr planes of a ``width`` x ``height`` 4:2:0 JPEG,
        or None when it needs the pixels: an operation that cannot run there, a box off the
        chroma grid, or an optimized or progressive output."""
        if self.encode.optimize or self.encode.progressive:
            return None
        steps: list[PlaneStep] = []
        for op in self.operations:
            mine = op.on_planes(width, height)
            if mine is None:
                return None
            for step in mine:
                width, height = step.size_after(width, height)
            steps.extend(mine)
        return tuple(steps)


@dataclass(frozen=True)
class DecodePlan:
    """How a JPEG is decoded for a pipeline (see Pipeline.plan_decode)."""

    reduce: int  # 1, 2, 4 or 8
    gray: bool  # decode luminance only
    operations: tuple[Operation, ...]  # what runs on the decoded image


@dataclass
class Timings:
    """Milliseconds spent per operation name (a name may occur several times)."""

    ms: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.ms[name] = self.ms.get(name, 0.0) + seconds * 1000.0


def run(image: np.ndarray, operations: Sequence[Operation], ctx: Context,
        timings: Timings | None = None) -> list[Item]:
    """Apply the operations left to right; every item of a fan-out goes through the rest."""
    items = [Item(image)]
    for op in operations:
        start = time.perf_counter()
        items = [out for item in items for out in op.apply(item, ctx)]
        if timings is not None:
            timings.add(op.op, time.perf_counter() - start)  # type: ignore[attr-defined]
    return items

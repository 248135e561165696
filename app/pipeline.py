"""A pipeline is a plain list of operations applied in order; fan-out multiplies the items.

No I/O here: ``run`` takes a decoded image and returns the items to encode.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import ImageError
from .imaging import planar
from .imaging.geometry import Box
from .operations import Context, Item, Operation
from .operations.encode import Encode
from .operations.filters import Grayscale, Threshold
from .operations.geometry import Crop, Resize
from .operations.redact import Redact


@dataclass(frozen=True)
class Pipeline:
    """The validated operations of a request (no-ops already dropped) and how outputs are written."""

    operations: tuple[Operation, ...]
    metadata: str = "keep"

    @property
    def encode(self) -> Encode:
        """The last ``encode`` of the list, or the defaults."""
        found = [op for op in self.operations if isinstance(op, Encode)]
        return found[-1] if found else Encode()

    @property
    def fanout_shape(self) -> tuple[int, ...]:
        """Tile counts of every split that fans out, in order: ``(4, 4)`` for two quadrant splits."""
        return tuple(n for op in self.operations if (n := op.fanout()) > 1)

    def normalized(self) -> list[dict]:
        return [op.model_dump(mode="json") for op in self.operations]

    def digest(self) -> str:
        """Identity of what this pipeline does to an image, for the skip-existing manifest."""
        blob = json.dumps({"ops": self.normalized(), "metadata": self.metadata}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def plan_decode(self, width: int, height: int) -> "DecodePlan":
        """How to decode an upright ``width`` x ``height`` JPEG for this pipeline, and the
        operations to run on the result.

        - A reduced-size decode (1/2, 1/4, 1/8) when the first operation that changes pixels
          is a downscaling resize and the reduced image is still at least as large as its
          result (libjpeg scales in the DCT domain, which averages like INTER_AREA). That
          resize is then given as the absolute size it computes for the full image, so the
          output has the same size either way.
        - A grayscale decode when the first such operation is grayscale or threshold, which
          work on luminance anyway: libjpeg skips the colour conversion.
        """
        ops = self.operations
        i = next((k for k, op in enumerate(ops) if not isinstance(op, Encode)), None)
        if i is None:
            return DecodePlan(1, False, ops)
        first = ops[i]
        if isinstance(first, (Grayscale, Threshold)):
            return DecodePlan(1, True, ops)
        if not isinstance(first, Resize) or first.fit == "cover":
            return DecodePlan(1, False, ops)
        tw, th = first.size_for(width, height)
        for factor in (8, 4, 2):
            if width // factor >= tw and height // factor >= th:
                exact = Resize(width=tw, height=th, fit="stretch")
                return DecodePlan(factor, False, ops[:i] + (exact,) + ops[i + 1:])
        return DecodePlan(1, False, ops)


    def plan_planes(self, width: int, height: int) -> tuple["PlaneStep", ...] | None:
        """The steps of this pipeline on the YCbCr planes of a ``width`` x ``height`` 4:2:0 JPEG
        (see imaging.planar), or None when it needs the usual decode: an operation other than
        crop and fill redaction, a box off the chroma grid, or an optimized or progressive output.
        """
        steps: list[PlaneStep] = []
        for op in self.operations:
            if isinstance(op, Encode):
                if op.optimize or op.progressive:
                    return None
                continue
            if isinstance(op, Crop):
                try:
                    box = op.box_for(width, height)
                except ImageError:
                    return None  # the usual path reports it
                if not planar.aligned(box, width, height):
                    return None
                steps.append(PlaneStep(op.op, box))
                width, height = box[2], box[3]
            elif isinstance(op, Redact) and op.mode == "fill":
                hidden = op.box_for(width, height)
                if hidden is None:
                    continue  # wholly outside: nothing to hide
                if not planar.aligned(hidden, width, height):
                    return None
                steps.append(PlaneStep(op.op, hidden, op.color))
            else:
                return None
        return tuple(steps)


@dataclass(frozen=True)
class PlaneStep:
    """A crop (``color`` None) or a fill of ``box`` on the planes."""

    op: str
    box: Box
    color: tuple[int, int, int] | None = None


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


def run_planes(data: bytes, steps: Sequence[PlaneStep], timings: Timings | None = None) -> planar.Planes | None:
    """Decode a JPEG to its planes and apply ``steps`` (from Pipeline.plan_planes); None when
    the JPEG cannot be decoded that way (then the usual path runs)."""
    start = time.perf_counter()
    planes = planar.decode(data)
    if timings is not None:  # a decode that gave up counts too: the usual path's decode adds to it
        timings.add("decode", time.perf_counter() - start)
    return None if planes is None else apply_planes(planes, steps, timings)


def apply_planes(planes: planar.Planes, steps: Sequence[PlaneStep], timings: Timings | None = None) -> planar.Planes:
    """Apply ``steps`` (from Pipeline.plan_planes) to decoded planes: crops are views, fills in place."""
    for step in steps:
        start = time.perf_counter()
        if step.color is None:
            planes = planar.crop(planes, step.box)
        else:
            planar.fill(planes, step.box, step.color)
        if timings is not None:
            timings.add(step.op, time.perf_counter() - start)
    return planes

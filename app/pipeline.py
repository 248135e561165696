"""A pipeline is a plain list of operations applied in order, plus how the result is written.

No I/O here: ``run`` takes a decoded image and returns the items to encode. What an operation
means for the decode or for the JPEG planes is the operation's own knowledge (its ``decode``
and ``on_planes``); the pipeline only asks.
"""
from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .operations import Context, Decode, Item, Operation, PlaneStep
from .operations.encode import Encode

DEFAULT_ENCODE = Encode()

#: pixel reads per second of this kind of work on one core, to say a budget in seconds (a 2-core AMD EPYC)
READS_PER_SECOND = 1.4e9


@dataclass(frozen=True)
class Budget:
    """What one image may cost: the pixels of all its images at any step (its tiles together),
    and the estimated pixel reads of all its operations (see Operation.work)."""

    max_output_pixels: int
    max_work: float


@dataclass(frozen=True)
class Estimate:
    pixels: int  # the most pixels the image is at once, over all its items, at any step
    outputs: int  # how many images it ends as
    work: float  # estimated pixel reads

    def refusal(self, budget: Budget) -> str | None:
        """Why this estimate is over ``budget``; None when it fits."""
        if self.pixels > budget.max_output_pixels:
            return (f"the operations make {self.pixels} pixels of images from this one, more than "
                    f"IMGSRV_MAX_OUTPUT_PIXELS ({budget.max_output_pixels})")
        return self.over_work(budget)

    def over_work(self, budget: Budget) -> str | None:
        if self.work > budget.max_work:
            return (f"the operations would read about {self.work:.3g} pixels (some "
                    f"{self.work / READS_PER_SECOND:.0f} s of work), more than IMGSRV_MAX_WORK ({budget.max_work:.3g})")
        return None


@dataclass(frozen=True)
class Pipeline:
    """The validated image operations of a request, in order, and how outputs are written."""

    operations: tuple[Operation, ...] = ()  # no encode, no operation turned off
    encoding: Encode | None = None  # the request's encode operations merged; None: the defaults
    metadata: str = "keep"  # keep or strip a JPEG input's EXIF
    planes: bool = True  # JPEG-to-JPEG crops and fills may run on the YCbCr planes (app.render.planes)
    budget: Budget | None = None  # what one image may cost (None: no bound but the pixel limit)

    @classmethod
    def of(cls, operations: Sequence[Operation | None], metadata: str = "keep", planes: bool = True,
           budget: Budget | None = None) -> "Pipeline":
        """From a request's operations: those turned off (``split=False``) dropped, ``encode``s merged."""
        given = [op for op in operations if op is not None]
        encodes = [op for op in given if isinstance(op, Encode)]
        return cls(tuple(op for op in given if not isinstance(op, Encode)),
                   Encode.merge(encodes) if encodes else None, metadata, planes, budget)

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

    @functools.cached_property
    def _digest(self) -> str:
        blob = json.dumps({"ops": self.normalized(), "metadata": self.metadata}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def digest(self) -> str:
        """Identity of what this pipeline does to an image, for the skip-existing manifest
        (computed once: a job asks for it for every image)."""
        return self._digest

    def estimate(self, width: int, height: int, operations: int | None = None) -> Estimate:
        """What the first ``operations`` (default all) cost on a ``width`` x ``height`` image:
        the operations' sizes and work, then the encode's pass over every output."""
        sizes = [(width, height)]
        pixels, work = width * height, 0.0
        for op in self.operations[:operations]:
            work += sum(op.work(w, h) for w, h in sizes)
            sizes = [s for w, h in sizes for s in op.sizes_after(w, h)]
            pixels = max(pixels, sum(w * h for w, h in sizes))
        return Estimate(pixels, len(sizes), work + sum(w * h for w, h in sizes))

    def refusal(self, width: int, height: int) -> str | None:
        """Why an upright ``width`` x ``height`` image is over this pipeline's budget; None if it fits."""
        return None if self.budget is None else self.estimate(width, height).refusal(self.budget)

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

"""The planes renderer: a JPEG-to-JPEG pipeline of crops and fills on the JPEG's own YCbCr
planes (app.imaging.planar), without converting to BGR and back."""
from __future__ import annotations

import time
from collections.abc import Sequence

from ..imaging import codec, planar
from ..imaging.codec import Header
from ..operations import PlaneStep
from ..pipeline import Pipeline, Timings
from ..tasks import Output


def applies(pipeline: Pipeline, header: Header, fmt: str) -> bool:
    """Whether the planes renderer may try this image: allowed by the pipeline (the setting),
    a JPEG written as a JPEG, stored upright. Its steps decide the rest (render_planes)."""
    return pipeline.planes and fmt == "jpeg" and header.format == "jpeg" and header.orientation == 1


def render_planes(data: bytes, header: Header, pipeline: Pipeline, exif: bytes | None,
                  timings: Timings) -> Output | None:
    """The pipeline on a 4:2:0 JPEG's YCbCr planes; None when it needs the pixels, or the planes
    cannot be decoded or encoded (then the pixel renderer runs, and reports any error)."""
    steps = pipeline.plan_planes(header.width, header.height)
    result = None if steps is None else run_planes(data, steps, timings)
    if result is None:
        return None
    t = time.perf_counter()
    blob = planar.encode(result, pipeline.encode.quality)
    timings.add("encode", time.perf_counter() - t)
    if blob is None:
        return None
    if exif:
        blob = codec.insert_exif(blob, exif)
    return Output(None, result.width, result.height, len(blob), blob=blob)


def run_planes(data: bytes, steps: Sequence[PlaneStep], timings: Timings | None = None) -> planar.Planes | None:
    """Decode a JPEG to its planes and apply ``steps`` (from Pipeline.plan_planes); None when
    the JPEG cannot be decoded that way."""
    start = time.perf_counter()
    planes = planar.decode(data)
    if timings is not None:  # a decode that gave up counts too: the pixel renderer's decode adds to it
        timings.add("decode", time.perf_counter() - start)
    return None if planes is None else apply_planes(planes, steps, timings)


def apply_planes(planes: planar.Planes, steps: Sequence[PlaneStep], timings: Timings | None = None) -> planar.Planes:
    """Apply ``steps`` to decoded planes: crops are views, fills in place."""
    for step in steps:
        start = time.perf_counter()
        if step.color is None:
            planes = planar.crop(planes, step.box)
        else:
            planar.fill(planes, step.box, step.color)
        if timings is not None:
            timings.add(step.op, time.perf_counter() - start)
    return planes

"""The pixel renderer: decode to an array, run the pipeline's operations, encode every item."""
from __future__ import annotations

import time

import cv2

from ..errors import ImageError, InvalidOperation
from ..imaging import codec
from ..imaging.codec import Header
from ..operations import Context
from ..pipeline import Pipeline, Timings, run
from ..tasks import Output


def render_pixels(data: bytes, header: Header, pipeline: Pipeline, fmt: str, max_pixels: int,
                  exif: bytes | None, timings: Timings) -> list[Output]:
    """Decode (at reduced size or in gray when the first operation allows it), run the
    operations, encode each item: the outputs of one input, in memory."""
    t = time.perf_counter()
    w, h = header.upright_size
    plan = pipeline.plan_decode(w, h)
    image = codec.decode(data, header, plan.reduce, plan.gray)
    del data
    timings.add("decode", time.perf_counter() - t)
    try:
        items = run(image, plan.operations, Context(max_pixels, inplace=True), timings)
    except ImageError:
        raise
    except cv2.error as exc:
        raise InvalidOperation(f"OpenCV refused the operation: {exc.err or exc}") from None
    del image
    t = time.perf_counter()
    enc = pipeline.encode
    out = []
    for item in items:
        blob = codec.encode(item.image, fmt, enc.quality, enc.optimize, enc.progressive, enc.compression, exif)
        faces = None if item.faces is None else [
            {"x": x, "y": y, "width": bw, "height": bh} for (x, y, bw, bh) in item.faces]
        out.append(Output(None, item.image.shape[1], item.image.shape[0], len(blob), faces, suffix=item.suffix,
                          blob=blob))
    timings.add("encode", time.perf_counter() - t)
    return out

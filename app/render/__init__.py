"""The worker side of the flow: read -> decode -> pipeline -> encode -> atomic write.

``render`` chooses the renderer of an image once: the JPEG planes (``planes``) where the
pipeline and the image allow it, else the pixels (``pixels``). ``worker.execute`` is the
function every pool backend runs; ``setup.init_worker`` prepares the process or thread.
"""
from __future__ import annotations

from ..errors import TooLarge
from ..imaging.codec import Header
from ..pipeline import Pipeline, Timings
from ..tasks import Output
from .pixels import render_pixels
from .planes import applies as planes_apply
from .planes import render_planes


class Source:
    """An input's bytes, which ``render`` lets go of once they are decoded: in a worker that
    holds them only here, the pipeline's peak memory is then the pixels' alone."""

    def __init__(self, data: bytes):
        self.data: bytes | None = data

    def take(self) -> bytes:
        data, self.data = self.data, None
        return data  # type: ignore[return-value]  # render takes them once


def render(source: Source, header: Header, pipeline: Pipeline, fmt: str, max_pixels: int,
           timings: Timings) -> list[Output]:
    """The encoded outputs of one input, in memory (``blob`` set, ``path`` None). An image the
    pipeline's budget cannot afford is refused before it is decoded (TooLarge)."""
    w, h = header.upright_size
    problem = pipeline.refusal(w, h)
    if problem:
        raise TooLarge(f"{problem} (the image is {w}x{h})")
    exif = header.exif if pipeline.metadata == "keep" else None
    if planes_apply(pipeline, header, fmt):
        out = render_planes(source.data, header, pipeline, exif, timings)  # type: ignore[arg-type]
        if out is not None:
            source.take()  # done with the input's bytes
            return [out]
    return render_pixels(source.take(), header, pipeline, fmt, max_pixels, exif, timings)


__all__ = ["Source", "render"]

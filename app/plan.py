"""The planner: from validated operations and the paths a request names to tasks.

The one place that builds a pipeline, resolves paths under the data root, names outputs,
applies skip-existing and every rule about outputs. It serves ``/process``, ``/items/``,
``/plan``, jobs (and so the CLI), ``/render`` and ``/compare``. Planning reads no image: it
refuses a whole request (RequestError: 403 / 422) before anything is written, or, for an
image of a job, turns the problem into that image's failure.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import product

from .errors import ErrorCode, InvalidRequest, RequestError
from .files import resolve
from .formats import EXTENSION, Format, extensions_listed, format_of_path
from .operations import Operation
from .pipeline import Pipeline
from .tasks import CompareTask, Expected, ImageTask, RenderTask, Report

#: the skip-existing manifest: what it recorded for these outputs made by this pipeline (digest), if anything
ManifestLookup = Callable[[Sequence[str], str], "Expected | None"]


def build_pipeline(operations: Sequence[Operation | None], metadata: str, max_pixels: int,
                   field: str = "operations", planes: bool = True) -> Pipeline:
    """The pipeline of a request's validated operations (None: one turned off, ``split=False``);
    refuses results that can never fit the pixel budget."""
    for i, op in enumerate(operations):
        size = op.fixed_size() if op is not None else None
        if size is not None and size[0] * size[1] > max_pixels:
            raise InvalidRequest(f"{op.op} to {size[0]}x{size[1]} makes more than the limit of "  # type: ignore[union-attr]
                                 f"{max_pixels} pixels", f"{field}[{i}]")
    return Pipeline.of(operations, metadata, planes)


def output_format(output: str, field: str) -> Format:
    """The format an output path's extension chooses (422 naming ``field`` for any other)."""
    fmt = format_of_path(output)
    if fmt is None:
        ext = os.path.splitext(output)[1].lower()
        raise InvalidRequest(f"the output's extension {ext or '(none)'!s} is not one of {extensions_listed()}", field)
    return fmt


def tile_suffix(indices: Sequence[int]) -> str:
    """``_I_J``: the tile indices of the splits that made an output."""
    return "".join(f"_{i}" for i in indices)


def output_names(output: str, fanout_shape: tuple[int, ...]) -> list[str]:
    """The files a pipeline writes for one image: ``output`` itself, or ``STEM_I[_J...].EXT``
    beside it when the pipeline fans out (tiles counted from 0 in row-major order)."""
    if not fanout_shape:
        return [output]
    head, name = os.path.split(output)
    stem, ext = os.path.splitext(name)
    return [os.path.join(head, stem + tile_suffix(idx) + ext) for idx in product(*(range(n) for n in fanout_shape))]


def mirrored_output(rel: str, output_dir: str, fmt: str | None) -> str:
    """A folder job's input ``DIR/REL`` goes to ``OUTPUT_DIR/REL``, with the extension of ``fmt`` when set."""
    if fmt:
        rel = os.path.splitext(rel)[0] + EXTENSION[Format(fmt)]
    return os.path.join(output_dir, rel)


@dataclass
class PlannedImage:
    index: int
    input: str  # as the request spelled it
    output: str
    outputs: list[str]  # output names, spelled like the request's output
    task: ImageTask | None  # None when the image failed while planned (``failure``)
    failure: Report | None = None


class Planner:
    """Plans images under one data root, with one pixel budget and the skip-existing manifest."""

    def __init__(self, root: str, max_pixels: int, manifest: ManifestLookup | None = None):
        self.root = root
        self.max_pixels = max_pixels
        self.manifest = manifest

    def image(self, index: int, inp: str, out: str, pipeline: Pipeline, field: str, *,
              skip_existing: bool = False, sync: bool = True) -> PlannedImage:
        """Plan one image (blocking file-system look-ups); RequestError naming ``field.input`` or
        ``field.output`` for a path that cannot be used."""
        at = f"{field}." if field else ""
        in_real = resolve(self.root, inp, f"{at}input")
        output_format(out, f"{at}output")
        out_real = resolve(self.root, out, f"{at}output")
        if out_real == in_real:
            raise InvalidRequest("the output is the input; imgsrv never overwrites an input", f"{at}output")
        shape = pipeline.fanout_shape
        task = ImageTask(in_real, tuple(output_names(out_real, shape)), pipeline, self.max_pixels, sync=sync)
        if skip_existing and self.manifest is not None:
            found = self.manifest(task.outputs, pipeline.digest())
            if found is not None:
                task = replace(task, expected=found)
        return PlannedImage(index, inp, out, output_names(out, shape), task)

    def images(self, pairs: Sequence[tuple[str, str]], pipeline: Pipeline, field: str = "images", *,
               skip_existing: bool = False) -> list[PlannedImage]:
        """Plan a request's (input, output) pairs; refuses the whole request on the first problem,
        two images writing one file among them, or an image writing another's input."""
        planned: list[PlannedImage] = []
        writers: dict[str, int] = {}
        inputs: dict[str, int] = {}
        for i, (inp, out) in enumerate(pairs):
            p = self.image(i, inp, out, pipeline, f"{field}[{i}]", skip_existing=skip_existing)
            assert p.task is not None
            for name, real in zip(p.outputs, p.task.outputs):
                if real in writers:
                    raise InvalidRequest(f"{field}[{writers[real]}] and {field}[{i}] would both write {name!r}",
                                         f"{field}[{i}].output")
                writers[real] = i
            inputs.setdefault(p.task.input, i)
            planned.append(p)
        for real, i in writers.items():
            if real in inputs:
                raise InvalidRequest(f"{field}[{i}] would overwrite the input of {field}[{inputs[real]}]",
                                     f"{field}[{i}].output")
        return planned

    def job_image(self, index: int, inp: str, out: str, pipeline: Pipeline, *, skip_existing: bool) -> PlannedImage:
        """Plan one image of a running job: a path that cannot be used fails that image alone
        (an input: ``not_found``; an output: ``write_error``). Outputs are not flushed one by
        one: the job makes each batch durable at once before recording it."""
        try:
            return self.image(index, inp, out, pipeline, "", skip_existing=skip_existing, sync=False)
        except RequestError as exc:
            code = ErrorCode.NOT_FOUND if exc.field == "input" else ErrorCode.WRITE_ERROR
            return PlannedImage(index, inp, out, output_names(out, pipeline.fanout_shape), None,
                                Report.failure(code, exc.message))

    def folder_job(self, source_dir: str, recursive: bool, output_dir: str) -> None:
        """Check a folder job's folders (RequestError naming ``source.dir`` or ``output_dir``)."""
        folder = resolve(self.root, source_dir, "source.dir")
        if not os.path.isdir(folder):
            raise InvalidRequest("the source folder does not exist or is not a folder", "source.dir")
        out_real = resolve(self.root, output_dir, "output_dir")
        if out_real == folder or (recursive and os.path.commonpath([folder, out_real]) == folder):
            raise InvalidRequest("output_dir must not be the source folder or, for a recursive job, inside it",
                                 "output_dir")

    def compare(self, a: str, b: str, output: str | None, fuzz: float) -> CompareTask:
        """Plan a comparison of two images, writing the difference to ``output`` when given."""
        a_real = resolve(self.root, a, "a")
        b_real = resolve(self.root, b, "b")
        out_real = None
        if output is not None:
            output_format(output, "output")
            out_real = resolve(self.root, output, "output")
            if out_real in (a_real, b_real):
                raise InvalidRequest("the output is one of the inputs; imgsrv never overwrites an input", "output")
        return CompareTask(a_real, b_real, out_real, fuzz, self.max_pixels)

    def upload(self, data: bytes, pipeline: Pipeline, fmt: Format | None) -> RenderTask:
        """Plan an uploaded image's run (``fmt`` None: the input's own format)."""
        return RenderTask(data, pipeline, fmt, self.max_pixels)

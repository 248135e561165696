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
from .operations.encode import Encode
from .pipeline import Budget, Pipeline
from .tasks import CompareTask, Expected, ImageTask, Overwrite, Owned, RenderTask, Report, WriteRule

#: the skip-existing manifest: what it recorded for these outputs made by this pipeline (digest), if anything
ManifestLookup = Callable[[Sequence[str], str], "Expected | None"]
#: what imgsrv recorded writing at these paths
OwnedLookup = Callable[[Sequence[str]], "dict[str, Owned]"]


#: the image the plan judges the work budget on: a pipeline over it for even a megapixel is refused at once
REFERENCE_SIZE = (1000, 1000)


def build_pipeline(operations: Sequence[Operation | None], metadata: str, max_pixels: int,
                   field: str = "operations", planes: bool = True, budget: Budget | None = None,
                   max_outputs: int | None = None) -> Pipeline:
    """The pipeline of a request's validated operations (None: one turned off, ``split=False``).

    Refused at once (422 naming the operation): results that can never fit the pixel limit,
    a fan-out to more than ``max_outputs`` images, and, with a ``budget``, images the
    operations make that are over it whatever the input, and operations that would be over
    its work for even a one-megapixel image. What depends on the image is checked once its
    header is read (Pipeline.refusal).
    """
    outputs = 1
    for i, op in enumerate(operations):
        if op is None:
            continue
        size = op.fixed_size()
        if size is not None and size[0] * size[1] > max_pixels:
            raise InvalidRequest(f"{op.op} to {size[0]}x{size[1]} makes more than the limit of "
                                 f"{max_pixels} pixels", f"{field}[{i}]")
        outputs *= op.fanout()
        if max_outputs is not None and outputs > max_outputs:
            raise InvalidRequest(f"the splits up to here make {outputs} outputs of every image, more than "
                                 f"IMGSRV_MAX_OUTPUTS ({max_outputs})", f"{field}[{i}]")
        if budget is not None and size is not None and outputs * size[0] * size[1] > budget.max_output_pixels:
            raise InvalidRequest(f"{outputs} images of {size[0]}x{size[1]} make more than IMGSRV_MAX_OUTPUT_PIXELS "
                                 f"({budget.max_output_pixels}) pixels", f"{field}[{i}]")
    pipeline = Pipeline.of(operations, metadata, planes, budget)
    if budget is not None:
        counted = 0  # the first operation that makes the reference image go over the work budget
        for i, op in enumerate(operations):
            counted += op is not None and not isinstance(op, Encode)
            problem = pipeline.estimate(*REFERENCE_SIZE, counted).over_work(budget)
            if op is not None and problem:
                raise InvalidRequest(f"{problem} for even a {REFERENCE_SIZE[0]}x{REFERENCE_SIZE[1]} image",
                                     f"{field}[{i}]")
    return pipeline


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
    """Plans images: inputs under the data root, outputs under the output root, neither in the
    sealed state folder; one pixel budget; the skip-existing manifest and the record of what
    imgsrv wrote (the overwrite policy ``own``)."""

    def __init__(self, root: str, max_pixels: int, manifest: ManifestLookup | None = None, *,
                 output_root: str | None = None, state_dir: str | None = None, owned: OwnedLookup | None = None,
                 max_answer_bytes: int | None = None, max_input_bytes: int | None = None):
        self.root = root
        self.output_root = output_root or root
        self.state_dir = state_dir
        self.max_pixels = max_pixels
        self.max_input_bytes = max_input_bytes
        self.max_answer_bytes = max_answer_bytes
        self.manifest = manifest
        self.owned = owned

    def input_path(self, path: str, field: str) -> str:
        return resolve(self.root, path, field, sealed=self.state_dir)

    def output_path(self, path: str, field: str) -> str:
        return resolve(self.root, path, field, within=self.output_root, sealed=self.state_dir)

    def write_rule(self, outputs: Sequence[str], overwrite: Overwrite, job: str | None = None) -> WriteRule:
        """The overwrite policy of these outputs, with what imgsrv recorded writing there."""
        if overwrite != Overwrite.OWN or self.owned is None:
            return WriteRule(overwrite)
        found = self.owned(outputs)
        return WriteRule(overwrite, tuple(found.get(p) for p in outputs), job)

    def image(self, index: int, inp: str, out: str, pipeline: Pipeline, field: str, *,
              skip_existing: bool = False, sync: bool = True, overwrite: Overwrite = Overwrite.OWN,
              job: str | None = None, temp_tag: str = "") -> PlannedImage:
        """Plan one image (blocking file-system look-ups); RequestError naming ``field.input`` or
        ``field.output`` for a path that cannot be used."""
        at = f"{field}." if field else ""
        in_real = self.input_path(inp, f"{at}input")
        fmt = output_format(out, f"{at}output")
        out_real = self.output_path(out, f"{at}output")
        if out_real == in_real:
            raise InvalidRequest("the output is the input; imgsrv never overwrites an input", f"{at}output")
        shape = pipeline.fanout_shape
        reals = tuple(output_names(out_real, shape))
        task = ImageTask(in_real, reals, pipeline, self.max_pixels, sync=sync, rule=self.write_rule(reals, overwrite, job),
                         format=fmt, temp_tag=temp_tag, max_input_bytes=self.max_input_bytes)
        if skip_existing and self.manifest is not None:
            found = self.manifest(task.outputs, pipeline.digest())
            if found is not None:
                task = replace(task, expected=found)
        return PlannedImage(index, inp, out, output_names(out, shape), task)

    def images(self, pairs: Sequence[tuple[str, str]], pipeline: Pipeline, field: str = "images", *,
               skip_existing: bool = False, overwrite: Overwrite = Overwrite.OWN) -> list[PlannedImage]:
        """Plan a request's (input, output) pairs; refuses the whole request on the first problem,
        two images writing one file among them, or an image writing another's input."""
        planned: list[PlannedImage] = []
        writers: dict[str, int] = {}
        inputs: dict[str, int] = {}
        for i, (inp, out) in enumerate(pairs):
            p = self.image(i, inp, out, pipeline, f"{field}[{i}]", skip_existing=skip_existing, overwrite=overwrite)
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

    def job_image(self, index: int, inp: str, out: str, pipeline: Pipeline, *, skip_existing: bool,
                  overwrite: Overwrite = Overwrite.OWN, job: str | None = None, temp_tag: str = "",
                  taken_by: str | None = None, source: str | None = None) -> PlannedImage:
        """Plan one image of a running job: a path that cannot be used fails that image alone
        (an input: ``not_found``; an output: ``write_error``), and so does an output an earlier
        image of the job maps to as well (``taken_by``: ``output_exists``). Outputs are not
        flushed one by one: the job makes each batch durable at once before recording it."""
        names = output_names(out, pipeline.fanout_shape)
        if taken_by is not None:
            return PlannedImage(index, inp, out, names, None, Report.failure(
                ErrorCode.OUTPUT_EXISTS, f"{taken_by} and {inp} both map to the output {out}; the first one keeps it"))
        try:
            planned = self.image(index, inp, out, pipeline, "", skip_existing=skip_existing, sync=False,
                                 overwrite=overwrite, job=job, temp_tag=temp_tag)
        except RequestError as exc:
            code = ErrorCode.NOT_FOUND if exc.field == "input" else ErrorCode.WRITE_ERROR
            return PlannedImage(index, inp, out, names, None, Report.failure(code, exc.message))
        if source is not None and any(os.path.commonpath([source, o]) == source
                                      for o in planned.task.outputs):  # type: ignore[union-attr]
            return PlannedImage(index, inp, out, names, None, Report.failure(
                ErrorCode.WRITE_ERROR, f"the output {out} leads into the source folder (through a link): a job "
                                       "never writes among its inputs"))
        return planned

    def folder_job(self, source_dir: str, recursive: bool, output_dir: str) -> None:
        """Check a folder job's folders (RequestError naming ``source.dir`` or ``output_dir``)."""
        folder = self.input_path(source_dir, "source.dir")
        if not os.path.isdir(folder):
            raise InvalidRequest("the source folder does not exist or is not a folder", "source.dir")
        out_real = self.output_path(output_dir, "output_dir")
        if out_real == folder:
            raise InvalidRequest("output_dir is the source folder; imgsrv never overwrites an input", "output_dir")
        if os.path.commonpath([folder, out_real]) == folder:
            raise InvalidRequest("output_dir lies inside the source folder: outputs could be taken for inputs, "
                                 "or replace them", "output_dir")
        if os.path.commonpath([folder, out_real]) == out_real:
            raise InvalidRequest("the source folder lies inside output_dir: outputs could replace inputs",
                                 "output_dir")

    def compare(self, a: str, b: str, output: str | None, fuzz: float,
                overwrite: Overwrite = Overwrite.OWN) -> CompareTask:
        """Plan a comparison of two images, writing the difference to ``output`` when given."""
        a_real = self.input_path(a, "a")
        b_real = self.input_path(b, "b")
        if output is None:
            return CompareTask(a_real, b_real, None, fuzz, self.max_pixels, max_input_bytes=self.max_input_bytes)
        fmt = output_format(output, "output")
        out_real = self.output_path(output, "output")
        if out_real in (a_real, b_real):
            raise InvalidRequest("the output is one of the inputs; imgsrv never overwrites an input", "output")
        return CompareTask(a_real, b_real, out_real, fuzz, self.max_pixels, self.write_rule([out_real], overwrite),
                           fmt, self.max_input_bytes)

    def upload(self, data: bytes, pipeline: Pipeline, fmt: Format | None) -> RenderTask:
        """Plan an uploaded image's run (``fmt`` None: the input's own format)."""
        return RenderTask(data, pipeline, fmt, self.max_pixels, self.max_answer_bytes)

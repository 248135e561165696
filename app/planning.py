"""From a validated request to tasks: paths resolved under the data root, output names,
and the checks that refuse a whole request before anything is written."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidRequest
from .imaging.codec import FORMATS
from .operations import Operation
from .operations.geometry import Resize
from .pipeline import Pipeline
from .storage import output_names, resolve
from .worker import Task


@dataclass
class PlannedImage:
    index: int
    input: str  # as the request spelled it
    output: str
    outputs: list[str]  # output names, spelled like the request's output
    task: Task


def build_pipeline(operations: Sequence[Operation | None], metadata: str, max_pixels: int,
                   field: str = "operations") -> Pipeline:
    """Drop operations turned off (``split=False``) and refuse results that can never fit the pixel budget."""
    for i, op in enumerate(operations):
        if isinstance(op, Resize) and op.width and op.height and op.fit != "contain":
            if op.width * op.height > max_pixels:
                raise InvalidRequest(f"resize to {op.width}x{op.height} makes more than the limit of "
                                     f"{max_pixels} pixels", f"{field}[{i}]")
    return Pipeline(tuple(op for op in operations if op is not None), metadata)


def check_output_format(output: str, field: str) -> str:
    ext = os.path.splitext(output)[1].lower()
    if ext not in FORMATS:
        raise InvalidRequest(f"the output's extension {ext or '(none)'!s} is not one of "
                             f"{', '.join(sorted(FORMATS))}", field)
    return FORMATS[ext]


def plan_images(pairs: Sequence[tuple[str, str]], pipeline: Pipeline, root: str, max_pixels: int,
                field: str = "images", planes: bool = True) -> list[PlannedImage]:
    """Resolve every path; refuse the request (InvalidRequest / PathOutsideRoot) on the first problem."""
    shape = pipeline.fanout_shape
    planned: list[PlannedImage] = []
    writers: dict[str, int] = {}
    inputs: dict[str, int] = {}
    for i, (inp, out) in enumerate(pairs):
        in_real = resolve(root, inp, f"{field}[{i}].input")
        check_output_format(out, f"{field}[{i}].output")
        out_real = resolve(root, out, f"{field}[{i}].output")
        if out_real == in_real:
            raise InvalidRequest("the output is the input; imgsrv never overwrites an input", f"{field}[{i}].output")
        names = output_names(out, shape)
        reals = output_names(out_real, shape)
        for name, real in zip(names, reals):
            if real in writers:
                raise InvalidRequest(f"{field}[{writers[real]}] and {field}[{i}] would both write {name!r}",
                                     f"{field}[{i}].output")
            writers[real] = i
        inputs.setdefault(in_real, i)
        planned.append(PlannedImage(i, inp, out, names, Task(in_real, tuple(reals), pipeline, max_pixels,
                                                                       planes=planes)))
    for real, i in writers.items():
        if real in inputs:
            raise InvalidRequest(f"{field}[{i}] would overwrite the input of {field}[{inputs[real]}]",
                                 f"{field}[{i}].output")
    return planned

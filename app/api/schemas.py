"""Request and response bodies of the HTTP API (the contract of SPEC.md)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema as cs

from ..errors import ErrorCode
from ..formats import Format, parse_format
from ..operations import AnyOperation, OPERATIONS, tokenize
from ..tasks import JobStatus, Overwrite, Status, Totals, compression_ratio


class _StringOrObject:
    """JSON schema of an operation item: the string form or one of the operation objects."""

    def __get_pydantic_json_schema__(self, schema: cs.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        objects = handler(schema)
        # The nullable wrapper is internal (an operation turned off with NAME=False); JSON never sends null.
        if "anyOf" in objects:
            objects = next(s for s in objects["anyOf"] if s.get("type") != "null")
        return {"anyOf": [
            {"type": "string", "title": "string form",
             "description": "NAME, NAME=SHORTHAND or NAME=key:value,... (" + ", ".join(OPERATIONS) + ")",
             "examples": ["resize=0.5", "crop=bottom:100", "faces=blur"]},
            objects]}


#: operations one request may list, on every route
MAX_OPERATIONS = 100

OperationItem = Annotated[AnyOperation | None, BeforeValidator(tokenize), _StringOrObject()]


class ImageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1, description="input path, relative to the data root or absolute inside it")
    output: str = Field(min_length=1,
                        description="output path; its extension (.jpg .png .webp .tif .bmp) sets the format")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skip_existing: bool = Field(False, description="skip images whose outputs were made from the same bytes "
                                                   "by the same operations")
    metadata: Literal["keep", "strip"] = Field("keep", description="carry a JPEG input's EXIF into JPEG outputs")
    overwrite: Overwrite = Field(Overwrite.OWN, description="a file already at an output path: 'own' replaces only "
                                                            "one imgsrv wrote and that is unchanged since, 'never' "
                                                            "none, 'always' any; a protected file fails that image "
                                                            "with output_exists")


PROCESS_EXAMPLE = {
    "images": [
        {"input": "testimages/cyclo1.jpg", "output": "testoutput/cyclo1_processed.jpg"},
        {"input": "testimages/cyclo2.jpg", "output": "testoutput/cyclo2_processed.png"},
    ],
    "operations": ["splitQuadrants=True", "resize=2", {"op": "blur", "kernel": 5}],
}


class ProcessRequest(BaseModel):
    """Images and the operations applied, in order, to each of them."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PROCESS_EXAMPLE]})

    images: list[ImageSpec] = Field(min_length=1)
    operations: list[OperationItem] = Field(default_factory=list, max_length=MAX_OPERATIONS)
    options: Options = Field(default_factory=Options)


class Face(BaseModel):
    x: int
    y: int
    width: int
    height: int


class OutputResult(BaseModel):
    path: str
    width: int
    height: int
    bytes: int
    faces: list[Face] | None = Field(None, exclude_if=lambda v: v is None,
                                     description="present when a faces operation ran on the way")


class ErrorInfo(BaseModel):
    code: ErrorCode
    message: str


class ImageResult(BaseModel):
    input: str
    status: Status
    input_bytes: int
    outputs: list[OutputResult]
    error: ErrorInfo | None
    elapsed_ms: float


class Summary(BaseModel):
    images: int
    succeeded: int
    failed: int
    skipped: int
    outputs: int
    input_bytes: int
    output_bytes: int
    compression_ratio: float | None = Field(description="output bytes over input bytes of the succeeded images")
    elapsed_ms: float

    @classmethod
    def of(cls, totals: Totals, elapsed_ms: float) -> "Summary":
        return cls(**asdict(totals), compression_ratio=compression_ratio(totals.output_bytes, totals.input_bytes),
                   elapsed_ms=round(elapsed_ms, 3))


class ProcessResponse(BaseModel):
    results: list[ImageResult]
    summary: Summary


class PlannedImageModel(BaseModel):
    input: str
    output: str
    outputs: list[str]


class PlanResponse(BaseModel):
    operations: list[dict[str, Any]] = Field(description="the normalised operations, every parameter explicit")
    images: list[PlannedImageModel]
    outputs: int = Field(description="number of files the request would write")


class OperationInfo(BaseModel):
    name: str
    summary: str
    description: str
    examples: list[str]
    fans_out: bool
    schema_: dict[str, Any] = Field(alias="schema", serialization_alias="schema")

    model_config = ConfigDict(populate_by_name=True)


class OperationsResponse(BaseModel):
    operations: list[OperationInfo]


class Health(BaseModel):
    status: Literal["ok"]
    executor: str
    workers: int
    version: str


# -- jobs -------------------------------------------------------------------------------------

def _format_name(v: Any) -> Any:
    return (parse_format(v) or v) if isinstance(v, str) else v


OutputFormat = Annotated[Format, BeforeValidator(_format_name)]


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: str = Field(description="folder of input images, under the data root")
    pattern: str = Field("*", description="glob on file names, e.g. *.JPG (case-sensitive)")
    recursive: bool = Field(False, description="also take images in sub-folders (mirrored under output_dir)")


class JobOptions(Options):
    skip_existing: bool = Field(True, description="skip images whose outputs are up to date (default for jobs)")


JOB_EXAMPLE = {
    "source": {"dir": "testimages", "pattern": "*.jpg", "recursive": False},
    "output_dir": "testoutput/job", "output_format": None,
    "operations": ["crop=bottom:40", "redact=0,-60,120,60"],
}


class JobRequest(BaseModel):
    """A batch: the /process body (``images``) or a folder (``source`` + ``output_dir``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [JOB_EXAMPLE]})

    images: list[ImageSpec] | None = Field(None, min_length=1)
    source: SourceSpec | None = None
    output_dir: str | None = Field(None, description="each input DIR/REL is written to OUTPUT_DIR/REL")
    output_format: OutputFormat | None = Field(None, description="change the outputs' format and extension")
    operations: list[OperationItem] = Field(default_factory=list, max_length=MAX_OPERATIONS)
    options: JobOptions = Field(default_factory=JobOptions)

    @model_validator(mode="after")
    def _images_or_source(self) -> "JobRequest":
        if (self.images is None) == (self.source is None):
            raise ValueError("give either images or a source folder")
        if self.source is not None and not self.output_dir:
            raise ValueError("a source folder needs an output_dir")
        if self.images is not None and (self.output_dir or self.output_format):
            raise ValueError("output_dir and output_format go with a source folder; images name their outputs")
        return self


class JobLinks(BaseModel):
    self: str
    results: str


class JobCreated(BaseModel):
    id: str
    status: JobStatus
    links: JobLinks


class JobInfo(BaseModel):
    id: str
    status: JobStatus
    created_by: str | None = Field(None, description="the name of the API key that made the job")
    total: int
    done: int
    succeeded: int
    failed: int
    skipped: int
    progress: float = Field(description="done / total, 0..1")
    images_per_second: float | None
    eta_seconds: float | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    summary: Summary
    error: str | None = None
    links: JobLinks


class JobList(BaseModel):
    jobs: list[JobInfo]


class JobResults(BaseModel):
    job_id: str
    offset: int
    limit: int
    total: int = Field(description="results matching the filter")
    results: list[ImageResult]


# -- compare ----------------------------------------------------------------------------------

class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"examples": [
        {"a": "testimages/coffee.jpg", "b": "testimages/coffee_redacted.jpg", "output": "testoutput/diff.png",
         "fuzz": 10}]})

    a: str = Field(description="first image")
    b: str = Field(description="second image, same size as the first")
    output: str | None = Field(None, description="where to write the diff image (changed pixels in red)")
    fuzz: float = Field(10.0, ge=0, le=100, description="colour distance, in percent of 255, below which pixels "
                                                        "count as equal (ImageMagick -fuzz)")
    overwrite: Overwrite = Field(Overwrite.OWN, description="a file already at output: as options.overwrite of "
                                                            "/process")


class CompareResponse(BaseModel):
    width: int
    height: int
    different_pixels: int
    different_fraction: float = Field(description="different_pixels / (width * height)")
    mean_abs_diff: float = Field(description="mean absolute difference over pixels and channels, 0..255")
    output: str | None = None
    output_bytes: int | None = None

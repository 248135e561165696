"""Request and response bodies of the HTTP API (the contract of SPEC.md)."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema as cs

from ..operations import AnyOperation, OPERATIONS, tokenize


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


OperationItem = Annotated[AnyOperation | None, BeforeValidator(tokenize), _StringOrObject()]


class ImageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(description="input path, relative to the data root or absolute inside it")
    output: str = Field(description="output path; its extension (.jpg .png .webp .tif .bmp) sets the format")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skip_existing: bool = Field(False, description="skip images whose outputs were made from the same bytes "
                                                   "by the same operations")
    metadata: Literal["keep", "strip"] = Field("keep", description="carry a JPEG input's EXIF into JPEG outputs")


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
    operations: list[OperationItem] = Field(default_factory=list, max_length=100)
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
    code: Literal["not_found", "decode_error", "too_large", "invalid_operation", "write_error",
                  "worker_crashed", "timeout"]
    message: str


class ImageResult(BaseModel):
    input: str
    status: Literal["ok", "skipped", "error"]
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

"""Domain errors, each with a machine-readable code. HTTP statuses are mapped in one place
(app.api.errors); nothing here knows about HTTP."""
from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why one image failed: the ``error.code`` of its result."""

    NOT_FOUND = "not_found"
    DECODE_ERROR = "decode_error"
    TOO_LARGE = "too_large"
    INVALID_OPERATION = "invalid_operation"
    WRITE_ERROR = "write_error"
    OUTPUT_EXISTS = "output_exists"
    WORKER_CRASHED = "worker_crashed"
    TIMEOUT = "timeout"


class RefusalCode(StrEnum):
    """Why a whole request was refused (nothing was written)."""

    INVALID_REQUEST = "invalid_request"
    FORBIDDEN_PATH = "forbidden_path"
    REQUEST_TOO_LARGE = "request_too_large"
    QUEUE_FULL = "queue_full"
    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    BAD_HOST = "bad_host"


class ImgsrvError(Exception):
    """Base class of every error imgsrv raises on purpose."""

    code: str = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# Per-image errors: they end up in one image's result; the other images go on.


class ImageError(ImgsrvError):
    """Something went wrong with one image."""

    code: ErrorCode


class NotFound(ImageError):
    """The input file does not exist or is not a file."""

    code = ErrorCode.NOT_FOUND


class DecodeError(ImageError):
    """The input could not be decoded as an image."""

    code = ErrorCode.DECODE_ERROR


class TooLarge(ImageError):
    """The image (or a result of the pipeline) has more pixels than allowed."""

    code = ErrorCode.TOO_LARGE


class InvalidOperation(ImageError):
    """An operation cannot be applied to this particular image (crop box outside it, ...)."""

    code = ErrorCode.INVALID_OPERATION


class WriteError(ImageError):
    """An output could not be encoded or written."""

    code = ErrorCode.WRITE_ERROR


class OutputExists(ImageError):
    """A file is at an output path and the overwrite policy protects it."""

    code = ErrorCode.OUTPUT_EXISTS


# Request errors: the whole request is refused and nothing is written.


class RequestError(ImgsrvError):
    """The request as a whole is refused; ``field`` names the part of it that is at fault."""

    code: RefusalCode

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class InvalidRequest(RequestError):
    """The request is well-formed JSON but asks for something impossible."""

    code = RefusalCode.INVALID_REQUEST


class PathOutsideRoot(RequestError):
    """A path leads outside the data root."""

    code = RefusalCode.FORBIDDEN_PATH


class TooManyImages(RequestError):
    """More images (or bytes) than one request may carry."""

    code = RefusalCode.REQUEST_TOO_LARGE


class QueueFull(RequestError):
    """The worker queue is full; retry later."""

    code = RefusalCode.QUEUE_FULL

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class Unauthorized(RequestError):
    """No API key, a malformed one, or a wrong one."""

    code = RefusalCode.UNAUTHORIZED


class BadHost(RequestError):
    """The Host header names a host the service does not answer to."""

    code = RefusalCode.BAD_HOST


class UnknownResource(RequestError):
    """A resource named in the URL (a job id) does not exist."""

    code = RefusalCode.NOT_FOUND

"""Domain errors. Each carries a machine-readable code; HTTP statuses are mapped in one place (app.api.errors)."""
from __future__ import annotations


class ImgsrvError(Exception):
    """Base class of every error imgsrv raises on purpose."""

    code = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# Per-image errors: they end up in one image's result; the other images go on.


class ImageError(ImgsrvError):
    """Something went wrong with one image."""


class NotFound(ImageError):
    """The input file does not exist or is not a file."""

    code = "not_found"


class DecodeError(ImageError):
    """The input could not be decoded as an image."""

    code = "decode_error"


class TooLarge(ImageError):
    """The image (or a result of the pipeline) has more pixels than allowed."""

    code = "too_large"


class InvalidOperation(ImageError):
    """An operation cannot be applied to this particular image (crop box outside it, ...)."""

    code = "invalid_operation"


class WriteError(ImageError):
    """An output could not be encoded or written."""

    code = "write_error"


class WorkerCrashed(ImageError):
    """The worker process died while it held the image."""

    code = "worker_crashed"


class TaskTimeout(ImageError):
    """The image took longer than the per-image time limit."""

    code = "timeout"


# Request errors: the whole request is refused and nothing is written.


class RequestError(ImgsrvError):
    """The request as a whole is refused."""

    status_code = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class InvalidRequest(RequestError):
    """The request is well-formed JSON but asks for something impossible."""

    code = "invalid_request"
    status_code = 422


class PathOutsideRoot(RequestError):
    """A path leads outside the data root."""

    code = "forbidden_path"
    status_code = 403


class TooManyImages(RequestError):
    """More images (or bytes) than one request may carry."""

    code = "request_too_large"
    status_code = 413


class QueueFull(RequestError):
    """The worker queue is full; retry later."""

    code = "queue_full"
    status_code = 429

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class NotFoundHTTP(RequestError):
    """A resource named in the URL does not exist."""

    code = "not_found"
    status_code = 404

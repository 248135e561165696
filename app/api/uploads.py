"""Streaming multipart parsing with a size limit, in memory (no temporary files).

Starlette's ``request.form()`` spools large files to temporary files and only knows the
size once everything arrived; here the limit is checked chunk by chunk as the body
streams in, so an oversized upload is refused (413) as soon as it crosses the limit,
with or without a Content-Length.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from ..errors import InvalidRequest, TooManyImages

FIELD_LIMIT = 1 << 20  # bytes for a non-file field (the operations' JSON)


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytearray = field(default_factory=bytearray)


async def read_form(request: Request, file_limit: int, max_parts: int = 1000) -> dict[str, list[Part]]:
    """The parts of a multipart/form-data body by name (a name may repeat, as an array field
    does); 413 as soon as a part or the body is too large, or the form has more than
    ``max_parts`` parts."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise InvalidRequest("send multipart/form-data with a 'file' field", "body")
    body_limit = file_limit + 4 * FIELD_LIMIT
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > body_limit:
        raise TooManyImages(f"the upload is {int(length)} bytes; at most {file_limit} bytes are accepted")

    parts: dict[str, list[Part]] = {}
    headers: dict[bytes, bytes] = {}
    name_buf, value_buf = bytearray(), bytearray()
    current: list[Part] = []
    problem: list[Exception] = []
    count = [0]

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        name_buf.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value_buf.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(name_buf).lower()] = bytes(value_buf)
        name_buf.clear()
        value_buf.clear()

    def on_headers_finished() -> None:
        _disp, opts = parse_options_header(headers.get(b"content-disposition", b""))
        name = opts.get(b"name", b"").decode("utf-8", "replace")
        filename = opts.get(b"filename")
        part = Part(name, filename.decode("utf-8", "replace") if filename is not None else None,
                    headers.get(b"content-type", b"").decode("latin-1") or None)
        current[:] = [part]
        parts.setdefault(name, []).append(part)
        count[0] += 1
        if count[0] > max_parts and not problem:
            problem.append(TooManyImages(f"the form has more than {max_parts} parts; an upload needs its file, "
                                         f"its format and at most {max_parts - 2} operations"))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = current[0]
        part.data.extend(data[start:end])
        limit = file_limit if part.filename is not None or part.name == "file" else FIELD_LIMIT
        if len(part.data) > limit and not problem:
            problem.append(TooManyImages(f"the field '{part.name}' is larger than {limit} bytes"))

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data})
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > body_limit:
                raise TooManyImages(f"the upload is larger than {file_limit} bytes")
            parser.write(chunk)
            if problem:
                raise problem[0]
        parser.finalize()
    except (TooManyImages, InvalidRequest):
        raise
    except Exception as exc:
        raise InvalidRequest(f"the multipart body cannot be read: {exc}", "body") from None
    return parts

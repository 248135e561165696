"""The image formats imgsrv writes: their names, the file extensions and aliases that choose
them, and their content types. One definition for the API, the planner, the CLI and the codec."""
from __future__ import annotations

import os
from enum import StrEnum


class Format(StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    TIFF = "tiff"
    BMP = "bmp"


#: an output's extension (lower case) chooses its format
BY_EXTENSION: dict[str, Format] = {".jpg": Format.JPEG, ".jpeg": Format.JPEG, ".png": Format.PNG,
                                   ".webp": Format.WEBP, ".tif": Format.TIFF, ".tiff": Format.TIFF,
                                   ".bmp": Format.BMP}
#: the extension imgsrv gives a file of each format it names itself (job outputs, uploads' results)
EXTENSION: dict[Format, str] = {Format.JPEG: ".jpg", Format.PNG: ".png", Format.WEBP: ".webp",
                                Format.TIFF: ".tif", Format.BMP: ".bmp"}
CONTENT_TYPE: dict[Format, str] = {Format.JPEG: "image/jpeg", Format.PNG: "image/png", Format.WEBP: "image/webp",
                                   Format.TIFF: "image/tiff", Format.BMP: "image/bmp"}
#: other spellings of a format's name: ``jpg``, ``tif`` (and any of them with a leading dot)
ALIASES: dict[str, Format] = {"jpg": Format.JPEG, "tif": Format.TIFF}

#: what ``POST /render`` may answer (a browser shows these)
RENDER_FORMATS: tuple[Format, ...] = (Format.JPEG, Format.PNG, Format.WEBP)


def format_of_path(path: str) -> Format | None:
    """The format an output path's extension chooses; None for an extension imgsrv does not write."""
    return BY_EXTENSION.get(os.path.splitext(path)[1].lower())


def parse_format(name: str) -> Format | None:
    """A format's name or alias, any case, with or without a leading dot: ``JPG``, ``.png``; None if unknown."""
    key = name.strip().lower().lstrip(".")
    if key in ALIASES:
        return ALIASES[key]
    try:
        return Format(key)
    except ValueError:
        return None


def extensions_listed() -> str:
    """The extensions that choose a format, for error messages."""
    return ", ".join(sorted(BY_EXTENSION))

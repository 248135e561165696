"""The fast JPEG header reader agrees with Pillow on every kind of JPEG."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from app.errors import DecodeError, TooLarge
from app.imaging import codec
from tests import images


def _jpegs(tmp_path):
    out = {name: images.testimage(name).read_bytes()
           for name in ("astronaut.jpg", "coffee.jpg", "chelsea.jpg", "grace_hopper.jpg", "coffee_redacted.jpg")}
    for o in range(1, 9):
        out[f"exif-{o}"] = images.exif_jpeg(tmp_path, o).read_bytes()
    with Image.open(images.testimage("camera.png")) as im:
        for name, kw in {"gray": {}, "progressive": {"progressive": True}, "cmyk": {}}.items():
            buf = io.BytesIO()
            (im.convert("CMYK") if name == "cmyk" else im.convert("L")).save(buf, "JPEG", **kw)
            out[name] = buf.getvalue()
    return out


def test_the_fast_reader_and_pillow_agree(tmp_path):
    for name, data in _jpegs(tmp_path).items():
        fast = codec._probe_jpeg(data)
        assert fast is not None, name
        assert fast == codec._probe_pillow(data), name


def test_a_header_bomb_is_refused_from_the_markers(tmp_path):
    data = images.jpeg_bomb(tmp_path).read_bytes()
    assert codec._probe_jpeg(data).width == 50000
    with pytest.raises(TooLarge):
        codec.probe(data, 100_000_000)


def test_markers_it_cannot_follow_fall_back_to_pillow(tmp_path):
    assert codec._probe_jpeg(b"\xff\xd8\xff\xe0\x00") is None
    data = images.jpeg_header_only(tmp_path).read_bytes()  # cut inside the header
    assert codec._probe_jpeg(data) is None
    with pytest.raises(DecodeError):  # Pillow's verdict, as before the fast path existed
        codec.probe(data, 100_000_000)

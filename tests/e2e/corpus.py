"""The bad-input corpus: ONE table of hostile, broken and odd requests with the answer the
README documents for each (its "Errors" table and its input policy).

Every case is generated here (nothing is downloaded) and has:

- ``name``: a short id (the pytest id and the first column of the summary table);
- ``what``: one line saying what is sent;
- ``build(ctx)``: makes the files it needs in its own folder ``ctx.dir`` under the data root
  (or beside it, in ``ctx.outside``) before anything is measured; None when nothing is needed;
- ``request(ctx)``: the request (``Req``: path, JSON body or raw bytes);
- ``status``: the documented HTTP status;
- ``code``: for a 200, the per-image outcome every image must have (``ok`` or an error code:
  ``not_found``, ``decode_error``, ``too_large``, ``write_error`` ...); for a 4xx, the field the
  answer must name (``images[0].input``, ``operations[0].scale``, ``body``);
- ``writes(ctx)``: the files the request may create (relative to the data root); nothing else
  under the data root may appear, change or disappear. Empty for every refused or failed image;
- ``check(ctx, response)``: extra assertions (first frame picked, image upright, nothing decoded:
  ``ctx.cost``, what the request cost the server, is measured around it).

``tests/e2e/test_bad_input_corpus.py`` runs every case against a real server.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from tests import images as gen
from tests.environment import needs_privilege

GOOD = "testimages/cyclo1.jpg"  # 451x300


@dataclass(frozen=True)
class Cost:
    """What one request cost the server, measured by the test around it: CPU time of the pool's
    workers and of the server process (10 ms clock ticks), and how far the workers' peak resident
    memory (VmHWM) rose. Unlike wall time, none of them grows when the machine is busy."""

    worker_cpu_ms: float
    server_cpu_ms: float
    worker_peak_rise_mb: float


@dataclass
class Ctx:
    """Where one case lives: ``root`` the data root, ``dir`` its folder (relative to the root),
    ``outside`` a folder beside the data root (a target for escapes); ``cost`` is set once the
    request was answered."""

    root: Path
    dir: str
    outside: Path
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    cost: Cost | None = None

    def p(self, name: str = "") -> Path:
        return self.root / self.dir / name if name else self.root / self.dir

    def r(self, name: str) -> str:
        return f"{self.dir}/{name}"


@dataclass(frozen=True)
class Req:
    path: str = "/process"
    json: Any = None
    content: bytes | None = None  # raw body (not JSON, or JSON with NaN / Infinity)
    timeout: float = 20.0


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    build: Callable[[Ctx], None] | None
    request: Callable[[Ctx], Req]
    status: int
    code: str
    writes: Callable[[Ctx], set[str]] | None = None
    check: Callable[[Ctx, Any], None] | None = None


# --- helpers to build requests -----------------------------------------------------------------


def one(inp, out, ops=("grayscale",), **extra) -> Callable[[Ctx], Req]:
    """A /process request of one image; ``inp``/``out`` are strings or functions of the ctx."""
    def make(ctx: Ctx) -> Req:
        i = inp(ctx) if callable(inp) else inp
        o = out(ctx) if callable(out) else out
        return Req(json={"images": [{"input": i, "output": o}], "operations": list(ops), **extra})
    return make


def body(make_body: Callable[[Ctx], Any], path: str = "/process") -> Callable[[Ctx], Req]:
    return lambda ctx: Req(path=path, json=make_body(ctx))


def raw_ops(ops_text: str) -> Callable[[Ctx], Req]:
    """A body whose operations are raw JSON text (NaN, Infinity are not JSON; Python's parser and
    FastAPI accept them, so the models must refuse them)."""
    def make(ctx: Ctx) -> Req:
        images = json.dumps([{"input": GOOD, "output": ctx.r("x.jpg")}])
        return Req(content=f'{{"images": {images}, "operations": {ops_text}}}'.encode())
    return make


def out_x(ctx: Ctx) -> str:
    return ctx.r("x.jpg")


def local(name: str) -> Callable[[Ctx], str]:
    return lambda ctx: ctx.r(name)


# --- builders ----------------------------------------------------------------------------------


def copy_good(name: str = "in.jpg") -> Callable[[Ctx], None]:
    return lambda ctx: shutil.copyfile(ctx.root / GOOD, ctx.p(name))


def large_jpeg(ctx: Ctx, name: str = "large.jpg", w: int = 800, h: int = 600) -> None:
    """800x600 = 480,000 pixels: scaled 16 times it would be 122.9 Mpx, over the 100 Mpx budget."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.dstack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)]).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    ctx.p(name).write_bytes(buf.tobytes())


def outside_image(ctx: Ctx) -> Path:
    img = ctx.outside / "outside.jpg"
    if not img.exists():
        shutil.copyfile(ctx.root / GOOD, img)
    return img


def symlink_file_out(ctx: Ctx) -> None:
    ctx.p("escape.jpg").symlink_to(outside_image(ctx))


def symlink_dir_out(ctx: Ctx) -> None:
    outside_image(ctx)
    ctx.p("linkdir").symlink_to(ctx.outside, target_is_directory=True)


def symlink_output_out(ctx: Ctx) -> None:
    ctx.p("out.jpg").symlink_to(ctx.outside / "planted.jpg")  # dangling: it would create a file outside


def fifo(ctx: Ctx) -> None:
    os.mkfifo(ctx.p("fifo.jpg"))


def char_device(ctx: Ctx) -> None:
    try:
        os.mknod(ctx.p("zero.jpg"), stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero: endless bytes
    except PermissionError as exc:
        needs_privilege(f"cannot make a device node here (root / CAP_MKNOD): {exc}")


def hardlink_to_input(ctx: Ctx) -> None:
    copy_good("in.jpg")(ctx)
    os.link(ctx.p("in.jpg"), ctx.p("link.jpg"))


def parent_is_file(ctx: Ctx) -> None:
    ctx.p("blocker").write_text("a file where the output folder should be")


def readonly_mount(ctx: Ctx) -> None:
    """A read-only tmpfs as the output folder: writing fails with EROFS even for root."""
    mnt = ctx.p("ro")
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        needs_privilege(f"mount -t tmpfs -o ro is not permitted here (root / CAP_SYS_ADMIN): {res.stderr.strip()}")
    ctx.cleanups.append(lambda: subprocess.run(["umount", "-l", str(mnt)], check=False))


def bmp_bomb(ctx: Ctx) -> None:
    """A BMP header claiming 50000x50000 24-bit pixels, then 64 bytes."""
    w = h = 50000
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    ctx.p("bomb.bmp").write_bytes(b"BM" + struct.pack("<IHHI", 14 + 40 + 64, 0, 0, 54) + info
                                  + b"\x00garbage" * 8)


def gif_bomb(ctx: Ctx) -> None:
    """A GIF whose screen and first frame claim 50000x50000, with a few bytes of LZW data."""
    w = h = 50000
    ctx.p("bomb.gif").write_bytes(b"GIF89a" + struct.pack("<HHBBB", w, h, 0, 0, 0) + b","
                                  + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x08\x02\x4c\x01\x00;")


def png_zeros_bomb(ctx: Ctx) -> None:
    """A VALID PNG of 11000x11000 black RGB pixels (121 Mpx, over the 100 Mpx budget) that
    compresses to about 1.5 MB: decoding it would take 363 MB. Unlike the header-only bombs its
    pixel data is real, so a decoder that runs before the budget check succeeds, slowly."""
    w = h = 11000

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(1)
    row = b"\x00" * (1 + 3 * w)
    idat = b"".join([comp.compress(row * 100) for _ in range(h // 100)] + [comp.flush()])
    ctx.p("zeros.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                                   + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def bomb_check_named(size: str) -> Callable[[Ctx, Any], None]:
    def check(ctx: Ctx, r) -> None:
        res = r.json()["results"][0]
        assert size in res["error"]["message"], res["error"]
        nothing_decoded(ctx, r)
    return check


# Multi-frame inputs: frames of different colours (and, for TIFF, sizes) so the frame used shows.
FRAME_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]  # RGB: red first


def gif_frames(ctx: Ctx) -> None:
    fr = [Image.new("RGB", (40, 30), c) for c in FRAME_COLOURS]
    fr[0].save(ctx.p("anim.gif"), save_all=True, append_images=fr[1:], duration=100, loop=0)


def webp_frames(ctx: Ctx) -> None:
    fr = [Image.new("RGB", (40, 30), c) for c in FRAME_COLOURS]
    fr[0].save(ctx.p("anim.webp"), save_all=True, append_images=fr[1:], duration=100, loop=0, lossless=True)


def tiff_pages(ctx: Ctx) -> None:
    fr = [Image.new("RGB", size, c) for size, c in zip([(40, 30), (80, 60), (20, 10)], FRAME_COLOURS)]
    fr[0].save(ctx.p("pages.tif"), save_all=True, append_images=fr[1:])


def first_frame(out_name: str) -> Callable[[Ctx, Any], None]:
    """The documented policy: the first frame is used. Its size (40x30) and colour (red) show it."""
    def check(ctx: Ctx, r) -> None:
        o = r.json()["results"][0]["outputs"][0]
        assert (o["width"], o["height"]) == (40, 30), f"not the first frame's size: {o}"
        img = cv2.imread(str(ctx.p(out_name)), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[:2] == (30, 40), "the output is not a 40x30 image"
        b, g, rr = img.reshape(-1, 3).mean(axis=0)
        assert rr > 240 and g < 15 and b < 15, f"the output is not the first (red) frame: mean BGR {(b, g, rr)}"
    return check


# Odd but valid PNGs through every operation: 16-bit, palette, RGBA and 8-bit grayscale.
ODD_PNGS = {
    "png16": lambda d: gen.png16(d, "png16.png", width=256, height=8),
    "palette": lambda d: gen.palette_png(d, "palette.png"),
    "rgba": lambda d: gen.rgba_png(d, "rgba.png", size=(64, 48)),
    "gray": lambda d: gen.gray_png(d, "gray.png", source="camera.png"),
}

EVERY_OPERATION = {
    "resize": "resize=0.5",
    "split": "split=True",
    "blur": "blur=5",
    "grayscale": "grayscale",
    "threshold": "threshold=otsu",
    "crop": "crop=2,2,20,10",
    "redact": "redact=x:0,y:0,width:10,height:10,mode:pixelate",
    "rotate": "rotate=90",
    "flip": "flip=horizontal",
    "faces": "faces=blur",
    "encode": "encode=compression:9",
}


def _expected_sizes(op: str, w: int, h: int) -> list[tuple[int, int]]:
    if op == "resize":
        return [(round(w / 2), round(h / 2))]
    if op == "split":
        cw, ch = w // 2, h // 2
        return [(cw, ch), (w - cw, ch), (cw, h - ch), (w - cw, h - ch)]
    if op == "crop":
        return [(min(20, w - 2), min(10, h - 2))]
    if op == "rotate":
        return [(h, w)]
    return [(w, h)]


def _odd_outputs(op: str, kind: str) -> list[str]:
    return [f"out/{kind}_{i}.png" for i in range(4)] if op == "split" else [f"out/{kind}.png"]


def odd_build(ctx: Ctx) -> None:
    for make in ODD_PNGS.values():
        make(ctx.p())


def odd_request(op: str) -> Callable[[Ctx], Req]:
    return lambda ctx: Req(json={"images": [{"input": ctx.r(f"{k}.png"), "output": ctx.r(f"out/{k}.png")}
                                            for k in ODD_PNGS], "operations": [EVERY_OPERATION[op]]})


def odd_writes(op: str) -> Callable[[Ctx], set[str]]:
    return lambda ctx: {ctx.r(o) for k in ODD_PNGS for o in _odd_outputs(op, k)}


def odd_check(op: str) -> Callable[[Ctx, Any], None]:
    def check(ctx: Ctx, r) -> None:
        for kind, res in zip(ODD_PNGS, r.json()["results"]):
            with Image.open(ctx.p(f"{kind}.png")) as im:
                w, h = im.size
            want = _expected_sizes(op, w, h)
            got = [(o["width"], o["height"]) for o in res["outputs"]]
            if op == "resize":
                assert len(got) == 1 and all(abs(a - b) <= 1 for a, b in zip(got[0], want[0])), (kind, got, want)
            else:
                assert got == want, f"{kind} through {op}: outputs {got}, expected {want}"
            for o in res["outputs"]:
                img = cv2.imread(str(ctx.root / o["path"]), cv2.IMREAD_UNCHANGED)
                assert img is not None, f"{o['path']} does not decode"
                assert img.dtype == np.uint8, f"{kind} through {op}: {img.dtype} output"
                assert (img.shape[1], img.shape[0]) == (o["width"], o["height"]), (kind, o, img.shape)
                assert (ctx.root / o["path"]).stat().st_size == o["bytes"]
            if op == "threshold":
                img = cv2.imread(str(ctx.root / res["outputs"][0]["path"]), cv2.IMREAD_UNCHANGED)
                assert set(np.unique(img)) <= {0, 255}, f"{kind}: threshold output is not black and white"
    return check


# EXIF orientation 1..8, for JPEG (EXIF APP1), PNG (eXIf), WebP (EXIF chunk) and TIFF (tag 274).
ORIENT_SIZE = (120, 80)


def orient_build(fmt: str) -> Callable[[Ctx], None]:
    def build(ctx: Ctx) -> None:
        for n in range(1, 9):
            if fmt == "JPEG":
                gen.exif_jpeg(ctx.p(), n, name=f"o{n}.jpg", size=ORIENT_SIZE)
            else:
                gen.oriented_image(ctx.p(), n, fmt, name=f"o{n}{_EXT[fmt]}", size=ORIENT_SIZE)
    return build


_EXT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif"}


def orient_request(fmt: str) -> Callable[[Ctx], Req]:
    return lambda ctx: Req(json={"images": [{"input": ctx.r(f"o{n}{_EXT[fmt]}"), "output": ctx.r(f"up/o{n}.png")}
                                            for n in range(1, 9)]})


def orient_writes(ctx: Ctx) -> set[str]:
    return {ctx.r(f"up/o{n}.png") for n in range(1, 9)}


def orient_check(tolerance: float) -> Callable[[Ctx, Any], None]:
    def check(ctx: Ctx, r) -> None:
        expected = np.asarray(gen.upright_reference(ORIENT_SIZE))[:, :, ::-1].astype(int)  # RGB -> BGR
        for n in range(1, 9):
            got = cv2.imread(str(ctx.p(f"up/o{n}.png")), cv2.IMREAD_COLOR)
            assert got is not None and got.shape == expected.shape, \
                f"orientation {n}: output {None if got is None else got.shape}, expected {expected.shape}"
            diff = np.abs(got.astype(int) - expected).mean()
            assert diff <= tolerance, f"orientation {n}: not upright (mean difference {diff:.1f})"
    return check


# Refusing from a header or a plan costs the workers at most one 10 ms clock tick of CPU and
# 1.4 MB of peak memory, idle or with both cores busy (benchmarks/timing-spread.md). Doing the
# refused work costs far more on any machine: with the pixel limit raised so that it happens,
# decoding the valid 11000x11000 PNG took 1.4 s of the workers' CPU and +700 MB, resizing the
# 800x600 JPEG to 16 times 0.23 s and +358 MB. Neither figure grows when the machine is busy.
NOTHING_DECODED_CPU_MS = 50
NOTHING_DECODED_PEAK_MB = 64


def nothing_decoded(ctx: Ctx, r) -> None:
    """The pool's workers neither decoded the image nor allocated its result: their peak memory
    did not rise by the size of the pixels and they used next to no CPU."""
    c = ctx.cost
    assert c is not None, "the test measures the cost of every request"
    assert c.worker_peak_rise_mb < NOTHING_DECODED_PEAK_MB, (
        f"the workers' peak memory rose by {c.worker_peak_rise_mb:.0f} MB (bound {NOTHING_DECODED_PEAK_MB} MB): "
        "the pixels were decoded or allocated before the budget check")
    assert c.worker_cpu_ms < NOTHING_DECODED_CPU_MS, (
        f"the workers used {c.worker_cpu_ms:.0f} ms of CPU (bound {NOTHING_DECODED_CPU_MS} ms): the image was "
        "decoded or processed before the budget check")


bomb_check = bomb_check_named("50000")  # header-only bombs claiming 50000x50000

# Refusing 100,000 operations by their count costs the server 0-20 ms of CPU, idle or busy (reading
# 1.3 MB of JSON); validating each of them first costs 240 ms more (benchmarks/timing-spread.md).
OPERATIONS_REFUSED_CPU_MS = 100


def operations_not_parsed(ctx: Ctx, r) -> None:
    c = ctx.cost
    assert c is not None, "the test measures the cost of every request"
    assert c.server_cpu_ms < OPERATIONS_REFUSED_CPU_MS, (
        f"refusing the request took {c.server_cpu_ms:.0f} ms of the server's CPU (bound "
        f"{OPERATIONS_REFUSED_CPU_MS} ms): the operations were parsed before their count was checked")
    nothing_decoded(ctx, r)


def answered_within(seconds: float) -> Callable[[Ctx, Any], None]:
    """For a request that would hang: any bound catches a hang, so it is far above a busy machine's."""
    def check(ctx: Ctx, r) -> None:
        assert r.elapsed.total_seconds() < seconds, f"answered in {r.elapsed.total_seconds():.3f} s (bound {seconds} s)"
    return check


def input_unchanged(name: str) -> Callable[[Ctx, Any], None]:
    def check(ctx: Ctx, r) -> None:
        assert ctx.p(name).read_bytes() == (ctx.root / GOOD).read_bytes(), f"{name} was changed"
    return check


def nothing_at(path: str) -> Callable[[Ctx, Any], None]:
    def check(ctx: Ctx, r) -> None:
        assert not os.path.lexists(path), f"{path} was written"
    return check


# --- THE TABLE ---------------------------------------------------------------------------------

NOT_IMAGE = {k: (lambda kind: lambda ctx: gen.not_an_image(ctx.p(), kind, f"{kind}.jpg"))(k)
             for k in gen.NOT_IMAGE_KINDS}

CASES: list[Case] = [
    # body not JSON
    Case("json_truncated", "JSON cut in the middle of an operation object", None,
         lambda ctx: Req(content=b'{"images": [{"input": "testimages/cyclo1.jpg", "output": "'
                         + ctx.r("x.jpg").encode() + b'"}], "operations": ["resize=0.5", {"op": "blur", "ker'),
         422, "body"),
    Case("json_trailing_garbage", "a valid body followed by a stray '}'", None,
         lambda ctx: Req(content=json.dumps({"images": [{"input": GOOD, "output": ctx.r("x.jpg")}]}).encode() + b"}"),
         422, "body"),
    Case("json_empty_body", "an empty body", None, lambda ctx: Req(content=b""), 422, "body"),
    # wrong types
    Case("type_images_string", '"images": a string', None, body(lambda ctx: {"images": GOOD}), 422, "images"),
    Case("type_image_null", '"images": [null]', None, body(lambda ctx: {"images": [None]}), 422, "images[0]"),
    Case("type_input_list", '"input": ["..."]', None,
         body(lambda ctx: {"images": [{"input": [GOOD], "output": out_x(ctx)}]}), 422, "images[0].input"),
    Case("type_operations_object", '"operations": {"op": "blur"}', None,
         body(lambda ctx: {"images": [{"input": GOOD, "output": out_x(ctx)}], "operations": {"op": "blur"}}),
         422, "operations"),
    Case("type_param_string", '{"op": "resize", "width": "wide"}', None,
         one(GOOD, out_x, [{"op": "resize", "width": "wide"}]), 422, "operations[0].width"),
    Case("type_op_name_number", '{"op": 5}', None, one(GOOD, out_x, [{"op": 5}]), 422, "operations[0]"),
    Case("type_options_string", '"options": "fast"', None,
         body(lambda ctx: {"images": [{"input": GOOD, "output": out_x(ctx)}], "options": "fast"}), 422, "options"),
    # unknown operation
    Case("unknown_op_string", '"emboss=3"', None, one(GOOD, out_x, ["emboss=3"]), 422, "operations[0]"),
    Case("unknown_op_object", '["grayscale", {"op": "emboss"}]', None,
         one(GOOD, out_x, ["grayscale", {"op": "emboss"}]), 422, "operations[1]"),
    # out of range
    Case("range_scale_16_5", '"resize=16.5" (max 16)', None, one(GOOD, out_x, ["resize=16.5"]), 422,
         "operations[0].scale"),
    Case("range_angle_45", '{"op": "rotate", "angle": 45}', None, one(GOOD, out_x, [{"op": "rotate", "angle": 45}]),
         422, "operations[0].angle"),
    Case("range_quality_0", '"quality=0"', None, one(GOOD, out_x, ["quality=0"]), 422, "operations[0].quality"),
    Case("range_split_65", '"split=65x2" (max 64)', None, one(GOOD, out_x, ["split=65x2"]), 422, "operations[0].rows"),
    Case("range_sigma_negative", '"blur=kernel:0,sigma:-1"', None, one(GOOD, out_x, ["blur=kernel:0,sigma:-1"]),
         422, "operations[0].sigma"),
    # NaN and Infinity (raw JSON text)
    Case("nan_scale_object", '{"op": "resize", "scale": NaN} (raw text)', None,
         raw_ops('[{"op": "resize", "scale": NaN}]'), 422, "operations[0].scale"),
    Case("inf_sigma_object", '{"op": "blur", "kernel": 0, "sigma": Infinity} (raw text)', None,
         raw_ops('[{"op": "blur", "kernel": 0, "sigma": Infinity}]'), 422, "operations[0].sigma"),
    Case("nan_crop_x_object", '{"op": "crop", "x": NaN, ...} (raw text, int field)', None,
         raw_ops('[{"op": "crop", "x": NaN, "y": 0, "width": 5, "height": 5}]'), 422, "operations[0].x"),
    Case("neg_inf_scale_string", '"resize=-Infinity"', None, one(GOOD, out_x, ["resize=-Infinity"]), 422,
         "operations[0].scale"),
    Case("nan_sigma_string", '"blur=kernel:0,sigma:NaN"', None, one(GOOD, out_x, ["blur=kernel:0,sigma:NaN"]), 422,
         "operations[0].sigma"),
    # misspelled names
    Case("misspelled_kernal", '{"op": "blur", "kernal": 5}', None, one(GOOD, out_x, [{"op": "blur", "kernal": 5}]),
         422, "operations[0].kernal"),
    Case("misspelled_botom", '"crop=botom:100"', None, one(GOOD, out_x, ["crop=botom:100"]), 422,
         "operations[0].botom"),
    Case("misspelled_Kernel_case", '{"op": "blur", "Kernel": 5}', None, one(GOOD, out_x, [{"op": "blur", "Kernel": 5}]),
         422, "operations[0].Kernel"),
    Case("misspelled_op_greyscale", '"greyscale"', None, one(GOOD, out_x, ["greyscale"]), 422, "operations[0]"),
    Case("misspelled_operation_key", '"operation": [...] at the top level', None,
         body(lambda ctx: {"images": [{"input": GOOD, "output": out_x(ctx)}], "operation": ["grayscale"]}),
         422, "operation"),
    Case("misspelled_inptu", '{"inptu": ..., "output": ...}', None,
         body(lambda ctx: {"images": [{"inptu": GOOD, "output": out_x(ctx)}]}), 422, "images[0].inptu"),
    Case("misspelled_option", '"options": {"skip_exisitng": true}', None,
         body(lambda ctx: {"images": [{"input": GOOD, "output": out_x(ctx)}], "options": {"skip_exisitng": True}}),
         422, "options.skip_exisitng"),
    # sizes: operation count, result-size bombs
    Case("ops_100000", "100,000 operations (limit 100), refused before they are parsed", None,
         one(GOOD, out_x, ["grayscale"] * 100_000), 422, "operations", check=operations_not_parsed),
    Case("ops_101", "101 operations (limit 100)", None, one(GOOD, out_x, ["grayscale"] * 101), 422, "operations"),
    Case("resize_bomb_stretch", "resize to 60000x60000, fit stretch: refused before allocating", None,
         one(GOOD, out_x, [{"op": "resize", "width": 60000, "height": 60000, "fit": "stretch"}]), 422,
         "operations[0]", check=nothing_decoded),
    Case("resize_bomb_cover", "resize to 60000x60000, fit cover", None,
         one(GOOD, out_x, [{"op": "resize", "width": 60000, "height": 60000, "fit": "cover"}]), 422,
         "operations[0]", check=nothing_decoded),
    Case("resize_bomb_contain", '"resize=60000x60000" (contain: too large for this image), not allocated', None,
         one(GOOD, out_x, ["resize=60000x60000"]), 200, "too_large", check=nothing_decoded),
    Case("resize_16_of_800x600", '"resize=16" of an 800x600 JPEG (122.9 Mpx > 100 Mpx), not allocated', large_jpeg,
         one(local("large.jpg"), out_x, ["resize=16"]), 200, "too_large", check=nothing_decoded),
    # paths
    Case("path_dotdot_input", '"../outside/outside.jpg"', lambda ctx: outside_image(ctx),
         one("../outside/outside.jpg", out_x), 403, "images[0].input"),
    Case("path_dotdot_output", 'output "../outside/written.jpg"', None,
         one(GOOD, "../outside/written.jpg"), 403, "images[0].output"),
    Case("path_absolute_input", '"/etc/passwd"', None, one("/etc/passwd", out_x), 403, "images[0].input"),
    Case("path_absolute_output", 'output "/tmp/imgsrv-corpus-escape.jpg"', None,
         one(GOOD, "/tmp/imgsrv-corpus-escape.jpg"), 403, "images[0].output",
         check=nothing_at("/tmp/imgsrv-corpus-escape.jpg")),
    Case("path_backslash_input", '"testimages\\\\cyclo1.jpg"', None, one("testimages\\cyclo1.jpg", out_x), 422,
         "images[0].input"),
    Case("path_backslash_output", 'output "..\\\\..\\\\x.jpg"', None, one(GOOD, "..\\..\\x.jpg"), 422,
         "images[0].output"),
    Case("path_nul_input", '"testimages/cyclo1.jpg\\u0000.png"', None, one(GOOD + "\x00.png", out_x), 422,
         "images[0].input"),
    Case("path_nul_output", 'output "DIR/x\\u0000.jpg"', None, one(GOOD, lambda ctx: ctx.r("x\x00.jpg")), 422,
         "images[0].output"),
    Case("path_fullwidth_dots", '"．．/etc/passwd" (a name inside the root)', None, one("．．/etc/passwd", out_x),
         200, "not_found"),
    Case("path_fullwidth_slashes", '"．．／．．／etc／passwd"', None, one("．．／．．／etc／passwd", out_x), 200,
         "not_found"),
    Case("path_5000_chars_input", "a 5000-character input path", None, one("a/" * 2500, out_x), 422,
         "images[0].input"),
    Case("path_5000_chars_output", "a 5000-character output path", None,
         one(GOOD, lambda ctx: ctx.r("b" * 5000 + ".jpg")), 422, "images[0].output"),
    Case("path_name_300_bytes_input", "an input file name of 300 bytes (over NAME_MAX)", None,
         one(lambda ctx: ctx.r("n" * 300 + ".jpg"), out_x), 200, "not_found"),
    Case("path_name_300_bytes_output", "an output file name of 300 bytes (over NAME_MAX)", None,
         one(GOOD, lambda ctx: ctx.r("n" * 300 + ".jpg")), 200, "write_error"),
    Case("path_blank_input", 'input "   "', None, one("   ", out_x), 422, "images[0].input"),
    # symlinks leading out
    Case("symlink_file_input", "input: a symlink to a file outside the root", symlink_file_out,
         one(local("escape.jpg"), out_x), 403, "images[0].input"),
    Case("symlink_dir_input", "input: through a symlinked folder leading out", symlink_dir_out,
         one(local("linkdir/outside.jpg"), out_x), 403, "images[0].input"),
    Case("symlink_dir_output_parent", "output's parent: a symlinked folder leading out", symlink_dir_out,
         one(GOOD, local("linkdir/written.jpg")), 403, "images[0].output"),
    Case("symlink_file_output", "output: a (dangling) symlink to a file outside", symlink_output_out,
         one(GOOD, local("out.jpg")), 403, "images[0].output"),
    Case("symlink_job_source_dir", "POST /jobs, source.dir a symlinked folder leading out", symlink_dir_out,
         body(lambda ctx: {"source": {"dir": ctx.r("linkdir"), "pattern": "*.jpg"}, "output_dir": ctx.r("job"),
                           "operations": ["grayscale"]}, "/jobs"), 403, "source.dir"),
    Case("symlink_job_output_dir", "POST /jobs, output_dir through a symlinked folder", symlink_dir_out,
         body(lambda ctx: {"source": {"dir": "testimages"}, "output_dir": ctx.r("linkdir/job"),
                           "operations": ["grayscale"]}, "/jobs"), 403, "output_dir"),
    Case("symlink_job_images_input", "POST /jobs, images list input a symlink leading out", symlink_file_out,
         body(lambda ctx: {"images": [{"input": ctx.r("escape.jpg"), "output": ctx.r("job/x.jpg")}],
                           "operations": ["grayscale"]}, "/jobs"), 403, "images[0].input"),
    # not regular files
    Case("input_folder", "input: a folder", None, one("testimages", out_x), 200, "not_found"),
    Case("input_fifo", "input: a FIFO nobody writes to (must not hang)", fifo,
         one(local("fifo.jpg"), out_x), 200, "decode_error", check=answered_within(5.0)),
    Case("input_char_device", "input: a character device (/dev/zero's numbers) inside the root", char_device,
         one(local("zero.jpg"), out_x), 200, "decode_error", check=answered_within(5.0)),
    # output equal to the input, or unwritable
    Case("output_is_input_spelled", 'output "DIR/sub/../in.jpg" for input "DIR/./in.jpg"', copy_good("in.jpg"),
         one(local("./in.jpg"), local("sub/../in.jpg")), 422, "images[0].output"),
    Case("output_is_input_hardlink", "output: a hard link to the input", hardlink_to_input,
         one(local("in.jpg"), local("link.jpg")), 200, "write_error", check=input_unchanged("in.jpg")),
    Case("output_parent_is_file", "output's parent folder is a file", parent_is_file,
         one(GOOD, local("blocker/x.jpg")), 200, "write_error"),
    Case("output_parent_read_only", "output's folder is a read-only file system", readonly_mount,
         one(GOOD, local("ro/x.jpg")), 200, "write_error"),
    # not images, broken images
    *[Case(f"{kind}_named_jpg", f"{kind.upper()} content named .jpg", NOT_IMAGE[kind],
           one(local(f"{kind}.jpg"), out_x), 200, "decode_error") for kind in gen.NOT_IMAGE_KINDS],
    Case("zero_bytes", "a zero-byte .jpg", lambda ctx: gen.empty_file(ctx.p(), "empty.jpg"),
         one(local("empty.jpg"), out_x), 200, "decode_error"),
    Case("jpeg_truncated_50", "a JPEG cut at 50 %", lambda ctx: gen.truncated_jpeg(ctx.p(), 0.5, "t50.jpg"),
         one(local("t50.jpg"), out_x), 200, "decode_error"),
    Case("jpeg_truncated_99", "a JPEG cut at 99 %", lambda ctx: gen.truncated_jpeg(ctx.p(), 0.99, "t99.jpg"),
         one(local("t99.jpg"), out_x), 200, "decode_error"),
    Case("jpeg_truncated_header", "a JPEG cut inside its header", lambda ctx: gen.jpeg_header_only(ctx.p(), "th.jpg"),
         one(local("th.jpg"), out_x), 200, "decode_error"),
    Case("png_bad_crc", "a PNG whose IDAT CRC is wrong", lambda ctx: gen.png_bad_crc(ctx.p(), "crc.png"),
         one(local("crc.png"), out_x), 200, "decode_error"),
    # header-only bombs: refused before decoding
    Case("bomb_png_50000", "PNG header claiming 50000x50000 (not decoded: no memory, < 50 ms of CPU)",
         lambda ctx: gen.png_bomb(ctx.p(), "bomb.png"), one(local("bomb.png"), out_x), 200, "too_large",
         check=bomb_check),
    Case("bomb_jpeg_50000", "JPEG SOF claiming 50000x50000", lambda ctx: gen.jpeg_bomb(ctx.p(), "bomb.jpg"),
         one(local("bomb.jpg"), out_x), 200, "too_large", check=bomb_check),
    Case("bomb_bmp_50000", "BMP header claiming 50000x50000", bmp_bomb, one(local("bomb.bmp"), out_x), 200,
         "too_large", check=bomb_check),
    Case("bomb_gif_50000", "GIF screen claiming 50000x50000", gif_bomb, one(local("bomb.gif"), out_x), 200,
         "too_large", check=bomb_check),
    Case("bomb_png_valid_zeros", "a valid 1.5 MB PNG of 11000x11000 black pixels (121 Mpx > 100 Mpx)",
         png_zeros_bomb, one(local("zeros.png"), out_x), 200, "too_large", check=bomb_check_named("11000x11000")),
    # several frames: the first frame is used
    Case("multiframe_gif", "an animated GIF, 3 frames (red, green, blue)", gif_frames,
         one(local("anim.gif"), local("gif.png"), []), 200, "ok",
         writes=lambda ctx: {ctx.r("gif.png")}, check=first_frame("gif.png")),
    Case("multiframe_webp", "an animated WebP, 3 frames", webp_frames,
         one(local("anim.webp"), local("webp.png"), []), 200, "ok",
         writes=lambda ctx: {ctx.r("webp.png")}, check=first_frame("webp.png")),
    Case("multipage_tiff", "a TIFF of 3 pages (40x30 red, 80x60 green, 20x10 blue)", tiff_pages,
         one(local("pages.tif"), local("tif.png"), []), 200, "ok",
         writes=lambda ctx: {ctx.r("tif.png")}, check=first_frame("tif.png")),
    # 16-bit, palette, RGBA and gray PNGs through every operation
    *[Case(f"odd_pngs_{op}", f"16-bit, palette, RGBA, gray PNGs through {EVERY_OPERATION[op]!r}", odd_build,
           odd_request(op), 200, "ok", writes=odd_writes(op), check=odd_check(op)) for op in EVERY_OPERATION],
    # EXIF orientation 1..8 comes out upright
    *[Case(f"exif_orientation_{fmt.lower()}", f"{fmt} with EXIF orientation 1..8 (8 images)", orient_build(fmt),
           orient_request(fmt), 200, "ok", writes=orient_writes, check=orient_check(8.0 if fmt == "JPEG" else 1.0))
      for fmt in ("JPEG", "PNG", "WEBP", "TIFF")],
]

assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"
assert len(CASES) >= 40, f"the hardening issue asks for at least 40 bad-input cases; {len(CASES)} here"

"""Inputs are never modified and no temporary file is left behind.

Named to run last: besides its own requests it checks what every earlier test did to the
default server's data root.
"""
from __future__ import annotations

import os

from .conftest import TESTIMAGES
from .helpers import sha256, temp_files

EVERY_OP = [
    ["resize=0.5"], ["resize=300x300"], [{"op": "resize", "width": 200, "height": 200, "fit": "cover"}],
    ["split=True"], ["split=3x2", "split=True"], ["blur=7"], ["blur=kernel:0,sigma:2"], ["grayscale"],
    ["threshold=otsu"], ["threshold=adaptive_gaussian"], ["crop=bottom:40"], ["crop=10,10,100,80"],
    ["redact=0,-60,120,60"], ["redact=x:10,y:10,width:50,height:50,mode:pixelate"], ["rotate=270"],
    ["flip=vertical"], ["faces=blur"], ["quality=30"], ["encode=compression:9"],
    ["crop=5000,5000,10,10"],  # a per-image error on every image
]


def test_inputs_are_never_modified(server, outdir):
    names = sorted(os.listdir(server.path("testimages")))
    before = {n: (sha256(server.path(f"testimages/{n}")), server.path(f"testimages/{n}").stat().st_mtime_ns)
              for n in names}
    exts = [".jpg", ".png", ".webp", ".tif", ".bmp"]
    for i, ops in enumerate(EVERY_OP):
        images = [{"input": f"testimages/{n}", "output": f"{outdir}/{i}/{os.path.splitext(n)[0]}{exts[i % 5]}"}
                  for n in names]
        res = server.ok({"images": images, "operations": ops,
                         "options": {"skip_existing": i % 2 == 0, "metadata": "strip" if i % 3 else "keep"}})
        assert res["summary"]["images"] == len(names)
        if ops != ["crop=5000,5000,10,10"]:
            assert res["summary"]["failed"] == 0, (ops, [r["error"] for r in res["results"]])
    # outputs beside the inputs, in the inputs' own folder
    res = server.ok({"images": [{"input": f"testimages/{n}", "output": f"testimages/{os.path.splitext(n)[0]}_x.png"}
                                for n in names], "operations": ["grayscale"]})
    assert res["summary"]["succeeded"] == len(names)
    after = {n: (sha256(server.path(f"testimages/{n}")), server.path(f"testimages/{n}").stat().st_mtime_ns)
             for n in names}
    assert after == before
    assert temp_files(server.data_root) == []
    for n in names:
        server.path(f"testimages/{os.path.splitext(n)[0]}_x.png").unlink()


def test_after_the_whole_session_inputs_are_intact_and_no_temporary_file_remains(server):
    """Every earlier test ran against this data root: its testimages match the originals."""
    for p in sorted(TESTIMAGES.iterdir()):
        assert sha256(server.path(f"testimages/{p.name}")) == sha256(p), p.name
    assert temp_files(server.data_root) == []

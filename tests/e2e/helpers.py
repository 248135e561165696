"""Looking at what the server wrote: file snapshots, decoding, error entries."""
from __future__ import annotations

import functools
import hashlib
import os
import time
from pathlib import Path

import cv2
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

TEMP_PREFIX = ".imgsrv-tmp-"
STATE_DIR = ".imgsrv"

ALL_OPERATIONS = ["resize", "split", "blur", "grayscale", "sharpen", "threshold", "crop", "redact", "rotate",
                  "flip", "faces", "encode"]


def sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under the data root (the state folder aside): relative path -> (sha256, mtime_ns)."""
    out: dict[str, tuple[str, int]] = {}
    for dirpath, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == "." and STATE_DIR in dirs:
            dirs.remove(STATE_DIR)
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink():
                out[os.path.relpath(p, root)] = ("symlink:" + os.readlink(p), 0)
                continue
            out[os.path.relpath(p, root)] = (sha256(p), p.stat().st_mtime_ns)
    return out


def folders(root: Path) -> set[str]:
    return {os.path.relpath(d, root) for d, _dirs, _files in os.walk(root)}


def temp_files(root: Path) -> list[str]:
    """Temporary files of the atomic writer left anywhere under ``root``."""
    return [os.path.join(d, n) for d, _dirs, files in os.walk(root) for n in files if n.startswith(TEMP_PREFIX)]


def decode(path: Path | str) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, f"{path} cannot be decoded"
    return img


def size_of(path: Path | str) -> tuple[int, int]:
    h, w = decode(path).shape[:2]
    return w, h


def entry(response_json: dict, field: str) -> dict:
    """The entry of a 422/403 ``detail`` list that names ``field``."""
    detail = response_json.get("detail")
    assert isinstance(detail, list), f"detail is not a list of field errors: {response_json}"
    for e in detail:
        if e.get("field") == field:
            return e
    raise AssertionError(f"no error entry names {field!r}: {[e.get('field') for e in detail]}")


def fields(response_json: dict) -> list[str]:
    return [e.get("field") for e in response_json.get("detail", [])]


def write_image(path: Path, img: np.ndarray, params: list[int] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = cv2.imwrite(str(path), img, params or [])
    assert ok, f"could not write {path}"
    return path


def quadrant_image(h: int = 200, w: int = 300) -> np.ndarray:
    """Four flat quadrants: blue, green / red, white (BGR), so tiles can be told apart."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (255, 0, 0)
    img[: h // 2, w // 2:] = (0, 255, 0)
    img[h // 2:, : w // 2] = (0, 0, 255)
    img[h // 2:, w // 2:] = (255, 255, 255)
    return img


def slow_image(h: int = 3000, w: int = 4000, seed: int = 0) -> np.ndarray:
    """A 12-megapixel photo-like image (gradient and noise); blur=kernel:255 on it takes seconds."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.dstack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)]).astype(np.uint8)
    noise = np.random.default_rng(seed).integers(0, 24, img.shape, dtype=np.uint8)
    return cv2.add(img, noise)


@functools.lru_cache(maxsize=1)
def slow_jpeg() -> bytes:
    """JPEG bytes of ``slow_image()`` (made once)."""
    ok, buf = cv2.imencode(".jpg", slow_image(), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def write_slow_inputs(server, n: int) -> list[str]:
    """``n`` 4000x3000 JPEGs in slow/ under the server's data root; their relative paths."""
    names = []
    for i in range(n):
        rel = f"slow/{i}.jpg"
        server.path(rel).parent.mkdir(parents=True, exist_ok=True)
        server.path(rel).write_bytes(slow_jpeg())
        names.append(rel)
    return names


def cpu_seconds(p) -> float:
    """CPU time a psutil.Process has used (0 once it is gone)."""
    import psutil

    try:
        t = p.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def wait_until_busy(workers, pending, threshold: float = 0.3, timeout: float = 60.0):
    """The first worker process that has used ``threshold`` s of CPU since the call (it holds an image),
    or None when the ``pending`` future finished first or nothing happened within ``timeout``."""
    import time

    base = {w.pid: cpu_seconds(w) for w in workers}
    deadline = time.monotonic() + timeout
    while not pending.done() and time.monotonic() < deadline:
        for w in workers:
            if cpu_seconds(w) - base[w.pid] > threshold:
                return w
        time.sleep(0.02)
    return None


# -- what the server reports: GET /metrics, its log -----------------------------------------


def metrics(server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of GET /metrics: (name, sorted labels) -> value."""
    r = server.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers["content-type"]
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(m: dict, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples that carry these labels (whatever their other labels, e.g. the API key)."""
    return sum(v for (n, ls), v in m.items() if n == name and set(labels.items()) <= set(ls))


def grew(before: dict, after: dict, name: str, **labels: str) -> float:
    return sample(after, name, **labels) - sample(before, name, **labels)


def wait_for_log(server, pred, what: str, timeout: float = 15.0) -> list[str]:
    """The log's lines once ``pred(lines)`` holds (the line is written right after the answer is sent)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = server.log().splitlines()
        if pred(lines):
            return lines
        if time.monotonic() > deadline:
            tail = "\n".join(lines[-30:])
            raise AssertionError(f"the server log never showed {what}; its last lines:\n{tail}")
        time.sleep(0.05)

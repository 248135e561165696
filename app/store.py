"""SQLite state under IMGSRV_STATE_DIR: the skip-existing manifest (and the job store).

The manifest remembers, per output file, which input bytes and which pipeline made it and
the file's size and mtime at the time, so an unchanged image is skipped without decoding.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence

from .worker import Expected, Output

SCHEMA = """
CREATE TABLE IF NOT EXISTS manifest (
    output    TEXT PRIMARY KEY,
    input_hash TEXT NOT NULL,
    pipeline  TEXT NOT NULL,
    size      INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,
    width     INTEGER NOT NULL,
    height    INTEGER NOT NULL,
    faces     TEXT
);
"""


class Store:
    """One SQLite connection in WAL mode, shared by the server's threads behind a lock."""

    def __init__(self, state_dir: str | os.PathLike[str]):
        os.makedirs(state_dir, exist_ok=True)
        self.path = os.path.join(state_dir, "imgsrv.sqlite3")
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        self.migrate(self._db)

    def migrate(self, db: sqlite3.Connection) -> None:
        """Hook for tables of other components (the job store adds its own)."""

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- manifest ---------------------------------------------------------------------

    def expected(self, outputs: Sequence[str], pipeline: str) -> tuple[Expected, list[Output]] | None:
        """What the manifest recorded for these outputs if one input made all of them with ``pipeline``."""
        marks = ",".join("?" * len(outputs))
        with self._lock:
            rows = self._db.execute(
                f"SELECT output, input_hash, pipeline, size, mtime_ns, width, height, faces "
                f"FROM manifest WHERE output IN ({marks})", list(outputs)).fetchall()
        by_path = {r[0]: r for r in rows}
        if len(by_path) != len(outputs):
            return None
        ordered = [by_path[p] for p in outputs]
        hashes = {r[1] for r in ordered}
        if len(hashes) != 1 or any(r[2] != pipeline for r in ordered):
            return None
        exp = Expected(hashes.pop(), tuple((r[3], r[4]) for r in ordered))
        outs = [Output(r[0], r[5], r[6], r[3], json.loads(r[7]) if r[7] else None, r[4]) for r in ordered]
        return exp, outs

    def record(self, input_hash: str, pipeline: str, outputs: Iterable[Output]) -> None:
        rows = [(o.path, input_hash, pipeline, o.bytes, o.mtime_ns, o.width, o.height,
                 None if o.faces is None else json.dumps(o.faces)) for o in outputs]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO manifest VALUES (?,?,?,?,?,?,?,?)", rows)

"""Executing tasks: the pool backends (process, thread, Dask) and the engine, the only door to them."""
from __future__ import annotations

from .backends import Executor, ProcessExecutor, ThreadExecutor


def make_executor(kind: str, workers: int, task_timeout: float | None = None, data_root: str = "/",
                  max_pixels: int = 100_000_000) -> Executor:
    """The pool ``kind`` names: ``process``, ``thread``, ``dask://HOST:PORT`` or ``tls://HOST:PORT``."""
    if kind == "process":
        return ProcessExecutor(workers, task_timeout, max_pixels)
    if kind == "thread":
        return ThreadExecutor(workers, task_timeout, max_pixels)
    if kind.startswith(("dask://", "tls://")):
        from .dask import DaskExecutor  # distributed is imported only when it is used

        return DaskExecutor(kind, workers, task_timeout, data_root, max_pixels)
    raise ValueError(f"unknown executor {kind!r}")


__all__ = ["Executor", "make_executor"]

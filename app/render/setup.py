"""Setting up a process or thread that renders images: one function, ``init_worker``, for every
pool backend (process, thread, Dask)."""
from __future__ import annotations

import os
import signal
import threading

# OpenCV's own decoder limit, a second guard behind the header check of imaging.codec.probe.
# OpenCV reads it once, when cv2 is first imported in a process.
DECODER_LIMIT_VARIABLE = "OPENCV_IO_MAX_IMAGE_PIXELS"

# glibc serves allocations above a dynamic threshold with fresh mmap()s and trims freed heap
# memory eagerly, so every decode of a large image page-faults a new buffer in (about 7 ms for
# 9 MB). Keeping large buffers in the heap and not trimming it lets a worker reuse them.
MMAP_THRESHOLD = 32 << 20  # glibc's upper bound for M_MMAP_THRESHOLD on 64-bit systems
TRIM_THRESHOLD = 512 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def limit_decoder(max_pixels: int) -> None:
    """Make OpenCV's decoder refuse images over ``max_pixels``, in this process and the ones it
    starts from now on. Takes effect where cv2 is not imported yet: call it before."""
    os.environ[DECODER_LIMIT_VARIABLE] = str(max(max_pixels, 1))


def tune_malloc() -> bool:
    """Apply the thresholds above through mallopt(3) (glibc only; elsewhere nothing happens)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False


def init_worker(max_pixels: int, pool_process: bool = False) -> None:
    """Pool initializer: the decoder's pixel limit; one OpenCV thread per worker (the pool gives
    the parallelism); large buffers kept for reuse (tune_malloc).

    ``pool_process``: a process of imgsrv's own process pool. Ctrl-C is for the parent, which
    stops the pool cleanly, so such a process ignores it.
    """
    limit_decoder(max_pixels)
    import cv2

    cv2.setNumThreads(1)
    tune_malloc()
    if pool_process and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # The pool stops a worker over the time limit with SIGTERM. A Python-level handler
        # would only run once the current OpenCV call returns (seconds later); the default
        # action ends the process at once.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


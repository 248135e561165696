"""The Dask backend: the same tasks (paths plus the validated plan) run on the workers of a
Dask distributed cluster (``IMGSRV_EXECUTOR=dask://HOST:PORT``, or ``tls://HOST:PORT`` over TLS).

Workers read and write through the same data-root path as the server (a shared filesystem
such as NFS, mounted at the same path everywhere); this is checked when the executor starts,
with a clear error instead of a hang. A worker that dies mid-task: Dask runs the task again
on another worker (up to ``distributed.scheduler.allowed-failures`` times), then the image
is reported ``worker_crashed``. Never silently dropped.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import Future

from ..render.setup import init_worker
from ..render.worker import execute
from .backends import Executor, WorkerLost

log = logging.getLogger("imgsrv.executor")

CONNECT_TIMEOUT = 10.0
WORKERS_TIMEOUT = 30.0


def _sees(path: str) -> bool:
    return os.path.isdir(path)


class DaskExecutor(Executor):
    kind = "dask"

    def __init__(self, address: str, workers: int, task_timeout: float | None = None, data_root: str = "/",
                 max_pixels: int = 100_000_000):
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - distributed is in requirements.txt
            raise RuntimeError("IMGSRV_EXECUTOR=dask://... needs the 'distributed' package") from None
        # tls://: the certificates come from Dask's own configuration (distributed.comm.tls.*,
        # DASK_DISTRIBUTED__COMM__TLS__CA_FILE and the like), which distributed reads itself
        target = address if address.startswith("tls://") else "tcp://" + address.removeprefix("dask://")
        try:
            self._client = Client(target, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise RuntimeError(f"cannot reach the Dask scheduler at {target}: {exc}") from None
        except (TypeError, ValueError) as exc:  # tls:// without certificates in Dask's configuration
            raise RuntimeError(f"cannot reach the Dask scheduler at {target}: {exc} (for tls://, set "
                               "distributed.comm.tls.ca-file, .client.cert and .client.key in Dask's "
                               "configuration)") from None
        try:
            self._client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
        except TimeoutError:
            self._client.close()
            raise RuntimeError(f"no Dask worker joined the scheduler at {target} within {WORKERS_TIMEOUT:g} s") from None
        try:  # a round trip through the scheduler: it and the workers must be able to load imgsrv's code
            self._client.submit(_sees, data_root, pure=False).result(timeout=WORKERS_TIMEOUT)
        except Exception as exc:
            self._client.close()
            raise RuntimeError(f"the Dask cluster at {target} cannot run imgsrv's tasks ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0]}); install imgsrv on the scheduler and every worker "
                               "(pip install .)") from None
        seen = self._client.run(_sees, data_root)
        blind = sorted(w for w, ok in seen.items() if not ok)
        if blind:
            self._client.close()
            raise RuntimeError(f"Dask workers {', '.join(blind)} do not see the data root {data_root}: mount it at "
                               "the same path on every worker (a shared filesystem such as NFS)")
        self._client.run(init_worker, max_pixels)
        threads = sum(w.get("nthreads", 1) for w in self._client.scheduler_info()["workers"].values())
        super().__init__(threads or workers, task_timeout, max_pixels)
        log.info("Dask executor: scheduler %s, %d workers, %d threads", target, len(seen), self.workers)

    def _submit(self, task) -> Future:
        from distributed.scheduler import KilledWorker

        out: Future = Future()
        fut = self._client.submit(execute, task, pure=False)

        def done(f) -> None:
            try:
                out.set_result(f.result())
            except KilledWorker as exc:
                out.set_exception(WorkerLost(f"the Dask workers running this image died ({exc})"))
            except Exception as exc:  # cancelled, lost connection to the scheduler
                out.set_exception(exc)

        fut.add_done_callback(done)
        return out

    def shutdown(self) -> None:
        self._client.close()

"""End-to-end fixtures: the real server (``python main.py --port PORT``) in a subprocess.

Every server gets its own temporary data root (``IMGSRV_DATA_ROOT``) holding a copy of
``testimages/``; tests talk to it over HTTP with httpx and look at the files it writes.

- ``server``: the session's default server (process executor, ``IMGSRV_WORKERS=2``).
- ``server_factory(**settings)``: starts another server for one test with other settings
  (``server_factory(workers=1, max_queue=0)`` sets ``IMGSRV_WORKERS=1 IMGSRV_MAX_QUEUE=0``);
  it is stopped when the test ends.
- ``outdir``: a fresh folder name (relative to the data root) for one test's outputs.

Servers are started and stopped by tests/server_process.py (shared with the benchmarks):
SIGTERM, then SIGKILL; their log is shown when startup fails.
"""
from __future__ import annotations

import itertools
import re
import shutil
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.server_process import ServerProcess, ServerStartError, free_port  # noqa: F401  (free_port: for tests)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TESTIMAGES = PROJECT_ROOT / "testimages"
STARTUP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 120.0


class Server(ServerProcess):
    """One running imgsrv server (tests/server_process.py) and an httpx client talking to it."""

    def __init__(self, data_root: Path, log_path: Path, settings: dict[str, object], args: tuple[str, ...] = ()):
        self.client: httpx.Client | None = None
        super().__init__(data_root, log_path, settings, args=args, startup_timeout=STARTUP_TIMEOUT)
        self.launch()

    def launch(self) -> None:  # called again when the chosen port was taken
        if self.client is not None:
            self.client.close()
        super().launch()
        self.client = httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT)

    def wait_ready(self) -> None:
        try:
            super().wait_ready()
        except ServerStartError as exc:
            pytest.fail(str(exc), pytrace=False)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        super().stop()

    # -- processes -----------------------------------------------------------------------

    def fork_server(self) -> psutil.Process | None:
        """The multiprocessing fork server the pool's workers are forked from (None before it starts)."""
        for child in psutil.Process(self.proc.pid).children():
            try:
                if any("forkserver" in part for part in child.cmdline()):
                    return child
            except psutil.Error:
                continue
        return None

    def pool_workers(self, expected: int, timeout: float = 30.0) -> list[psutil.Process]:
        """The pool's worker processes (children of the fork server), once ``expected`` of them run.

        The pool may start lazily: call after a first request.
        """
        deadline = time.monotonic() + timeout
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline:
            fs = self.fork_server()
            workers = fs.children() if fs is not None else []
            if len(workers) >= expected:
                break
            time.sleep(0.05)
        self.remember_descendants(workers)
        return workers

    # -- HTTP ----------------------------------------------------------------------------

    def get(self, path: str, **kw) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, json=None, **kw) -> httpx.Response:
        return self.client.post(path, json=json, **kw)

    def process(self, body, path: str = "/process") -> httpx.Response:
        return self.client.post(path, json=body)

    def ok(self, body, path: str = "/process") -> dict:
        """POST a body that must be answered 200; the JSON answer."""
        r = self.client.post(path, json=body)
        assert r.status_code == 200, f"{path} answered {r.status_code}: {r.text}"
        return r.json()

    # -- files ---------------------------------------------------------------------------

    def path(self, rel: str) -> Path:
        return self.data_root / rel


def make_data_root(base: Path) -> Path:
    root = base / "data"
    root.mkdir(parents=True)
    shutil.copytree(TESTIMAGES, root / "testimages")
    return root


class Launcher:
    """Starts servers and stops every one it started."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory):
        self.tmp = tmp_path_factory
        self.servers: list[Server] = []

    def start(self, name: str = "server", *, args: tuple[str, ...] = (), **settings) -> Server:
        """A server with ``IMGSRV_<KEY>=value`` for every setting (workers 2 unless given) and
        extra command-line ``args`` after ``--port PORT``."""
        settings = {"workers": 2, **settings}
        base = self.tmp.mktemp(re.sub(r"[^A-Za-z0-9_]+", "_", name)[:40])
        root = make_data_root(base)
        server = Server(root, base / "server.log", settings, tuple(args))
        self.servers.append(server)
        server.wait_ready()
        return server

    def stop(self, server: Server) -> None:
        if server in self.servers:
            self.servers.remove(server)
            server.stop()

    def stop_all(self) -> None:
        while self.servers:
            self.servers.pop().stop()


@pytest.fixture(scope="session")
def launcher(tmp_path_factory):
    la = Launcher(tmp_path_factory)
    yield la
    la.stop_all()


@pytest.fixture(scope="session")
def server(launcher) -> Server:
    """The default server: process executor with two workers."""
    return launcher.start("default", workers=2)


@pytest.fixture
def server_factory(launcher, request):
    """``server_factory(**settings)`` starts a server for this test only."""
    started: list[Server] = []

    def start(*, args: tuple[str, ...] = (), **settings) -> Server:
        s = launcher.start(request.node.name, args=args, **settings)
        started.append(s)
        return s

    yield start
    for s in started:
        launcher.stop(s)


_counter = itertools.count()


@pytest.fixture
def outdir(request) -> str:
    """A folder name, relative to the data root, that no other test uses."""
    return f"out/{re.sub(r'[^A-Za-z0-9_]+', '_', request.node.name)[:60]}_{next(_counter)}"

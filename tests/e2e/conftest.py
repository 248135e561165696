"""End-to-end fixtures: the real server (``python main.py --port PORT``) in a subprocess.

Every server gets its own temporary data root (``IMGSRV_DATA_ROOT``) holding a copy of
``testimages/``; tests talk to it over HTTP with httpx and look at the files it writes.

- ``server``: the session's default server (process executor, ``IMGSRV_WORKERS=2``).
- ``server_factory(**settings)``: starts another server for one test with other settings
  (``server_factory(workers=1, max_queue=0)`` sets ``IMGSRV_WORKERS=1 IMGSRV_MAX_QUEUE=0``);
  it is stopped when the test ends.
- ``outdir``: a fresh folder name (relative to the data root) for one test's outputs.

Servers are stopped with SIGTERM, then SIGKILL; their log is shown when startup fails.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TESTIMAGES = PROJECT_ROOT / "testimages"
STARTUP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One running imgsrv server and an httpx client talking to it."""

    def __init__(self, data_root: Path, log_path: Path, settings: dict[str, object], args: tuple[str, ...] = ()):
        self.data_root = data_root
        self.log_path = log_path
        self.settings = settings
        self.args = args
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSRV_")}
        env["IMGSRV_DATA_ROOT"] = str(data_root)
        env.setdefault("PYTHONUNBUFFERED", "1")
        for key, value in settings.items():
            env[f"IMGSRV_{key.upper()}"] = str(value)
        self.env = env
        self._log = open(log_path, "wb")
        self._descendants: dict[int, psutil.Process] = {}
        self._port_retries = 3
        self._launch()

    def _launch(self) -> None:
        self._log.flush()
        self._launched_at = self.log_path.stat().st_size  # where this launch's output starts
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "main.py", "--port", str(self.port), *self.args],
                                     cwd=PROJECT_ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT)

    # -- life cycle ----------------------------------------------------------------------

    def log(self) -> str:
        self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log()
                this_launch = self.log_path.read_bytes()[self._launched_at:]
                if b"address already in use" in this_launch and self._port_retries > 0:
                    # The free port was taken between free_port() and the server's bind: another one.
                    self._port_retries -= 1
                    self.client.close()
                    self._log.write(b"\n[test] port taken, starting again on another port\n")
                    self._log.flush()
                    self._launch()
                    deadline = time.monotonic() + STARTUP_TIMEOUT
                    continue
                self.stop()
                pytest.fail(f"imgsrv exited with code {self.proc.returncode} during startup "
                            f"(settings {self.settings}); its output:\n{log}", pytrace=False)
            try:
                r = httpx.get(self.url + "/health", timeout=2.0)
                if r.status_code == 200:
                    self._remember_descendants()
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        log = self.log()
        self.stop()
        pytest.fail(f"imgsrv did not answer GET /health within {STARTUP_TIMEOUT:g} s "
                    f"(settings {self.settings}); its output:\n{log}", pytrace=False)

    def _remember_descendants(self) -> None:
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self._descendants[child.pid] = child
        except psutil.Error:
            pass

    def stop(self) -> None:
        self._remember_descendants()
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # The pool's processes we started through the server: make sure none outlives it.
        for child in list(self._descendants.values()):
            try:
                if child.is_running():
                    child.wait(timeout=5)
            except psutil.TimeoutExpired:
                try:
                    child.kill()
                except psutil.Error:
                    pass
            except psutil.Error:
                pass
        self._log.close()

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
        for w in workers:
            self._descendants[w.pid] = w
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

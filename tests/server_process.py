"""Start and stop a real imgsrv server (``python main.py --port PORT``) in a subprocess.

Plain Python, no pytest, so that the benchmarks (benchmarks/harness.py) and the end-to-end
tests can share it.

    with ServerProcess(data_root, log_path, {"workers": 2, "max_queue": 8}) as server:
        httpx.get(server.url + "/health")

Every setting ``key: value`` becomes ``IMGSRV_KEY=value`` in the server's environment, on top
of ``environ`` (default: this process's environment without its ``IMGSRV_*`` variables, so a
stray setting in the shell changes nothing). The server gets a free loopback port, chosen
again when another process takes it first; ``start`` returns once ``GET /health`` answers 200
and raises ``ServerStartError`` (with the server's output) when it does not. ``stop`` sends
SIGTERM, then SIGKILL, and then makes sure none of the server's descendants (the worker
pool's processes) outlives it.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx
import psutil

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerStartError(RuntimeError):
    """The server exited during start-up or did not answer GET /health in time."""


class ServerProcess:
    """One ``python main.py --port PORT`` process, its log and its descendants."""

    def __init__(self, data_root: str | os.PathLike, log_path: str | os.PathLike,
                 settings: Mapping[str, object] | None = None, *, args: Iterable[str] = (),
                 environ: Mapping[str, str] | None = None, script: str = "main.py",
                 startup_timeout: float = 60.0, stop_timeout: float = 20.0, port_retries: int = 3):
        self.data_root = Path(data_root)
        self.log_path = Path(log_path)
        self.settings = dict(settings or {})
        self.args = tuple(args)
        self.script = script
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._port_retries = port_retries
        base = environ if environ is not None else {k: v for k, v in os.environ.items()
                                                     if not k.startswith("IMGSRV_")}
        self.env = {**base, "IMGSRV_DATA_ROOT": str(self.data_root)}
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        for key, value in self.settings.items():
            self.env[f"IMGSRV_{key.upper()}"] = str(value)
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.url = ""
        self._log = None
        self._launched_at = 0
        self._descendants: dict[int, psutil.Process] = {}
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def launch(self) -> None:
        """Start the process on a free port, without waiting (``wait_ready`` waits)."""
        if self._log is None:
            self._log = open(self.log_path, "ab")
        self._log.flush()
        self._launched_at = self.log_path.stat().st_size  # where this launch's output starts
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, self.script, "--port", str(self.port), *self.args],
                                     cwd=PROJECT_ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def start(self) -> ServerProcess:
        """Launch (unless launched already) and wait for GET /health; on failure the server is
        stopped and ServerStartError raised."""
        if self.proc is None:
            self.launch()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Wait until GET /health answers 200, launching again on another port when the one chosen
        was taken; on failure the server is stopped and ServerStartError raised."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                this_launch = self.log_path.read_bytes()[self._launched_at:]
                if b"address already in use" in this_launch and self._port_retries > 0:
                    # The free port was taken between free_port() and the server's bind: another one.
                    self._port_retries -= 1
                    self._log.write(b"\n[launcher] port taken, starting again on another port\n")
                    self.launch()
                    deadline = time.monotonic() + self.startup_timeout
                    continue
                self._fail(f"imgsrv exited with code {self.proc.returncode} during startup")
            try:
                if httpx.get(self.url + "/health", timeout=2.0).status_code == 200:
                    self.remember_descendants()
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self._fail(f"imgsrv did not answer GET /health within {self.startup_timeout:g} s")

    def _fail(self, what: str) -> None:
        log = self.log()
        self.stop()
        raise ServerStartError(f"{what} (settings {self.settings}); its output:\n{log}")

    def log(self) -> str:
        if self._log is not None and not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def remember_descendants(self, procs: Iterable[psutil.Process] | None = None) -> None:
        """Note the server's descendants now (or ``procs``), so that ``stop`` can see they end."""
        if procs is None:
            try:
                procs = psutil.Process(self.proc.pid).children(recursive=True)
            except (psutil.Error, AttributeError):
                return
        for p in procs:
            self._descendants[p.pid] = p

    def stop(self) -> None:
        """SIGTERM, SIGKILL after ``stop_timeout`` s; then every descendant seen gets 5 s, then SIGKILL."""
        if self._stopped or self.proc is None:
            return
        self._stopped = True
        self.remember_descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
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
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

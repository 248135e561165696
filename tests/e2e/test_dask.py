"""The Dask executor against a real local cluster: `dask scheduler` and two `dask worker`
processes started by the test, imgsrv's code importable on them (PYTHONPATH)."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.environment import dask_command, needs_privilege

from tests.server_process import free_port

from .conftest import PROJECT_ROOT, Server

DASK = dask_command()
pytestmark = pytest.mark.needs("dask")


class Cluster:
    """A local scheduler and ``workers`` workers, each a process of the ``dask`` command; over TLS
    when given a certificate and its key (used as their own authority)."""

    def __init__(self, tmp: Path, workers: int = 2, tls: tuple[Path, Path] | None = None):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.protocol = "tls" if tls else "tcp"
        self.tls = tls
        self.tls_args = [] if tls is None else ["--tls-ca-file", str(tls[0]), "--tls-cert", str(tls[0]),
                                                "--tls-key", str(tls[1])]
        self.env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        self.log = open(tmp / "dask.log", "wb")
        self.scheduler = subprocess.Popen([DASK, "scheduler", "--protocol", self.protocol, "--host", "127.0.0.1",
                                           "--port", str(self.port), "--no-dashboard", *self.tls_args],
                                          env=self.env, stdout=self.log, stderr=self.log)
        self.workers = [self.add_worker() for _ in range(workers)]
        if workers:
            try:
                self.wait_for(workers)
            except BaseException:
                self.stop()
                raise

    def add_worker(self, prefix: list[str] | None = None) -> subprocess.Popen:
        return subprocess.Popen([*(prefix or []), DASK, "worker", f"{self.protocol}://{self.address}", "--nthreads",
                                 "1", "--no-dashboard", "--nworkers", "1", *self.tls_args],
                                env=self.env, stdout=self.log, stderr=self.log, start_new_session=True)

    def wait_for(self, n: int) -> None:
        from distributed import Client
        from distributed.security import Security

        security = None if self.tls is None else Security(
            tls_ca_file=str(self.tls[0]), tls_client_cert=str(self.tls[0]), tls_client_key=str(self.tls[1]),
            require_encryption=True)
        with Client(f"{self.protocol}://{self.address}", timeout=30, security=security) as c:
            c.wait_for_workers(n, timeout=60)

    def stop(self) -> None:
        for p in [*self.workers, self.scheduler]:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM) if p is not self.scheduler else p.terminate()
                except ProcessLookupError:
                    pass
        for p in [*self.workers, self.scheduler]:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        self.log.close()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.stop()


def _images(folder: Path, n: int, size=(1600, 1200)) -> None:
    folder.mkdir(parents=True)
    base = cv2.resize(cv2.imread(str(PROJECT_ROOT / "testimages" / "coffee.jpg")), size)
    for i in range(n):
        img = np.roll(base, i * 7, axis=1)
        cv2.imwrite(str(folder / f"img_{i:03d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", "run", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300, **kw)


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".imgsrv" not in p.parts}


def test_dask_outputs_are_identical_to_the_local_pool(cluster, tmp_path):
    src = tmp_path / "src"
    _images(src, 12)
    ops = ["--op", "crop=bottom:100", "--op", "redact=0,-100,200,100", "--op", "quality=75"]
    local = _run(["--source", str(src), "--output-dir", str(tmp_path / "local"), *ops, "--quiet"])
    assert local.returncode == 0, local.stderr
    dask = _run(["--source", str(src), "--output-dir", str(tmp_path / "dask"), *ops, "--quiet",
                 "--executor", f"dask://{cluster.address}"])
    assert dask.returncode == 0, dask.stderr
    assert "12 succeeded" in dask.stdout
    local_files, dask_files = _digests(tmp_path / "local"), _digests(tmp_path / "dask")
    assert len(local_files) == 12
    assert dask_files == local_files


def test_a_job_through_the_server_on_dask_and_a_worker_killed_mid_job(cluster, tmp_path):
    root = tmp_path / "root"
    _images(root / "src", 24, size=(2400, 1800))
    server = Server(root, tmp_path / "server.log", {"executor": f"dask://{cluster.address}"})
    try:
        server.wait_ready()
        health = server.get("/health").json()
        assert health["executor"] == f"dask://{cluster.address}" and health["workers"] == 2
        job = server.post("/jobs", json={"source": {"dir": "src"}, "output_dir": "out",
                                         "operations": ["blur=kernel:41", "faces=blur"]}).json()
        deadline = time.monotonic() + 120
        while server.get(f"/jobs/{job['id']}").json()["done"] < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        victim = cluster.workers[0]
        os.killpg(victim.pid, signal.SIGKILL)
        while (info := server.get(f"/jobs/{job['id']}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, info
            time.sleep(0.2)
        assert info["total"] == 24
        assert info["done"] == 24 == info["succeeded"] + info["failed"] + info["skipped"]
        results = server.get(f"/jobs/{job['id']}/results", params={"limit": 100}).json()["results"]
        assert sorted(r["input"] for r in results) == sorted(f"src/img_{i:03d}.jpg" for i in range(24))
        for r in results:  # each image ran on the surviving worker, or is reported as lost: never dropped
            assert r["status"] == "ok" or r["error"]["code"] == "worker_crashed", r
        ok = [r for r in results if r["status"] == "ok"]
        assert len(ok) >= 20
        for r in ok:
            img = cv2.imread(str(root / r["outputs"][0]["path"]))
            assert img is not None and img.shape == (1800, 2400, 3)
        assert not list((root / "out").glob(".imgsrv-tmp-*"))
    finally:
        server.stop()


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path):
    (tmp_path / "src").mkdir()
    r = _run(["--source", str(tmp_path / "src"), "--output-dir", str(tmp_path / "out"), "--op", "grayscale",
              "--executor", f"dask://127.0.0.1:{free_port()}"])
    assert r.returncode == 2
    assert "cannot reach the Dask scheduler" in r.stderr


def test_a_worker_that_does_not_see_the_data_root_is_a_clear_error(tmp_path):
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f'mount -t tmpfs none "{tmp_path}"'], capture_output=True, text=True) \
        if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        needs_privilege("hiding the data root from a worker needs a private mount namespace (unshare -m) "
                        f"and a tmpfs mount in it: {probe.stderr.strip()[:200] if probe else 'no unshare'}")
    hidden = tmp_path / "shared"
    (hidden / "src").mkdir(parents=True)
    c = Cluster(tmp_path, workers=0)
    try:
        # This worker lives in its own mount namespace where an empty tmpfs covers the folder:
        # like a machine on which the shared filesystem is not mounted.
        c.workers.append(c.add_worker(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                       f'mount -t tmpfs none "{tmp_path}" && exec "$0" "$@"']))
        c.wait_for(1)
        r = _run(["--source", str(hidden / "src"), "--output-dir", str(hidden / "out"), "--op", "grayscale",
                  "--executor", f"dask://{c.address}"], env={**os.environ, "IMGSRV_DATA_ROOT": str(hidden)})
        assert r.returncode == 2, r.stdout + r.stderr
        assert "do not see the data root" in r.stderr and str(hidden) in r.stderr
    finally:
        c.stop()


@pytest.mark.needs("dask", "openssl")
def test_a_scheduler_over_tls_with_dasks_own_certificate_configuration(tmp_path):
    """IMGSRV_EXECUTOR=tls://HOST:PORT: the scheduler and workers take only TLS connections with
    certificates the test makes; imgsrv finds its certificates in Dask's configuration."""
    openssl = shutil.which("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    c = Cluster(tmp_path, workers=1, tls=(cert, key))
    try:
        src = tmp_path / "src"
        _images(src, 4)
        tls_env = {**os.environ, "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(cert),
                   "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(cert),
                   "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(key)}
        r = _run(["--source", str(src), "--output-dir", str(tmp_path / "out"), "--op", "grayscale", "--quiet",
                  "--executor", f"tls://{c.address}"], env=tls_env)
        assert r.returncode == 0, r.stderr
        assert "4 succeeded" in r.stdout
        # without the certificates, the same scheduler refuses imgsrv: a clear error, nothing written
        plain = {k: v for k, v in os.environ.items() if not k.startswith("DASK_DISTRIBUTED__COMM__TLS")}
        r = _run(["--source", str(src), "--output-dir", str(tmp_path / "out2"), "--op", "grayscale", "--quiet",
                  "--executor", f"tls://{c.address}"], env=plain)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "cannot reach the Dask scheduler" in r.stderr and "distributed.comm.tls" in r.stderr, r.stderr
        assert not (tmp_path / "out2").exists()
    finally:
        c.stop()

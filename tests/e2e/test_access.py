"""SPEC "Access and data safety": API keys, loopback unless keyed, the Host allow-list, jobs that
belong to their key, the log and metrics by key name, and the Python client's key."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from imgsrv_client import Client, Unauthorized

from tests.server_process import ServerProcess

from .conftest import PROJECT_ROOT, free_port
from .helpers import snapshot, wait_for_log

KEYS = "ingest:ingest-secret-1,alice:alice-secret-2,bob:bob-secret-3"
SECRETS = {"ingest": "ingest-secret-1", "alice": "alice-secret-2", "bob": "bob-secret-3"}
BODY = {"images": [{"input": "testimages/coffee.jpg", "output": "keyed/c.jpg"}], "operations": ["grayscale"]}
UPLOAD = {"file": ("c.jpg", (PROJECT_ROOT / "testimages" / "coffee.jpg").read_bytes(), "image/jpeg")}

# every route that needs a key: (method, path, keyword arguments for httpx, its answer with a right key)
GUARDED = [
    ("POST", "/process", {"json": BODY}, 200),
    ("POST", "/items/", {"json": BODY}, 200),
    ("POST", "/plan", {"json": BODY}, 200),
    ("POST", "/render", {"files": UPLOAD, "data": {"operations": "resize=0.5"}}, 200),
    ("POST", "/compare", {"json": {"a": "testimages/coffee.jpg", "b": "testimages/coffee_redacted.jpg"}}, 200),
    ("POST", "/jobs", {"json": BODY}, 202),
    ("GET", "/jobs", {}, 200),
    ("GET", "/jobs/0123", {}, 404),  # no such job
    ("GET", "/jobs/0123/results", {}, 404),
    ("DELETE", "/jobs/0123", {}, 404),
    ("GET", "/operations", {}, 200),
    ("GET", "/metrics", {}, 200),
]
OPEN = ["/health", "/docs", "/openapi.json", "/docs/oauth2-redirect"]


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[name]}"}


@pytest.fixture(scope="module")
def keyed(launcher):
    return launcher.start("keyed", api_keys=KEYS, admin_keys="ingest")


@pytest.mark.parametrize("method, path, kw, answer", GUARDED, ids=lambda v: v if isinstance(v, str) else "")
def test_every_guarded_route_needs_a_right_key(keyed, method, path, kw, answer):
    before = snapshot(keyed.data_root)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": "Basic YTpi"},
                    {"Authorization": "Bearer"}, {"Authorization": SECRETS["alice"]}, {"X-API-Key": "x y"}):
        r = keyed.client.request(method, path, headers=headers, **kw)
        assert r.status_code == 401, (headers, r.status_code, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["code"] == "unauthorized" and r.json()["detail"]
    assert snapshot(keyed.data_root) == before, "a refused request wrote something"
    for headers in (bearer("alice"), {"X-API-Key": SECRETS["alice"]}):
        r = keyed.client.request(method, path, headers=headers, **kw)
        assert r.status_code == answer, (headers, r.status_code, r.text)


def test_open_routes_need_no_key(keyed):
    for path in OPEN:
        assert keyed.get(path).status_code == 200, path
    assets = re.findall(r'(?:href|src)="(/static-offline-docs/[^"]+)"', keyed.get("/docs").text)
    assert assets, "the /docs page names none of its assets"
    for asset in assets:
        assert keyed.get(asset).status_code == 200, asset


def test_a_refusal_comes_before_the_body_is_read(keyed):
    """Headers announcing 50 MB, and no body at all: the 401 comes at once (not a 413, not a wait)."""
    with socket.create_connection(("127.0.0.1", keyed.port), timeout=10) as conn:
        conn.sendall(b"POST /process HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 50000000\r\n\r\n")
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_openapi_declares_the_key_and_the_open_routes(keyed):
    schema = keyed.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "Authorization: Bearer SECRET"}
    assert schema["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"
    assert {"bearer": []} in schema["security"]
    assert schema["paths"]["/health"]["get"]["security"] == []


def test_jobs_belong_to_the_key_that_made_them(keyed):
    r = keyed.client.post("/jobs", json={**BODY, "images": [{"input": "testimages/coffee.jpg",
                                                             "output": "keyed/jobs/alice.jpg"}]},
                          headers=bearer("alice"))
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    alice = httpx.Client(base_url=keyed.url, headers=bearer("alice"))
    bob = httpx.Client(base_url=keyed.url, headers=bearer("bob"))
    admin = httpx.Client(base_url=keyed.url, headers=bearer("ingest"))
    deadline = time.monotonic() + 60
    while alice.get(f"/jobs/{job_id}").json()["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert alice.get(f"/jobs/{job_id}").json()["created_by"] == "alice"
    for method, path in (("GET", f"/jobs/{job_id}"), ("GET", f"/jobs/{job_id}/results"),
                         ("DELETE", f"/jobs/{job_id}")):
        r = bob.request(method, path)
        assert r.status_code == 404, (method, path, r.text)
        assert "keyed/jobs" not in r.text, "another key's paths must not leak"
    assert job_id not in [j["id"] for j in bob.get("/jobs").json()["jobs"]]
    assert job_id in [j["id"] for j in alice.get("/jobs").json()["jobs"]]
    assert job_id in [j["id"] for j in admin.get("/jobs").json()["jobs"]], "an admin key sees every job"
    assert admin.get(f"/jobs/{job_id}/results").status_code == 200
    assert alice.delete(f"/jobs/{job_id}").status_code == 200
    assert admin.get(f"/jobs/{job_id}").status_code == 404


def test_the_log_names_the_key_and_never_holds_a_secret(keyed):
    keyed.client.get("/operations", headers={**bearer("bob"), "X-Request-ID": "names-the-key-bob"})
    keyed.client.get("/operations", headers={"Authorization": "Bearer not-a-key-at-all",
                                             "X-Request-ID": "names-the-key-wrong"})
    # each request's line is written once its answer is sent: wait for both lines, not for a while
    log = "\n".join(wait_for_log(keyed, lambda lines: sum("names-the-key-" in line for line in lines) >= 2,
                                  "the lines of both requests"))
    assert "names-the-key-bob key=bob GET /operations 200" in log
    assert "names-the-key-wrong key=- GET /operations 401" in log
    for secret in (*SECRETS.values(), "not-a-key-at-all"):
        assert secret not in log
    metrics = keyed.client.get("/metrics", headers=bearer("ingest")).text
    assert any('key="bob"' in line and 'route="/operations"' in line for line in metrics.splitlines())
    assert any('status="401"' in line for line in metrics.splitlines() if line.startswith("imgsrv_http_requests"))
    for secret in SECRETS.values():
        assert secret not in metrics


def test_a_rebinding_host_is_refused_before_anything_runs(keyed, server):
    for srv, headers in ((keyed, bearer("alice")), (server, {})):
        before = snapshot(srv.data_root)
        r = srv.client.post("/process", json=BODY, headers={**headers, "Host": "rebind.attacker.example"})
        assert r.status_code == 400 and r.json()["code"] == "bad_host", r.text
        assert snapshot(srv.data_root) == before
        assert srv.client.get("/health", headers={"Host": f"localhost:{srv.port}"}).status_code == 200


def test_the_python_client_sends_its_key(keyed, monkeypatch):
    with Client(keyed.url, api_key=SECRETS["alice"]) as c:
        assert c.plan([("testimages/coffee.jpg", "keyed/p.jpg")], ["grayscale"])["outputs"] == 1
    with Client(keyed.url) as c, pytest.raises(Unauthorized) as info:
        c.operations()
    assert info.value.status_code == 401
    monkeypatch.setenv("IMGSRV_API_KEY", SECRETS["bob"])
    with Client(keyed.url) as c:
        assert c.plan([("testimages/coffee.jpg", "keyed/p.jpg")], ["grayscale"])["outputs"] == 1


def test_keys_from_a_file_rotate_on_sighup(server_factory, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# rotated by the secret store\nalice:first-secret\n")
    srv = server_factory(api_keys_file=str(keys))
    assert srv.get("/operations", headers={"X-API-Key": "first-secret"}).status_code == 200
    keys.write_text("alice:second-secret\n")
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while srv.get("/operations", headers={"X-API-Key": "first-secret"}).status_code != 401:
        assert time.monotonic() < deadline, "the old key still works after SIGHUP"
        time.sleep(0.1)
    assert srv.get("/operations", headers={"X-API-Key": "second-secret"}).status_code == 200


def _start(args: list[str], **env: str) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IMGSRV_")}
    return subprocess.Popen([sys.executable, "main.py", *args], cwd=PROJECT_ROOT, env={**environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_without_keys_only_loopback_is_served(tmp_path):
    port = str(free_port())
    proc = _start(["--host", "0.0.0.0", "--port", port], IMGSRV_DATA_ROOT=str(tmp_path))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "IMGSRV_API_KEYS" in out and "0.0.0.0" in out
    for i, settings in enumerate(({"allow_anonymous": "true"}, {"api_keys": "a:b"})):
        # served: it answers GET /health (start() raises ServerStartError otherwise)
        ServerProcess(tmp_path, tmp_path / f"served{i}.log", settings, args=("--host", "0.0.0.0")).start().stop()


def test_a_request_cannot_write_fields_into_the_log(keyed):
    fake = "0f3a9c1d key=alice DELETE /jobs/1 200 1.0 ms |"
    keyed.client.post("/jobs", json=BODY, headers={"X-Request-ID": fake})
    keyed.client.get("/process%20key=alice")
    wait_for_log(keyed, lambda lines: any("0f3a9c1d" in line and "POST /jobs" in line for line in lines)
                 and any("GET /process\\x20key=alice 401" in line for line in lines), "the lines of both requests")
    lines = [line for line in keyed.log().splitlines() if "imgsrv.http" in line and "0f3a9c1d" in line]
    assert lines and all(" key=- POST /jobs 401" in line for line in lines), lines
    for line in (line for line in keyed.log().splitlines() if "imgsrv.http:" in line):
        assert sum(field.startswith("key=") for field in line.split()) == 1, line


def test_the_served_app_answers_no_test_client_host_and_no_doubled_host(server):
    r = server.client.post("/process", json=BODY, headers={"Host": "testserver"})
    assert r.status_code == 400 and r.json()["code"] == "bad_host"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: evil.example\r\nHost: localhost\r\n\r\n")
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]

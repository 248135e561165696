"""/docs in a real browser: Debian's Chromium driven by Playwright, with no internet.

Every request the page makes to a host other than the server's 127.0.0.1 address is
blocked and recorded; the tests assert none was attempted (Swagger UI's assets come from
the app, not from a CDN). A user's path through the page is then followed: expand
``POST /process``, "Try it out", "Execute", and read a 200 with results.

Needs ``pip install playwright`` and ``apt-get install chromium`` (no Playwright browser
download); skipped with the reason when either is missing. A screenshot of the page is
saved under the test's tmp folder when a step fails.
"""
from __future__ import annotations

import json
import re
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import environment
from tests.environment import CHROMIUM

from .helpers import size_of
from .jobs_helpers import all_results, wait_job

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    environment.require("playwright", "chromium")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def docs_server(server_factory):
    """A fresh server: the examples must work as they are on a new data root holding testimages/."""
    return server_factory(workers=2)


class OfflinePage:
    """A browser page that may only talk to the server; every other request is blocked and remembered."""

    def __init__(self, browser, server, shots: Path):
        self.server = server
        self.shots = shots
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.set_default_timeout(STEP_TIMEOUT_MS)
        self.page = self.context.new_page()
        self.blocked: list[str] = []
        self.requested: list[str] = []
        self.console_errors: list[str] = []
        host = urlsplit(server.url)
        self.allowed = (host.hostname, host.port)
        self.context.route("**/*", self._route)
        self.page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))

    def _route(self, route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        self.requested.append(url)
        if parts.scheme in ("http", "https", "ws", "wss") and (parts.hostname, parts.port) != self.allowed:
            self.blocked.append(url)
            route.abort("blockedbyclient")
        else:
            route.continue_()

    def close(self) -> None:
        self.context.close()

    @contextmanager
    def step(self, name: str):
        """Run a step; on failure save a screenshot and say where it is."""
        try:
            yield
        except BaseException as exc:
            shot = self.shots / (re.sub(r"\W+", "_", name) + ".png")
            try:
                self.page.screenshot(path=str(shot), full_page=True)
                where = f"screenshot: {shot}"
            except Exception as shot_exc:  # the page may be gone
                where = f"no screenshot ({shot_exc})"
            raise AssertionError(f"/docs step {name!r} failed ({where}): {exc}") from exc

    def open_docs(self) -> None:
        with self.step("open /docs"):
            self.page.goto(self.server.url + "/docs", wait_until="networkidle")
            self.page.locator(".swagger-ui .opblock").first.wait_for(state="visible")

    def operation(self, method: str, path: str):
        return self.page.locator(f".opblock.opblock-{method.lower()}").filter(
            has=self.page.locator(f".opblock-summary-path[data-path='{path}']"))

    def expand(self, method: str, path: str):
        block = self.operation(method, path)
        assert block.count() == 1, f"{block.count()} sections for {method} {path}"
        if not block.locator(".opblock-body").count():
            block.locator(".opblock-summary").first.click()
        block.locator(".opblock-body").wait_for(state="visible")
        return block

    def try_and_execute(self, block):
        block.get_by_role("button", name=re.compile(r"^\s*Try it out\s*$")).click()
        block.get_by_role("button", name=re.compile(r"^\s*Execute\s*$")).click()
        status = block.locator(".live-responses-table .response .response-col_status").first
        status.wait_for(state="visible")
        return status


@pytest.fixture
def docs_page(browser, docs_server, tmp_path):
    page = OfflinePage(browser, docs_server, tmp_path)
    yield page
    page.close()


def test_docs_loads_offline_and_shows_every_endpoint(docs_page, docs_server):
    spec = docs_server.get("/openapi.json").json()
    docs_page.open_docs()
    with docs_page.step("every endpoint has its section"):
        missing = []
        for path, methods in spec["paths"].items():
            for method in methods:
                block = docs_page.operation(method, path)
                if block.count() != 1 or not block.first.is_visible():
                    missing.append(f"{method.upper()} {path}")
                else:
                    assert block.locator(".opblock-summary-method").inner_text().strip() == method.upper()
        assert not missing, f"sections missing from /docs: {missing}"
        for tag in ("process", "images", "jobs", "service"):
            assert docs_page.page.locator(f".opblock-tag[data-tag='{tag}']").count() == 1, tag
        assert "imgsrv" in docs_page.page.locator(".info .title").inner_text()
    assert docs_page.requested, "the route handler saw no request at all"
    assert not docs_page.blocked, f"/docs tried to reach other hosts (a CDN?): {docs_page.blocked}"
    # The guard itself works: a request to a CDN from the page is seen and blocked.
    cdn = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
    docs_page.page.evaluate("u => fetch(u).then(() => 'loaded', () => 'failed')", cdn)
    assert docs_page.blocked == [cdn]
    assert any(u.endswith(".js") for u in docs_page.requested), "Swagger UI's script came from nowhere"
    assert any(u.endswith(".css") for u in docs_page.requested), "Swagger UI's style sheet came from nowhere"


def test_try_out_post_process_from_docs(docs_page, docs_server):
    docs_page.open_docs()
    with docs_page.step("expand POST /process"):
        block = docs_page.expand("POST", "/process")
    with docs_page.step("Try it out, Execute"):
        status = docs_page.try_and_execute(block)
        assert status.inner_text().strip() == "200"
    with docs_page.step("read the response"):
        body_text = block.locator(".live-responses-table .response .response-col_description").first.inner_text()
        assert '"results"' in body_text, body_text[:500]
        start = body_text.index("{")
        end = body_text.rindex("}") + 1
        answer = json.loads(body_text[start:end])
        assert answer["summary"]["failed"] == 0, answer
        assert answer["summary"]["succeeded"] == answer["summary"]["images"] >= 1
    # The example really ran on testimages/ under the data root.
    for result in answer["results"]:
        assert result["input"].startswith("testimages/")
        for out in result["outputs"]:
            assert size_of(docs_server.path(out["path"])) == (out["width"], out["height"])
    assert not docs_page.blocked, f"/docs tried to reach other hosts: {docs_page.blocked}"


@pytest.mark.parametrize("method, path, expected", [
    ("POST", "/plan", "200"),
    ("POST", "/items/", "200"),
    ("POST", "/compare", "200"),
    ("POST", "/jobs", "202"),
    ("GET", "/health", "200"),
    ("GET", "/operations", "200"),
    ("GET", "/jobs", "200"),
])
def test_every_example_works_as_is(docs_page, docs_server, method, path, expected):
    """Each endpoint's example, executed from /docs unchanged on a fresh server, succeeds: the
    status it shows, and what the request was for (a job's 202 is only its start: the job must
    end succeeded, its outputs on disk)."""
    docs_page.open_docs()
    with docs_page.step(f"{method} {path}"):
        block = docs_page.expand(method, path)
        status = docs_page.try_and_execute(block)
        text = block.locator(".live-responses-table .response .response-col_description").first.inner_text()
        assert status.inner_text().strip() == expected, text[:800]
    assert not docs_page.blocked, f"/docs tried to reach other hosts: {docs_page.blocked}"
    answer = json.loads(text[text.index("{"):text.rindex("}") + 1])
    if (method, path) == ("POST", "/items/"):  # every image succeeded, its outputs on disk
        assert "summary" in answer, answer
        assert answer["summary"]["failed"] == 0 and answer["summary"]["succeeded"] >= 1, answer
        for result in answer["results"]:
            for out in result["outputs"]:
                assert size_of(docs_server.path(out["path"])) == (out["width"], out["height"]), out
                assert docs_server.path(out["path"]).stat().st_size == out["bytes"], out
    if (method, path) == ("POST", "/compare"):  # coffee.jpg against its redacted copy; the diff image written
        assert (answer["width"], answer["height"]) == (600, 400) and answer["different_pixels"] > 0, answer
        diff = docs_server.path(answer["output"])
        assert answer["output"] == "testoutput/diff.png" and size_of(diff) == (600, 400), answer
        assert diff.stat().st_size == answer["output_bytes"], answer
    if (method, path) == ("POST", "/jobs"):
        check_example_job(docs_server, answer)


def check_example_job(server, created: dict) -> None:
    """The /jobs example (testimages/*.jpg, crop=bottom:40 and a redaction, to testoutput/job) ran
    to its end: each JPEG of testimages/ has its output, 40 rows shorter, named in the results."""
    final = wait_job(server, created["id"])
    jpegs = sorted(p.name for p in server.path("testimages").glob("*.jpg"))
    assert final["status"] == "succeeded", final
    assert (final["total"], final["succeeded"], final["failed"]) == (len(jpegs), len(jpegs), 0), final
    results = all_results(server, created["id"])
    assert sorted(r["input"] for r in results) == [f"testimages/{n}" for n in jpegs]
    for r in results:
        name = r["input"].removeprefix("testimages/")
        w, h = size_of(server.path(r["input"]))
        [out] = r["outputs"]
        assert out["path"] == f"testoutput/job/{name}", out
        assert size_of(server.path(out["path"])) == (out["width"], out["height"]) == (w, h - 40), out
        assert server.path(out["path"]).stat().st_size == out["bytes"], out
    assert sorted(p.name for p in server.path("testoutput/job").iterdir()) == jpegs


def test_render_from_docs_with_an_uploaded_file(docs_page, docs_server):
    docs_page.open_docs()
    with docs_page.step("POST /render"):
        block = docs_page.expand("POST", "/render")
        block.get_by_role("button", name=re.compile(r"^\s*Try it out\s*$")).click()
        block.locator("input[type=file]").set_input_files(str(docs_server.path("testimages/coffee.jpg")))
        block.get_by_role("button", name=re.compile(r"^\s*Execute\s*$")).click()
        status = block.locator(".live-responses-table .response .response-col_status").first
        status.wait_for(state="visible")
        sent = block.locator(".curl-command").inner_text()
        answer = block.locator(".live-responses-table .response .response-col_description").first.inner_text()
        assert status.inner_text().strip() == "200", f"the request sent:\n{sent}\nthe answer:\n{answer[:800]}"
        # Swagger UI shows an image answer as an <img>.
        img = block.locator(".live-responses-table .response-col_description img")
        img.wait_for(state="visible")
        assert img.evaluate("i => i.naturalWidth") == 300
    assert not docs_page.blocked, f"/docs tried to reach other hosts: {docs_page.blocked}"


def test_authorize_then_try_it_out_with_an_api_key(browser, server_factory, tmp_path):
    """With IMGSRV_API_KEYS, "Try it out" on /process answers 401 until the key is given with
    the page's Authorize button, then 200."""
    keyed = server_factory(workers=2, api_keys="docs:docs-page-secret")
    page = OfflinePage(browser, keyed, tmp_path)
    try:
        page.open_docs()
        with page.step("POST /process without a key"):
            block = page.expand("POST", "/process")
            assert page.try_and_execute(block).inner_text().strip() == "401"
        with page.step("Authorize"):
            page.page.locator(".auth-wrapper .authorize").first.click()
            dialog = page.page.locator(".dialog-ux .modal-ux")
            dialog.wait_for(state="visible")
            section = dialog.locator(".auth-container").filter(has_text="bearer")
            section.locator("input").first.fill("docs-page-secret")
            section.locator("button.authorize").click()
            section.locator("button", has_text="Logout").wait_for(state="visible")  # authorized
            dialog.locator("button.btn-done").first.click()
        with page.step("POST /process with the key"):
            block.get_by_role("button", name=re.compile(r"^\s*Execute\s*$")).click()
            status = block.locator(".live-responses-table .response .response-col_status").first
            page.page.wait_for_function(
                "el => el.innerText.trim() === '200'", arg=status.element_handle(), timeout=STEP_TIMEOUT_MS)
            assert "Bearer docs-page-secret" in block.locator(".curl-command").inner_text()
        assert not page.blocked, f"/docs tried to reach other hosts: {page.blocked}"
    finally:
        page.close()

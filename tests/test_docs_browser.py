"""The API docs in a real browser (Debian's chromium, as tests/test_reports_browser.py): with
the service's Content-Security-Policy, `/docs` (Swagger UI) and `/redoc` render the API from
this server's own files, with no console error and nothing fetched from anywhere else, and a
shared report renders under its policy too."""

from __future__ import annotations

import pytest

from .conftest import TINY_ROWS
from .test_e2e_server import Server
from .test_reports_browser import ARGS, CHROMIUM, _skip_reason

pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs-browser")
    srv = Server(f"sqlite:///{tmp / 'd.db'}", tmp, OPTIMIZER_WORKERS="1")
    srv.start()
    yield srv
    srv.stop()


def _visit(server, tmp_path, path: str, selector: str) -> tuple[list[str], list[str], str]:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            args=ARGS, viewport={"width": 1280, "height": 900})
        try:
            page = ctx.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
            page.on("requestfinished", lambda r: requests.append(r.url))
            page.goto(server.base_url + path, wait_until="load")
            page.wait_for_selector(selector, timeout=20_000)
            text = page.inner_text("body")
        finally:
            ctx.close()
    return problems, requests, text


@pytest.mark.parametrize("path, selector", [("/docs", ".swagger-ui .opblock"),
                                            ("/redoc", "[data-section-id]")])
def test_docs_render_offline_under_the_csp(server, tmp_path, path, selector):
    problems, requests, text = _visit(server, tmp_path, path, selector)
    # ReDoc's bundle always asks for its maker's logo from a CDN; the policy blocks it (the
    # image hides itself on error): that block is the only complaint allowed
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [p for p in problems if logo not in p] == [], problems
    assert all(u.startswith(server.base_url) or u.startswith(("data:", "blob:"))
               for u in requests), requests
    assert "/optimize" in text or "Solve one scenario" in text, text[:500]


def test_a_shared_report_renders_under_the_csp(server, tmp_path):
    with server.client() as c:
        run = c.post("/optimize", json={"scenario": {"name": "shared", "budget_musd": 120},
                                        "projects": TINY_ROWS}).json()
        link = c.post(f"/runs/{run['run_id']}/share").json()
    path = "/" + link["url"].split("/", 3)[3]
    problems, requests, text = _visit(server, tmp_path, path, "svg")
    assert problems == [], problems
    assert requests == [server.base_url + path], requests
    assert "shared" in text

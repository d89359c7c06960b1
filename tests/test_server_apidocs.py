"""The API docs at /docs (Swagger UI) and /redoc (ReDoc) work offline: every asset they load is
this server's, under a Content-Security-Policy that allows nothing else; in a real browser
(slow) /docs renders the API's operations with no request leaving the machine."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from devtools import CHROMIUM, DevTools
from sentimodal.interfaces.server import ServerSettings, create_app
from sentimodal.interfaces.server.connections import uvicorn_config
from server_fixtures import free_port

#: the API's operations as Swagger UI labels them
OPERATIONS = {"/v1/predict", "/v1/predict/batch", "/v1/model", "/health", "/ready"}
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def _no_model() -> None:
    raise RuntimeError("no model: the docs do not need one")


@pytest.fixture(scope="module")
def client() -> TestClient:
    # no lifespan (no `with`): the model is never loaded; the pages do not need it
    return TestClient(create_app(_no_model), base_url="http://127.0.0.1")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets_that_answer(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    html = response.text
    assert "http://" not in html and "https://" not in html
    urls = re.findall(r"""(?:src|href|url|spec-url)\s*[=:]\s*["']([^"']+)["']""", html)
    assets = [u for u in urls if u != "/openapi.json"]
    assert assets and all(u.startswith("/docs/assets/") for u in assets), urls
    for url in assets:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert client.get("/openapi.json").json()["paths"].keys() >= OPERATIONS
    csp = response.headers["content-security-policy"]
    assert "http" not in csp and "'unsafe-eval'" not in csp and "connect-src 'self'" in csp
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    script_src = re.search(r"script-src ([^;]*);", csp).group(1).split()
    digests = [base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in scripts]
    assert script_src == ["'self'", *(f"'sha256-{d}'" for d in digests)]  # no unsafe-inline


def test_missing_assets_are_json_404s_and_assets_allow_nothing(client: TestClient) -> None:
    missing = client.get("/docs/assets/nope.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    asset = client.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.headers["content-security-policy"].startswith("default-src 'none'")
    assert client.get("/docs/oauth2-redirect").status_code == 404  # no OAuth: no such page


@pytest.fixture(scope="module")
def live_server() -> Iterator[str]:
    """uvicorn on a free port of 127.0.0.1, without a model (only the docs are asked for)."""
    port = free_port()
    settings = ServerSettings(graceful_shutdown_s=5)
    server = uvicorn.Server(uvicorn_config(create_app(_no_model), "127.0.0.1", port, settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            threading.Event().wait(0.05)
    yield base
    server.should_exit = True
    thread.join(15)


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed")
def test_docs_render_the_operations_in_a_browser_offline(live_server: str, tmp_path) -> None:
    browser = DevTools(tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        attached = browser.send("Target.attachToTarget", targetId=target, flatten=True)
        browser.session = attached["sessionId"]
        browser.send("Network.enable")
        browser.send("Page.enable")
        browser.send(
            "Page.addScriptToEvaluateOnNewDocument",
            source="window.__violations = []; document.addEventListener("
            "'securitypolicyviolation', e => window.__violations.push(e.blockedURI + ' ' + "
            "e.violatedDirective));",
        )
        operations, violations = {}, {}
        for page, selector in (("/docs", ".opblock-summary-path"), ("/redoc", "[data-section-id]")):
            browser.send("Page.navigate", url=f"{live_server}{page}")
            browser.wait_for(f"document.querySelectorAll('{selector}').length >= 5")
            operations[page] = browser.evaluate(
                f"[...document.querySelectorAll('{selector}')]"
                ".map(e => e.getAttribute('data-path') || e.textContent)"
            )
            violations[page] = browser.evaluate("window.__violations")
    finally:
        browser.close()
    assert set(operations["/docs"]) >= OPERATIONS
    assert len(operations["/redoc"]) >= 5
    # ReDoc always renders Redocly's logo from their CDN (no option turns it off): the page's
    # policy blocks it, the logo hides itself, and that is the only thing either page tried
    assert violations == {"/docs": [], "/redoc": [f"{REDOC_LOGO} img-src"]}
    requests = {
        e["params"]["requestId"]: e["params"]["request"]["url"]
        for e in browser.events
        if e["method"] == "Network.requestWillBeSent"
    }
    blocked = {
        e["params"]["requestId"]
        for e in browser.events
        if e["method"] == "Network.loadingFailed" and e["params"].get("blockedReason") == "csp"
    }
    sent = [url for rid, url in requests.items() if rid not in blocked]
    assert sent and all(url.startswith((f"{live_server}/", "data:", "blob:")) for url in sent)
    assert {requests[rid] for rid in blocked} <= {REDOC_LOGO}

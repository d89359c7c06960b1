"""The try-it page in a real headless browser (Debian's chromium), driven over the DevTools
protocol on a pipe: the page loads, a text and an image go in, a prediction comes back."""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import CHROMIUM, DevTools
from sentimodal.interfaces.server import ServerSettings
from server_fixtures import ThreadServer, sample_posts, train_fusion

#: set to a path to keep the screenshot (docs/img/serve-page.png was made this way)
SCREENSHOT_ENV = "SENTIMODAL_SCREENSHOT"


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    model = train_fusion(tmp_path_factory.mktemp("browser") / "fusion")
    with ThreadServer(model, ServerSettings()) as running:
        yield running.base


def test_page_predicts_a_post_in_a_real_browser(page_server: str, tmp_path: Path) -> None:
    post = sample_posts(3).iloc[2]
    browser = DevTools(tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        attached = browser.send("Target.attachToTarget", targetId=target, flatten=True)
        browser.session = attached["sessionId"]
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            width=820, height=760, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        browser.send("Page.enable")
        browser.send("Page.navigate", url=f"{page_server}/")
        about = browser.wait_for(
            "document.readyState === 'complete' && "
            "!document.getElementById('about').textContent.includes('loading') && "
            "document.getElementById('about').textContent"
        )
        assert "labels: negative, neutral, positive" in about
        browser.evaluate(f"document.getElementById('text').value = {json.dumps(post['text'])}")
        node = browser.send("Runtime.evaluate", expression="document.getElementById('image')")
        browser.send(
            "DOM.setFileInputFiles", files=[post["image"]], objectId=node["result"]["objectId"]
        )
        browser.wait_for("document.getElementById('preview').style.display === 'block'")
        browser.evaluate("document.getElementById('go').click()")
        label = browser.wait_for(
            "['negative','neutral','positive'].includes("
            "document.getElementById('label').textContent) && "
            "document.getElementById('label').textContent"
        )
        bars = browser.evaluate("document.querySelectorAll('#bars .bar').length")
        error = browser.evaluate("document.getElementById('error').textContent")
        assert label in ("negative", "neutral", "positive") and bars == 3 and not error
        shot = browser.send("Page.captureScreenshot", format="png")["data"]
    finally:
        browser.close()
    png = base64.b64decode(shot)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    (tmp_path / "page.png").write_bytes(png)
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(tmp_path / "page.png", os.environ[SCREENSHOT_ENV])

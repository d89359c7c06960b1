"""The try-it page shows an explanation in a real headless browser (Debian's chromium): the
words highlighted, the heatmap drawn over the image, the modality shares, under the page's
own Content-Security-Policy (its hashed script and style only)."""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentimodal.interfaces.server import ServerSettings
from server_fixtures import ThreadServer, sample_posts, train_fusion
from test_server_browser import CHROMIUM, DevTools

#: set to a path to keep the screenshot (docs/img/explain-page.png was made this way)
SCREENSHOT_ENV = "SENTIMODAL_EXPLAIN_SCREENSHOT"


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    model = train_fusion(tmp_path_factory.mktemp("explain-browser") / "fusion")
    with ThreadServer(model, ServerSettings()) as running:
        yield running.base


def test_page_shows_the_explanation(page_server: str, tmp_path: Path) -> None:
    post = sample_posts(3).iloc[2]
    browser = DevTools(tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        attached = browser.send("Target.attachToTarget", targetId=target, flatten=True)
        browser.session = attached["sessionId"]
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            width=820, height=1250, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        browser.send("Page.enable")
        browser.send("Page.navigate", url=f"{page_server}/")
        browser.wait_for(
            "document.readyState === 'complete' && "
            "!document.getElementById('about').textContent.includes('loading')"
        )
        browser.evaluate(f"document.getElementById('text').value = {json.dumps(post['text'])}")
        node = browser.send("Runtime.evaluate", expression="document.getElementById('image')")
        browser.send(
            "DOM.setFileInputFiles", files=[post["image"]], objectId=node["result"]["objectId"]
        )
        browser.wait_for("document.getElementById('preview').style.display === 'block'")
        browser.evaluate("document.getElementById('go').click()")
        browser.wait_for("!document.getElementById('why').classList.contains('hidden')")
        browser.wait_for("document.getElementById('heat').width > 0")
        words = browser.evaluate(
            "[...document.querySelectorAll('#words span')].map((s) => s.textContent)"
        )
        assert words == post["text"].split()
        tinted = browser.evaluate(
            "[...document.querySelectorAll('#words span')]"
            ".filter((s) => s.style.backgroundColor !== '').length"
        )
        assert tinted == len(words)
        shares = browser.evaluate("document.querySelectorAll('#shares .bar').length")
        assert shares == 2
        # the concatenation's own weights per modality, beside the occlusion's shares
        assert browser.evaluate("document.querySelectorAll('#network .bar').length") == 2
        assert not browser.evaluate(
            "document.getElementById('network-box').classList.contains('hidden')"
        )
        # the heatmap is drawn: the canvas differs from the plain image somewhere
        drawn = browser.evaluate(
            "(() => { const c = document.getElementById('heat');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s > 0; })()"
        )
        assert drawn
        assert "occlusion" in browser.evaluate("document.getElementById('method').textContent")
        assert not browser.evaluate("document.getElementById('error').textContent")
        shot = browser.send("Page.captureScreenshot", format="png")["data"]
    finally:
        browser.close()
    png = base64.b64decode(shot)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    (tmp_path / "page.png").write_bytes(png)
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(tmp_path / "page.png", os.environ[SCREENSHOT_ENV])

"""The try-it page in a real headless browser (Debian's chromium), driven over the DevTools
protocol on a pipe: the page loads, a text and an image go in, a prediction comes back."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentimodal.interfaces.server import ServerSettings
from server_fixtures import ThreadServer, sample_posts, train_fusion

CHROMIUM = Path("/usr/bin/chromium")
#: set to a path to keep the screenshot (docs/img/serve-page.png was made this way)
SCREENSHOT_ENV = "SENTIMODAL_SCREENSHOT"


class DevTools:
    """Chromium with ``--remote-debugging-pipe``: JSON commands on fd 3, answers on fd 4."""

    def __init__(self, user_data: Path) -> None:
        to_chrome_r, self._write = os.pipe()
        self._read, from_chrome_w = os.pipe()

        def wire_fds() -> None:
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.process = subprocess.Popen(
            [
                str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-extensions", f"--user-data-dir={user_data}",
                "--remote-debugging-pipe", "about:blank",
            ],
            preexec_fn=wire_fds, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next = 0
        self.session: str | None = None

    def send(self, method: str, timeout: float = 20, **params: Any) -> dict:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" not in self._buffer:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
        raise TimeoutError(method)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(expression)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        os.close(self._write)
        os.close(self._read)


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

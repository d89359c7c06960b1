"""The one fetcher: address rules (SSRF), URL checks, deadlines, caps, redirects and retries,
against a fault-injecting server on 127.0.0.1 (reached with ``allow_private=True``)."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fault_server import (
    FaultServer,
    drip,
    fail_then_ok,
    jpeg_bytes,
    ok,
    redirect,
    running_server,
    status,
    truncated,
    unsized,
)
from sentimodal.errors import RecordError
from sentimodal.features.images import load_image
from sentimodal.net import FetchError, FetchPolicy, addresses, fetch, resolve
from sentimodal.preparation.filters import ImageCheck, check_image_url
from sentimodal.sources.record import Post

PHOTO = jpeg_bytes()
LOCAL = FetchPolicy(allow_private=True, timeout=2, deadline=5, backoff=0.01)


@pytest.fixture()
def server() -> Iterator[FaultServer]:
    with running_server() as running:
        yield running


# --- address rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/x.jpg", "refused: loopback address 127.0.0.1"),
        ("http://127.8.9.10/x.jpg", "refused: loopback address 127.8.9.10"),
        ("http://[::1]/x.jpg", "refused: loopback address ::1"),
        ("http://10.0.0.1/x.jpg", "refused: private address 10.0.0.1"),
        ("http://10.255.1.2/x.jpg", "refused: private address 10.255.1.2"),
        ("http://172.16.0.1/x.jpg", "refused: private address 172.16.0.1"),
        ("http://172.31.255.254/x.jpg", "refused: private address 172.31.255.254"),
        ("http://192.168.1.1/x.jpg", "refused: private address 192.168.1.1"),
        ("http://169.254.169.254/latest/meta-data/", "refused: cloud metadata address"),
        ("http://169.254.1.1/x", "refused: link-local address 169.254.1.1"),
        ("http://[fe80::1]/x", "refused: link-local address fe80::1"),
        ("http://[fc00::5]/x", "refused: private address fc00::5"),
        ("http://[::ffff:10.0.0.1]/x", "refused: private address 10.0.0.1"),
        ("http://224.0.0.1/x", "refused: multicast address 224.0.0.1"),
        ("http://0.0.0.0/x", "refused: unspecified address 0.0.0.0"),
        ("http://240.0.0.1/x", "refused: reserved address 240.0.0.1"),
        ("http://100.64.0.1/x", "refused: non-public address 100.64.0.1"),
        ("file:///etc/passwd", "refused: scheme 'file'"),
        ("ftp://example.com/x.jpg", "refused: scheme 'ftp'"),
        ("gopher://example.com/x", "refused: scheme 'gopher'"),
        ("http://exa mple.com/x.jpg", "invalid URL (contains a space)"),
        ("http://example.com/a b.jpg", "invalid URL (contains a space)"),
        ("http:///x.jpg", "invalid URL (no host)"),
        ("http://example.com:99999/x", "invalid URL"),
    ],
)
def test_refused_before_any_connection(
    url: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_socket(*args: object, **kwargs: object) -> None:
        raise AssertionError("a refused URL must not open a connection")

    monkeypatch.setattr(socket, "create_connection", no_socket)
    with pytest.raises(FetchError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        fetch(url)


def fake_resolver(answers: dict[str, list[str]]):
    def getaddrinfo(host: str, port: int) -> list[tuple]:
        if host not in answers:
            raise socket.gaierror(-2, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    return getaddrinfo


def test_host_names_are_checked_after_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        addresses,
        "getaddrinfo",
        fake_resolver(
            {
                "metadata.example": ["169.254.169.254"],
                "intranet.example": ["192.168.0.10"],
                "mixed.example": ["93.184.216.34", "10.1.2.3"],
                "public.example": ["93.184.216.34"],
            }
        ),
    )
    with pytest.raises(FetchError, match="refused: cloud metadata address 169.254.169.254"):
        fetch("http://metadata.example/latest/")
    with pytest.raises(FetchError, match="refused: private address 192.168.0.10"):
        fetch("https://intranet.example/x.jpg")
    # one private answer among public ones refuses the name
    with pytest.raises(FetchError, match="refused: private address 10.1.2.3"):
        resolve("mixed.example", 80)
    assert resolve("public.example", 80) == [ipaddress.ip_address("93.184.216.34")]
    assert resolve("intranet.example", 80, allow_private=True) == [
        ipaddress.ip_address("192.168.0.10")
    ]
    with pytest.raises(FetchError, match="cannot resolve host 'nowhere.example'"):
        fetch("http://nowhere.example/x")


def test_the_connection_goes_to_the_checked_address(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name is resolved once: the connection uses that answer, not a second lookup (which a
    rebinding DNS server could answer with a private address)."""
    server.routes["/a.jpg"] = ok(PHOTO)
    port = server.server_address[1]
    answers = iter([["127.0.0.1"], ["10.9.9.9"]])
    monkeypatch.setattr(
        addresses,
        "getaddrinfo",
        lambda host, p: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, p)) for a in next(answers)
        ],
    )
    response = fetch(f"http://photos.example:{port}/a.jpg", LOCAL)
    assert response.body == PHOTO


def _public_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat 127.0.0.1 (the test server) as public, so the default rules apply to the rest."""
    original = addresses.refusal
    loopback = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(addresses, "refusal", lambda ip: None if ip == loopback else original(ip))


def test_redirects_are_checked_again(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    _public_loopback(monkeypatch)
    server.routes["/to-metadata"] = redirect("http://169.254.169.254/latest/meta-data/")
    server.routes["/to-private"] = redirect("http://10.0.0.1/admin")
    server.routes["/to-file"] = redirect("file:///etc/passwd")
    server.routes["/hop"] = redirect("/photo.jpg", code=301)
    server.routes["/photo.jpg"] = ok(PHOTO)
    public = FetchPolicy(timeout=2, deadline=5)
    with pytest.raises(FetchError, match="refused: cloud metadata address 169.254.169.254"):
        fetch(server.url("/to-metadata"), public)
    with pytest.raises(FetchError, match="refused: private address 10.0.0.1"):
        fetch(server.url("/to-private"), public)
    with pytest.raises(FetchError, match="refused: scheme 'file'"):
        fetch(server.url("/to-file"), public)
    response = fetch(server.url("/hop"), public)
    assert response.body == PHOTO and response.final_url == server.url("/photo.jpg")
    assert response.redirects == [server.url("/photo.jpg")]


def test_redirects_are_bounded(server: FaultServer) -> None:
    server.routes["/loop"] = redirect("/loop")
    with pytest.raises(FetchError, match="too many redirects"):
        fetch(server.url("/loop"), LOCAL.model_copy(update={"max_redirects": 3}))
    assert server.counts()["/loop"] == 4


def test_loopback_needs_the_opt_in(server: FaultServer) -> None:
    server.routes["/a.jpg"] = ok(PHOTO)
    with pytest.raises(FetchError, match="refused: loopback address 127.0.0.1"):
        fetch(server.url("/a.jpg"))
    assert fetch(server.url("/a.jpg"), LOCAL).body == PHOTO
    assert server.counts()["/a.jpg"] == 1


# --- deadlines, caps, statuses, retries ------------------------------------------------------


def test_a_dripping_server_fails_by_the_deadline(server: FaultServer) -> None:
    server.routes["/drip.jpg"] = drip(PHOTO, interval=0.2)
    policy = FetchPolicy(allow_private=True, timeout=0.5, deadline=1.0, retries=3)
    start = time.monotonic()
    with pytest.raises(FetchError, match="timed out after 1 s"):
        fetch(server.url("/drip.jpg"), policy)
    assert time.monotonic() - start < 1.6


def test_a_silent_server_fails_by_the_read_timeout(server: FaultServer) -> None:
    server.routes["/silent.jpg"] = drip(PHOTO, interval=5)
    policy = FetchPolicy(allow_private=True, timeout=0.3, deadline=0.9, retries=0)
    start = time.monotonic()
    with pytest.raises(FetchError, match=r"timed out after 0.3 s") as caught:
        fetch(server.url("/silent.jpg"), policy)
    assert caught.value.retryable and time.monotonic() - start < 0.8


def test_http_errors_are_reasons(server: FaultServer) -> None:
    with pytest.raises(FetchError, match="^HTTP 404$") as caught:
        fetch(server.url("/missing.jpg"), LOCAL)
    assert not caught.value.retryable and caught.value.category == "HTTP 404"
    assert server.counts()["/missing.jpg"] == 1  # a 404 is not retried


def test_500_then_200_is_retried(server: FaultServer) -> None:
    server.routes["/flaky.jpg"] = fail_then_ok(1, 500, PHOTO)
    waits: list[float] = []
    response = fetch(server.url("/flaky.jpg"), LOCAL, sleep=waits.append)
    assert response.body == PHOTO and response.attempts == 2
    assert server.counts()["/flaky.jpg"] == 2
    assert len(waits) == 1 and 0.005 <= waits[0] <= 0.015  # backoff 0.01 s +- 50 % jitter


def test_backoff_grows_exponentially_and_stops(server: FaultServer) -> None:
    server.routes["/down.jpg"] = status(503)
    waits: list[float] = []
    policy = LOCAL.model_copy(update={"retries": 3, "backoff": 0.1})
    with pytest.raises(FetchError, match="HTTP 503"):
        fetch(server.url("/down.jpg"), policy, sleep=waits.append)
    assert server.counts()["/down.jpg"] == 4
    for attempt, wait in enumerate(waits):
        assert 0.05 * 2**attempt <= wait <= 0.15 * 2**attempt


def test_429_honours_retry_after(server: FaultServer) -> None:
    server.routes["/busy.jpg"] = fail_then_ok(1, 429, PHOTO, Retry_After="2")
    server.routes["/closed.jpg"] = status(429, Retry_After="3600")
    waits: list[float] = []
    assert fetch(server.url("/busy.jpg"), LOCAL, sleep=waits.append).body == PHOTO
    assert waits == [2.0]
    # a wait beyond the policy's bound is not honoured: the fetch fails at once
    with pytest.raises(FetchError, match="HTTP 429"):
        fetch(server.url("/closed.jpg"), LOCAL, sleep=waits.append)
    assert waits == [2.0] and server.counts()["/closed.jpg"] == 1


def test_retries_stop_at_the_deadline(server: FaultServer) -> None:
    server.routes["/busy.jpg"] = status(429, Retry_After="2")
    policy = LOCAL.model_copy(update={"deadline": 1.0, "retries": 5})
    with pytest.raises(FetchError, match="HTTP 429"):
        fetch(server.url("/busy.jpg"), policy, sleep=lambda s: pytest.fail("slept"))
    assert server.counts()["/busy.jpg"] == 1


def test_truncated_and_oversized_bodies(server: FaultServer) -> None:
    server.routes["/cut.jpg"] = truncated(PHOTO)
    server.routes["/big.jpg"] = ok(b"x" * 5000)
    server.routes["/big-unsized.jpg"] = unsized(b"x" * 50_000)
    no_retry = LOCAL.model_copy(update={"retries": 1, "max_bytes": 4096})
    with pytest.raises(FetchError, match=r"truncated body \(\d+ of \d+ bytes\)") as caught:
        fetch(server.url("/cut.jpg"), no_retry)
    assert caught.value.retryable and server.counts()["/cut.jpg"] == 2
    with pytest.raises(FetchError, match=r"larger than 4096 bytes \(Content-Length 5000\)"):
        fetch(server.url("/big.jpg"), no_retry)
    with pytest.raises(FetchError, match=r"larger than 4096 bytes \(body\)"):
        fetch(server.url("/big-unsized.jpg"), no_retry)


def test_connection_refused_is_a_reason() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(FetchError, match="connection refused"):
        fetch(f"http://127.0.0.1:{port}/x.jpg", LOCAL.model_copy(update={"retries": 0}))


# --- the callers: features' image loading and prepare's reachability check --------------------


def test_load_image_uses_the_fetcher(server: FaultServer) -> None:
    server.routes["/a.jpg"] = ok(PHOTO)
    server.routes["/page.html"] = ok(b"<html></html>", "text/html")
    assert load_image(server.url("/a.jpg"), policy=LOCAL).size == (32, 24)
    with pytest.raises(RecordError, match="image download failed: refused: loopback address"):
        load_image(server.url("/a.jpg"))
    with pytest.raises(RecordError, match="image download failed: invalid URL"):
        load_image("http://example.com/a photo.jpg")
    with pytest.raises(RecordError, match="not an image"):
        load_image(server.url("/page.html"), policy=LOCAL)
    with pytest.raises(RecordError, match="image download failed: refused: cloud metadata"):
        load_image("http://169.254.169.254/latest/meta-data/")


def test_reachability_check_uses_the_fetcher(server: FaultServer) -> None:
    server.routes["/a.jpg"] = ok(PHOTO)
    server.routes["/no-head.jpg"] = lambda h, n: (
        h.send_status(405) if h.command == "HEAD" else h.send_body(PHOTO[:1], status=206)
    )
    policy = FetchPolicy(allow_private=True, timeout=2, deadline=4, retries=0)
    check_image_url(server.url("/a.jpg"), policy=policy)
    check_image_url(server.url("/no-head.jpg"), policy=policy)
    assert server.log[-2:] == [("HEAD", "/no-head.jpg"), ("GET", "/no-head.jpg")]
    with pytest.raises(RecordError, match=r"refused: private address 10.0.0.1"):
        check_image_url("http://10.0.0.1/a.jpg")
    with pytest.raises(RecordError, match=r"invalid URL \(contains a space\)"):
        ImageCheck(check_urls=True).check(Post(id="1", image="http://example.com/a b.jpg"))
    ImageCheck(check_urls=True, allow_private=True).check(Post(id="2", image=server.url("/a.jpg")))
    with pytest.raises(RecordError, match="refused: loopback address"):
        ImageCheck(check_urls=True).check(Post(id="3", image=server.url("/a.jpg")))


# --- Flickr attributes choose no host ----------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ('farm="1.evil.example/x" server="7" secret="ab12"', "invalid Flickr farm"),
        ('farm="1/../../evil" server="7" secret="ab12"', "invalid Flickr farm"),
        ('farm="8" server="7@169.254.169.254" secret="ab12"', "invalid Flickr server"),
        ('farm="8" server="7" secret="ab12?x=/../"', "invalid Flickr secret"),
        ('farm="8" server="7" secret="xyz"', "invalid Flickr secret"),
    ],
)
def test_flickr_attributes_are_validated(tmp_path: Path, attributes: str, reason: str) -> None:
    from sentimodal.sources.mvso import read_photo_xml
    from sentimodal.sources.record import Reject

    path = tmp_path / "123.xml"
    path.write_text(f'<rsp stat="ok"><photo id="123" {attributes}><title>t</title></photo></rsp>')
    record = read_photo_xml(str(path), "nice_smile", None)
    assert isinstance(record, Reject) and reason in record.reason
    path.write_text('<rsp stat="ok"><photo id="123" farm="8" server="7" secret="ab12"/></rsp>')
    good = read_photo_xml(str(path), "nice_smile", None)
    assert good.image == "https://farm8.staticflickr.com/7/123_ab12.jpg"


def test_a_hanging_resolver_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_resolver(host: str, port: int) -> list[tuple]:
        time.sleep(2)
        return []

    monkeypatch.setattr(addresses, "getaddrinfo", slow_resolver)
    start = time.monotonic()
    with pytest.raises(FetchError, match="timed out after 0.3 s resolving 'slow.example'"):
        fetch("http://slow.example/a.jpg", FetchPolicy(timeout=0.3, deadline=0.5, retries=0))
    assert time.monotonic() - start < 1.0


# --- the opt-in on the command line -------------------------------------------------------------


def test_cli_prepare_and_features_refuse_loopback_unless_allowed(
    server: FaultServer, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from sentimodal.features.reading import load_features
    from sentimodal.interfaces.cli import app
    from sentimodal.preparation.dataset import PreparedDataset

    server.routes["/a.jpg"] = ok(PHOTO)
    local = tmp_path / "local.jpg"
    local.write_bytes(PHOTO)  # a second post, so that the refused run still writes a dataset
    table = tmp_path / "posts.csv"
    table.write_text(
        f"id,text,image,label\n1,hello there,{server.url('/a.jpg')},positive\n"
        f"2,hello again,{local},negative\n"
    )
    runner = CliRunner()
    prepare = [
        *("prepare", "table", str(table), "--text-column", "text", "--image-column", "image"),
        *("--label-column", "label", "--filter", "image-reachable", "--split", "none", "-q"),
    ]
    refused = runner.invoke(app, [*prepare, "--out", str(tmp_path / "refused")])
    assert refused.exit_code == 0, refused.output
    reasons = PreparedDataset.load(tmp_path / "refused").rejects()["reason"].tolist()
    assert len(reasons) == 1 and "refused: loopback address 127.0.0.1" in reasons[0]
    assert not server.log
    allowed = tmp_path / "allowed"
    result = runner.invoke(app, [*prepare, "--out", str(allowed), "--allow-private-addresses"])
    assert result.exit_code == 0, result.output
    assert PreparedDataset.load(allowed).examples["id"].tolist() == ["1", "2"]
    assert server.log == [("HEAD", "/a.jpg")]

    features = ["features", str(allowed), "--image", "pixels32", "--text", "none"]
    denied = runner.invoke(app, [*features, "--workers", "0"])
    assert denied.exit_code == 0, denied.output
    (rejects,) = (allowed / "features" / "image").glob("*/rejects.csv")
    assert "refused: loopback address" in rejects.read_text()
    fresh = tmp_path / "fresh"
    PreparedDataset.load(allowed).save(fresh)
    ok_run = runner.invoke(
        app,
        ["features", str(fresh), "--image", "pixels32", "--text", "none", "--workers", "0"]
        + ["--allow-private-addresses"],
    )
    assert ok_run.exit_code == 0, ok_run.output
    assert load_features(fresh, "image", "pixels32").ids == ["1", "2"]
    assert server.counts()["/a.jpg"] == 2  # the HEAD check, then one GET for the features


# --- TLS: the pinned connection still verifies the certificate against the host name ---------


@pytest.fixture()
def tls_server(server: FaultServer, tmp_path: Path) -> Iterator[tuple[FaultServer, Path]]:
    """The fault server behind TLS with a self-signed certificate for photos.example."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl not available to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=photos.example"),
            *("-addext", "subjectAltName=DNS:photos.example"),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield server, cert


def test_https_to_a_pinned_address_verifies_the_host_name(
    tls_server: tuple[FaultServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import ssl

    fetch_module = importlib.import_module("sentimodal.net.fetch")
    server, cert = tls_server
    server.routes["/a.jpg"] = ok(PHOTO)
    port = server.server_address[1]
    monkeypatch.setattr(
        addresses,
        "getaddrinfo",
        lambda host, p: [(socket.AF_INET, 1, 6, "", ("127.0.0.1", p))],
    )
    # the system's trust store does not know the test certificate
    with pytest.raises(FetchError, match="TLS certificate rejected"):
        fetch(f"https://photos.example:{port}/a.jpg", LOCAL.model_copy(update={"retries": 0}))
    trusting = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(fetch_module, "_tls_context", lambda: trusting)
    assert fetch(f"https://photos.example:{port}/a.jpg", LOCAL).body == PHOTO
    # the certificate names photos.example: another name on the same address is refused
    with pytest.raises(FetchError, match="TLS certificate rejected"):
        fetch(f"https://other.example:{port}/a.jpg", LOCAL.model_copy(update={"retries": 0}))

"""Where a fetch may go and where a download may write (issue 25, low items).

IPv6 addresses that embed an IPv4 address a tunnel or translator connects to (6to4, Teredo,
NAT64) follow the IPv4 rules; site-local fec0::/10 is refused. Two downloads never share an
output folder, a killed one does not block the next, and a download never writes over a
folder that is not its own output.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hardening import assert_user_error, invoke
from sentimodal.download import download
from sentimodal.download.run import OWNER_FILE
from sentimodal.errors import UserInputError
from sentimodal.files import LOCK_FILE, claim_folder
from sentimodal.net import FetchError
from sentimodal.net.addresses import check_address, embedded_ipv4
from test_hardening_concurrency import held_by_another_process


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("2002:7f00:1::", "loopback address 127.0.0.1 (embedded in 2002:7f00:1::)"),
        ("2002:a9fe:1::", "link-local address 169.254.0.1"),
        ("2002:a9fe:a9fe::", "cloud metadata address 169.254.169.254"),
        ("2002:c0a8:101::1", "private address 192.168.1.1"),
        ("fec0::1", "site-local address fec0::1"),
        ("fef0:1::", "site-local address"),
        ("64:ff9b::10.0.0.1", "private address 10.0.0.1 (embedded in 64:ff9b::a00:1)"),
        ("64:ff9b::127.0.0.1", "loopback address 127.0.0.1"),
        ("64:ff9b:1::a9fe:a9fe", "cloud metadata address 169.254.169.254"),
        # Teredo: server 65.54.227.120, client 127.0.0.1 (stored inverted: 80ff:fffe)
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback address 127.0.0.1"),
    ],
)
def test_ipv6_embeddings_of_refused_addresses_are_refused(address: str, reason: str) -> None:
    with pytest.raises(
        FetchError, match="refused: " + reason.replace("(", r"\(").replace(")", r"\)")
    ):
        check_address(address)
    check_address(address, allow_private=True)  # the opt-in still reaches them


def test_public_ipv6_and_public_6to4_pass() -> None:
    check_address("2606:4700:4700::1111")
    check_address("2002:808:808::1")  # 6to4 of 8.8.8.8
    assert [str(ip) for ip in embedded_ipv4(check_address("2002:808:808::1"))] == ["8.8.8.8"]


def _table(path: Path, url: str = "http://10.0.0.1/a.jpg") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label", "url"])
        writer.writerow(["1", "hello", "positive", url])
    return path


def _download(table: Path, out: Path) -> None:
    download(table, out, image_column="url", id_column="id", progress=False, retries=0)


def test_download_into_a_folder_in_use_names_the_pid(tmp_path: Path) -> None:
    table, out = _table(tmp_path / "t.csv"), tmp_path / "out"
    with held_by_another_process(out) as pid:
        result = invoke("download", table, "--out", out, "--image-column", "url", "-q")
        assert_user_error(result, f"in use by pid {pid}")
    assert not (out / "stats.json").exists()


def test_a_killed_downloads_lock_does_not_block(tmp_path: Path) -> None:
    table, out = _table(tmp_path / "t.csv"), tmp_path / "out"
    code = (
        "import sys, time\n"
        "from sentimodal.files import folder_lock\n"
        "with folder_lock(sys.argv[1]):\n"
        "    print('locked', flush=True); time.sleep(30)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    assert (out / LOCK_FILE).exists()  # left behind, held by nobody
    _download(table, out)
    assert (out / "stats.json").is_file() and not (out / LOCK_FILE).exists()


def test_download_refuses_an_unrelated_folder_and_resumes_its_own(tmp_path: Path) -> None:
    table, out = _table(tmp_path / "t.csv"), tmp_path / "out"
    out.mkdir()
    (out / "dataset.json").write_text("{}")  # someone else's dataset
    with pytest.raises(UserInputError, match="not empty and was not written by this command"):
        _download(table, out)
    assert (out / "dataset.json").read_text() == "{}"
    mine = tmp_path / "mine"
    _download(table, mine)
    _download(table, mine)  # a rerun resumes its own output
    other = _table(tmp_path / "other.csv", "http://10.0.0.2/b.jpg")
    with pytest.raises(UserInputError, match="holds the output of another run"):
        _download(other, mine)
    assert (mine / OWNER_FILE).is_file()


def test_claim_folder_is_generic(tmp_path: Path) -> None:
    claim_folder(tmp_path, ".owner.json", {"a": 1})
    claim_folder(tmp_path, ".owner.json", {"a": 1})
    with pytest.raises(UserInputError, match="another run"):
        claim_folder(tmp_path, ".owner.json", {"a": 2})
    (tmp_path / ".owner.json").write_text("not json")
    with pytest.raises(UserInputError, match="another run"):
        claim_folder(tmp_path, ".owner.json", {"a": 1})

"""The documentation site (mkdocs.yml, docs/) and the README's links: every page is in the
nav, every link and API reference resolves, and the strict build passes (CI runs it too, as
`make docs`)."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def _nav_pages(entries: list[Any]) -> list[str]:
    pages = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


class _MkdocsLoader(yaml.SafeLoader):
    """The safe loader plus mkdocs' ``!relative`` tag (a path relative to mkdocs.yml)."""


_MkdocsLoader.add_constructor("!relative", lambda loader, node: loader.construct_scalar(node))


def _mkdocs() -> dict[str, Any]:
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_MkdocsLoader)


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    nav = _nav_pages(_mkdocs()["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(nav) == pages
    assert len(set(nav)) == len(nav)


def test_readme_links_point_at_files_that_exist() -> None:
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [link.split("#")[0] for link in links if not re.match(r"[a-z]+:", link)]
    assert "docs/guide/getting-started.md" in local and "docs/security.md" in local
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing


def test_readme_first_screen_is_the_two_set_up_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    assert [line.split("#")[0].strip() for line in first.splitlines()] == ["make demo", "make test"]
    # the sections the docs include from the README are there, each once
    for section in re.findall(r'--8<-- "README.md:(\w+)"', "".join(
        p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md")
    )):  # fmt: skip
        assert text.count(f"[start:{section}]") == text.count(f"[end:{section}]") == 1


def test_every_api_reference_names_an_importable_object() -> None:
    names = [
        name
        for page in (DOCS / "reference").glob("*.md")
        for name in re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), flags=re.M)
    ]
    assert "sentimodal.training.estimator.SentimentModel" in names
    for name in names:
        module, _, attribute = name.rpartition(".")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            assert hasattr(importlib.import_module(module), attribute), name


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    site = tmp_path / "site"
    page = (site / "guide" / "getting-started" / "index.html").read_text(encoding="utf-8")
    assert "Commands follow the data" in page and "--8&lt;--" not in page  # the README's tour
    assert "predict_proba" in (site / "reference" / "models" / "index.html").read_text()


@pytest.mark.parametrize("page", ["security.md", "performance.md"])
def test_pages_moved_out_of_the_readme_keep_their_measurements(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    facts = {"security.md": ["697 MiB idle, 859 MiB", "64,000,000 pixels"],
             "performance.md": ["3 min 17 s", "17,022 files/s"]}[page]  # fmt: skip
    assert all(fact in text for fact in facts)
    assert not any(fact in README.read_text(encoding="utf-8") for fact in facts)

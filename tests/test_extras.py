"""Optional parts of the install: a missing extra is one line naming it (exit 2 in the CLI),
the extras are declared in pyproject and kept out of the core, and the version has one source."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import sentimodal
from sentimodal import extras
from sentimodal.extras import EXTRAS, MissingExtra, import_extra, require_extra
from sentimodal.interfaces.cli import app

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
runner = CliRunner()


def test_serve_without_the_server_extra_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "fastapi_offline", None)  # as if never installed
    result = runner.invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: the server needs the [server] extra: pip install 'sentimodal[server]'"
    )


def test_serve_onnx_without_onnxruntime_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    result = runner.invoke(app, ["serve", str(tmp_path), "--runtime", "onnx"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: the onnx runtime needs the [onnx] extra: pip install 'sentimodal[onnx]'"
    )


@pytest.mark.parametrize(("extra", "module"), [(e, m) for e, ms in EXTRAS.items() for m in ms])
def test_each_module_of_an_extra_names_its_extra_when_missing(
    monkeypatch: pytest.MonkeyPatch, extra: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtra, match=re.escape(f"pip install 'sentimodal[{extra}]'")):
        require_extra(extra, "this")


def test_onnx_export_without_onnx_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sentimodal.export.onnx import export_onnx

    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingExtra, match=r"^ONNX export needs the \[onnx\] extra"):
        export_onnx(tmp_path / "model", tmp_path / "out")


def test_a_broken_dependency_inside_an_extra_is_not_called_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(name: str) -> None:
        raise ModuleNotFoundError("No module named 'starlette'", name="starlette")

    monkeypatch.setattr(extras.importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="starlette"):
        import_extra("fastapi", "server", "the server")


def test_extras_are_declared_and_kept_out_of_the_core() -> None:
    project = PYPROJECT["project"]
    optional = project["optional-dependencies"]
    assert {"server", "onnx", "ray", "dev", "docs"} <= optional.keys()
    assert set(EXTRAS) <= optional.keys()

    def name(requirement: str) -> str:
        return re.split(r"[\[<>=~ ;]", requirement, maxsplit=1)[0].lower()

    core = {name(r) for r in project["dependencies"]}
    for extra in EXTRAS:
        assert not core & {name(r) for r in optional[extra]}, extra
    # the tests and the docs build use every extra: dev installs them all
    (own,) = [r for r in optional["dev"] if r.startswith("sentimodal[")]
    assert set(own[len("sentimodal[") : -1].replace(" ", "").split(",")) == {*EXTRAS, "docs"}


def test_the_version_has_one_source_and_the_changelog_names_it() -> None:
    assert "version" not in PYPROJECT["project"]
    assert "version" in PYPROJECT["project"]["dynamic"]
    source = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert source == {"attr": "sentimodal.__version__"}
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"sentimodal {sentimodal.__version__}"
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    latest = re.search(r"^## \[?(\d[^\] ]*)", changelog, flags=re.M)
    assert latest is not None and latest.group(1) == sentimodal.__version__

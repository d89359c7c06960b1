"""Installed like a library (slow): `python -m build` makes an sdist and, from it, a wheel that
`twine check` passes; the wheel carries the sample as package data and declares the extras
apart from the core; installed into a fresh virtualenv, its `sentimodal demo` runs.

The fresh virtualenv sees this environment's packages through a path file (torch is too big to
install again), but not this checkout: the wheel is installed with pip's dependency resolution
and no index, so every requirement its metadata declares must be met, and the package that
runs is the wheel's own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from sentimodal import __version__
from sentimodal.analysis.demo import DemoConfig
from sentimodal.extras import EXTRAS

ROOT = Path(__file__).resolve().parents[1]
#: what a checkout holds beside the project's source (at its top, and anywhere)
_NOT_SOURCE_TOP = {".git", ".venv", "runs", "models", "build", "dist", "site"}
_NOT_SOURCE = shutil.ignore_patterns("*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache")


def _not_source(folder: str, names: list[str]) -> set[str]:
    top = _NOT_SOURCE_TOP if Path(folder) == ROOT else set()
    return top & set(names) | _NOT_SOURCE(folder, names)


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_the_wheel_installs_in_a_fresh_venv_and_runs_the_demo(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=_not_source)
    dist = tmp_path / "dist"
    # no isolated build environment: the build backend is this environment's (dev extra)
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, source, cwd=tmp_path)
    (wheel,) = dist.glob("sentimodal-*.whl")
    (sdist,) = dist.glob("sentimodal-*.tar.gz")
    assert wheel.name == f"sentimodal-{__version__}-py3-none-any.whl"
    _run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist, cwd=tmp_path)

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = Parser().parsestr(
            archive.read(f"sentimodal-{__version__}.dist-info/METADATA").decode()
        )
    sample = "sentimodal/sample/mvsa_single/"
    assert f"{sample}labelResultAll.txt" in names
    assert sum(n.startswith(f"{sample}data/") for n in names) == 1200  # 600 texts + images
    assert "sentimodal/interfaces/server/page.html" in names
    assert not any(n.startswith("tests/") for n in names)
    assert set(metadata.get_all("Provides-Extra")) >= {*EXTRAS, "dev", "docs"}
    core = [r for r in metadata.get_all("Requires-Dist") if "extra ==" not in r]
    assert not any(r.startswith(("fastapi", "uvicorn", "onnx", "ray", "mkdocs")) for r in core)

    venv = tmp_path / "fresh"
    # no pip or setuptools of its own: those of this environment, seen through the path file
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    fresh_python = venv / "bin" / "python"
    site = _run(
        fresh_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        cwd=tmp_path,
    ).strip()  # fmt: skip
    (Path(site) / "outer-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"HF_HUB_OFFLINE": "1", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    _run(fresh_python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path, env=env)
    where = _run(
        fresh_python, "-c", "import sentimodal; print(sentimodal.__file__)", cwd=tmp_path, env=env
    )
    assert Path(where.strip()).is_relative_to(Path(site)), where
    script = venv / "bin" / "sentimodal"
    assert _run(script, "--version", cwd=tmp_path, env=env).strip() == f"sentimodal {__version__}"

    config = DemoConfig.model_validate(
        {
            "image_encoder": "pixels32",
            "text_encoder": "vader",
            "train": {"epochs": 3, "patience": None},
            "models": [
                {"name": "text", "title": "Text only", "model": "text"},
                {"name": "image", "title": "Image only", "model": "image"},
                {"name": "concat", "title": "Concatenation", "model": "concat"},
            ],
            "baselines": ["majority"],
            "max_examples": 3,
        }
    ).save(tmp_path / "demo.yaml")
    shown = _run(script, "demo", "--config", config, "--out", "demo", "-q", cwd=tmp_path, env=env)
    assert "Concatenation" in shown and (tmp_path / "demo" / "report.html").is_file()

"""`sentimodal features`: folders, summary, cache hits, config files, one-line errors (exit 2)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from sentimodal.features.reading import load_features
from sentimodal.interfaces.cli import app
from sentimodal.preparation.dataset import PreparedDataset

runner = CliRunner()


@pytest.fixture()
def dataset_dir(tmp_path: Path) -> Path:
    """Six posts with small images, one unreadable; four train posts, one val, one test."""
    rows = []
    for i in range(6):
        image = tmp_path / f"{i}.png"
        if i == 4:
            image.write_bytes(b"\x89PNG broken")
        else:
            Image.new("RGB", (50, 40), (40 * i, 255 - 40 * i, 90)).save(image)
        rows.append(
            {
                "id": f"post{i}",
                "text": f"what a {'lovely' if i % 2 else 'dreadful'} day number {i}!",
                "image": str(image),
                "label": "positive" if i % 2 else "negative",
                "split": ["train", "train", "train", "train", "val", "test"][i],
            }
        )
    root = tmp_path / "ds"
    PreparedDataset.from_dataframe(
        pd.DataFrame(rows), id_column="id", image_column="image", split_column="split", root=root
    )
    return root


def table_row(output: str, name: str) -> list[str]:
    """The cells of the summary table's row ``name``."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if cells[0] == name:
            return cells[1:]
    raise AssertionError(f"no row {name!r} in:\n{output}")


def features_folder(root: Path, kind: str) -> Path:
    (folder,) = (root / "features" / kind).iterdir()
    return folder


def test_features_then_cache_hit(dataset_dir: Path) -> None:
    args = ["features", str(dataset_dir), "--image", "pixels32", "--text", "tokens"]
    result = runner.invoke(app, [*args, "--workers", "0", "--shard-size", "2"])
    assert result.exit_code == 0, result.output
    assert table_row(result.output, "cache") == ["computed", "computed"]
    assert table_row(result.output, "rows train") == ["4", "4"]
    assert table_row(result.output, "rejects") == ["1", "0"]
    image_folder = features_folder(dataset_dir, "image")
    assert image_folder.name.startswith("pixels32-")
    assert sorted(p.name for p in image_folder.glob("shard-*")) == [
        "shard-00000.safetensors",
        "shard-00001.safetensors",
        "shard-00002.safetensors",
    ]
    assert (features_folder(dataset_dir, "text") / "vocab.json").is_file()
    rejects = pd.read_csv(image_folder / "rejects.csv")
    assert rejects["id"].tolist() == ["post4"]

    images = load_features(dataset_dir, "image", "pixels32")
    assert images.ids == ["post0", "post1", "post2", "post3", "post5"]
    assert images.values.shape == (5, 3072)
    # post0 is one flat colour: every pixel of every channel equals it
    np.testing.assert_allclose(images.values[0].reshape(3, -1).mean(1), [0, 1, 90 / 255], atol=1e-6)

    again = runner.invoke(app, [*args, "--workers", "0"])
    assert again.exit_code == 0, again.output
    assert table_row(again.output, "cache") == ["hit", "hit"]


def test_text_only_float16(dataset_dir: Path) -> None:
    result = runner.invoke(
        app, ["features", str(dataset_dir), "--image", "none", "--text", "vader", "--float16"]
    )
    assert result.exit_code == 0, result.output
    assert not (dataset_dir / "features" / "image").exists()
    meta = json.loads((features_folder(dataset_dir, "text") / "meta.json").read_text())
    assert meta["dtype"] == "float16" and meta["shape"] == [4]
    assert load_features(dataset_dir, "text", "vader").values.dtype == np.float32


def test_config_file_with_overrides(dataset_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "features.yaml"
    config.write_text(
        "image: pixels32\ntext: null\nbatch_size: 2\nimage_config: {flatten: false}\n"
    )
    args = ["features", str(dataset_dir), "--config", str(config), "--batch-size", "3"]
    result = runner.invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert not (dataset_dir / "features" / "text").exists()
    meta = json.loads((features_folder(dataset_dir, "image") / "meta.json").read_text())
    assert meta["extraction"]["batch_size"] == 3 and meta["extraction"]["text"] is None
    assert meta["config"] == {"flatten": False} and meta["shape"] == [3, 32, 32]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-size", "0"], "batch_size"),
        (["--image", "no_such_encoder"], "unknown image encoder"),
        (["--image", "pixels32", "--image-weights", "none"], "bad settings for image encoder"),
        (["--engine", "spark"], "engine"),
        (["--engine", "ray"], "[ray] extra"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    dataset_dir: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], message: str
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as where Ray is not installed
    result = runner.invoke(app, ["features", str(dataset_dir), "--text", "none", *extra])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (dataset_dir / "features").exists()


def test_missing_dataset_is_a_user_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["features", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "not a prepared dataset" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [("image: [unclosed\n", "unreadable config file"), ("colour: red\n", "colour")],
)
def test_bad_config_files_are_user_errors(
    dataset_dir: Path, tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "features.yaml"
    config.write_text(text)
    result = runner.invoke(app, ["features", str(dataset_dir), "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("encoder", ["resnet50", "alexnet"])
def test_torchvision_weights_offline_are_one_line_naming_the_way_out(
    dataset_dir: Path, monkeypatch: pytest.MonkeyPatch, encoder: str
) -> None:
    """The study's backbones download torchvision's files on first use; offline that is a
    one-line error (exit 2) saying how to give them, never a traceback."""
    import urllib.error

    import torchvision.models._api as api

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    args = ["features", str(dataset_dir), "--image", encoder, "--text", "none", "--workers", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if "cannot download" in line]
    assert "--image-weights FILE" in " ".join(result.output.split())
    assert not list((dataset_dir / "features").glob("image/*/shard-*"))

"""Config and spec files are user input: bombs, junk and bad values give one line, exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hardening import assert_user_error, invoke
from sentimodal.config import MAX_CONFIG_BYTES, MAX_YAML_ALIASES, load_data
from sentimodal.errors import UserInputError
from sentimodal.sample import sample_path
from sentimodal.training.run_config import RunConfig

#: 1 KB that expands to 10^9 list items in a naive YAML loader
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_alias_bomb_is_refused_by_the_loader(tmp_path: Path) -> None:
    assert len(ALIAS_BOMB) < 1100
    with pytest.raises(UserInputError, match="aliases"):
        load_data(write(tmp_path, "bomb.yaml", ALIAS_BOMB))


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    text = "base: &b {lr: 0.1}\n" + "".join(f"r{i}: *b\n" for i in range(MAX_YAML_ALIASES))
    data = load_data(write(tmp_path, "ok.yaml", text))
    assert data["r0"] == {"lr": 0.1}


@pytest.mark.parametrize(
    "command",
    [
        ["train", "DATA", "--out", "OUT/m", "--config", "CONFIG"],
        ["features", "DATA", "--config", "CONFIG"],
        ["prepare", "mvsa", "DATA", "--out", "OUT/d", "--config", "CONFIG"],
        ["experiment", "CONFIG", "--data", "DATA", "--out", "OUT/e"],
    ],
    ids=["train", "features", "prepare", "experiment"],
)
def test_alias_bomb_in_every_config_option(tmp_path: Path, command: list[str]) -> None:
    config = write(tmp_path, "bomb.yaml", ALIAS_BOMB)
    names = {"CONFIG": str(config), "DATA": str(sample_path()), "OUT": str(tmp_path)}
    args = [names.get(a, a.replace("OUT", str(tmp_path))) for a in command]
    assert_user_error(invoke(*args), "aliases")


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("c.yaml", "train: [unclosed\n", "unreadable config file"),
        ("c.json", '{"train": ', "unreadable config file"),
        ("c.yaml", "colour: red\n", "colour"),
        ("c.yaml", "train: {epochs: many}\n", "train.epochs"),
        ("c.yaml", "train: {epochs: -3}\n", "train.epochs"),
        ("c.yaml", "train: {batch_size: 0}\n", "train.batch_size"),
        ("c.yaml", b"model: text\ntitle: caf\xe9\n", "not UTF-8"),
        ("c.yaml", "train: {lr: .inf}\n", "finite"),
        ("c.json", '{"train": {"lr": NaN}}', "finite"),
        ("c.yaml", "- just\n- a list\n", "mapping"),
        ("c.yaml", "train: {seed: -1}\n", "train.seed"),
        ("c.yaml", "train: {seed: 99999999999999999999}\n", "train.seed"),
        ("c.yaml", "[" * 5000 + "]" * 5000, "config"),
    ],
)
def test_train_config_problems_are_one_line(
    tmp_path: Path, name: str, content: str | bytes, needle: str
) -> None:
    config = write(tmp_path, name, content)
    result = invoke("train", sample_path(), "--out", tmp_path / "m", "--config", config)
    assert_user_error(result, needle)


@pytest.mark.parametrize(
    "flags",
    [["--lr", "inf"], ["--lr", "nan"], ["--seed", "-1"], ["--seed", str(2**70)]],
)
def test_train_flags_out_of_range(tmp_path: Path, flags: list[str]) -> None:
    result = invoke("train", sample_path(), "--out", tmp_path / "m", *flags)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output


@pytest.mark.parametrize("flags", [["--seed", "-1"], ["--anp-positive", "nan"]])
def test_prepare_numbers_out_of_range(tmp_path: Path, flags: list[str]) -> None:
    result = invoke("prepare", "mvsa", sample_path(), "--out", tmp_path / "d", "--quiet", *flags)
    assert_user_error(result)


def test_config_symlinked_to_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "c.yaml"
    os.symlink("/dev/zero", link)
    with pytest.raises(UserInputError, match="not a regular file"):
        RunConfig.load(link)


def test_oversized_config_is_refused(tmp_path: Path) -> None:
    config = write(tmp_path, "c.yaml", "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    with pytest.raises(UserInputError, match="larger than"):
        RunConfig.load(config)


def test_config_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    with pytest.raises(UserInputError, match="FIFO"):
        RunConfig.load(fifo)


def test_huge_experiment_grid_is_refused(tmp_path: Path) -> None:
    values = ", ".join(str(v) for v in range(100))
    keys = ["train.epochs", "train.batch_size", "train.lr", "train.patience"]
    spec = "name: huge\ngrid:\n" + "".join(f"  {k}: [{values}]\n" for k in keys)
    spec += "  train.bucket_chunk: [" + ", ".join(str(v) for v in range(1, 1001)) + "]\n"
    result = invoke(
        "experiment",
        write(tmp_path, "s.yaml", spec),
        "--data",
        sample_path(),
        "--out",
        tmp_path / "e",
    )
    assert_user_error(result, "runs")

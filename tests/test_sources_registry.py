"""The registry of sources: each source declares its options once, and prepare's config,
checks and CLI choices come from that list."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli.prepare import SourceKind as CliSourceKind
from sentimodal.preparation.config import PrepareConfig, make_config
from sentimodal.sources.registry import SOURCES, SourceKind, source_names
from sentimodal.sources.source import SourceReader


def test_the_names_come_from_the_registry() -> None:
    assert list(SOURCES) == ["mvsa", "mvso", "table"]
    assert get_args(SourceKind) == tuple(SOURCES)
    assert [kind.value for kind in CliSourceKind] == list(SOURCES)
    assert source_names() == "mvsa, mvso or table"


def test_each_source_option_is_declared_once_and_is_a_config_field() -> None:
    declared = [name for source in SOURCES.values() for name in source.options.model_fields]
    assert len(declared) == len(set(declared))
    fields = list(PrepareConfig.model_fields)
    assert fields[0] == "source"
    # the source's options come first, in the registry's order, as dataset.json lists them
    assert fields[1 : 1 + len(declared)] == declared
    methods = get_args(get_args(PrepareConfig.model_fields["labels"].annotation)[0])
    for source in SOURCES.values():
        assert set(source.refused_elsewhere) <= set(source.options.model_fields)
        assert source.default_labels in methods


#: a value for each option refused elsewhere (the list options take lists)
GIVEN = {"text_columns": ["x"], "label_distribution_columns": ["x"]}


@pytest.mark.parametrize(
    ("owner", "option"),
    [(name, option) for name, source in SOURCES.items() for option in source.refused_elsewhere],
)
def test_an_option_refused_elsewhere_is_refused_under_every_other_source(
    owner: str, option: str
) -> None:
    value = GIVEN.get(option, "x")
    for other in SOURCES:
        if other != owner:
            with pytest.raises(UserInputError, match=f"{option} applies to the {owner} source"):
                make_config(other, labels="vader", **{option: value})


def test_the_chosen_source_opens_its_reader_with_its_options(tmp_path: Path) -> None:
    table = tmp_path / "posts.csv"
    table.write_text("words,feeling\nhappy day,positive\nsad day,negative\n", encoding="utf-8")
    config = make_config("table", text_columns=["words"], label_column="feeling")
    reader = config.source_entry.open(config, table)
    assert isinstance(reader, SourceReader)
    assert reader.name == "sentimodal.sources.table.read_table"
    assert [record.label for record in reader.records] == ["positive", "negative"]
    reader.close()

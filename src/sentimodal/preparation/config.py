"""Every setting of a ``prepare`` run, and the checks that refuse settings that cannot work
together before anything is read.

The config is flat (``dataset.json`` and config files name ``text_columns``, not
``table.text_columns``), but each source's options are declared by that source
(:mod:`sentimodal.sources.registry`): :class:`PrepareConfig` is made of them and of the
settings every source shares (labelling, filters, balancing, splits).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from sentimodal.config import Config, Seed, validation_message
from sentimodal.errors import UserInputError
from sentimodal.preparation.filters import STUDY_FILTERS, normalise_filters
from sentimodal.preparation.label_set import LabelRules, parse_label_list, parse_label_map
from sentimodal.preparation.labelling import emotion_labels, label_set
from sentimodal.preparation.splits import DEFAULT_FRACTIONS, parse_split
from sentimodal.sources.registry import SOURCES, SourceKind
from sentimodal.sources.source import Source

PRESETS: dict[str, tuple[str, ...]] = {"study": STUDY_FILTERS}
#: options naming input files, kept as absolute paths (the config says what was read)
_FILE_OPTIONS = ("anp_scores", "anp_emotions")


class _SourceChoice(Config):
    source: SourceKind = "mvsa"


#: pydantic lists the fields of later bases first: the source, then each source's options in
#: the registry's order, then the shared settings below
_BASES: tuple[type[Config], ...] = (
    *reversed([source.options for source in SOURCES.values()]),
    _SourceChoice,
)


class PrepareConfig(*_BASES):  # type: ignore[misc]
    """Every setting of a ``prepare`` run; written in full to ``dataset.json``."""

    # filters: explicit specs ("english", "spelling=0.8", "min-words=10", "image-reachable")
    # on top of an optional preset; URL checks time out after url_timeout seconds
    filters: list[str] = Field(default_factory=list)
    preset: Literal["study"] | None = None
    url_timeout: float = Field(default=5.0, gt=0)
    # let URL checks reach loopback / private / link-local addresses (refused by default)
    allow_private_addresses: bool = False
    # labelling (None: the source's own labels, or ANP scores for mvso)
    labels: Literal["source", "anp", "vader", "anp-emotion"] | None = None
    #: 2 or 3 sentiment classes where the tool makes the labels (ANP scores, VADER, MVSA's
    #: merge); None: 3 there, and a table's own labels are never touched by it
    classes: Literal[2, 3] | None = None
    #: rename or merge labels (old -> new), then keep only these (others become rejects)
    label_map: dict[str, str] = Field(default_factory=dict)
    labels_keep: list[str] | None = None
    #: the most distinct labels a dataset may have: the read stops with an error once more
    #: are kept (a wrong --label-column, an id column, free text)
    max_classes: int = Field(default=1000, ge=2)
    anp_negative: float = -0.035
    anp_positive: float = 0.035
    vader_negative: float = -0.05
    vader_positive: float = 0.05
    vader_margin: float = Field(default=0.0, ge=0)
    balance: bool = False
    # train/val/test fractions, or None for one split named "all"
    split: list[float] | None = Field(default_factory=lambda: list(DEFAULT_FRACTIONS))
    seed: Seed = 0
    # threads for image checks (decoding, URL requests); results do not depend on it
    workers: int = Field(default=4, ge=1)

    @field_validator("label_map", mode="before")
    @classmethod
    def _parse_label_map(cls, value: Any) -> dict[str, str]:
        return parse_label_map(value)

    @field_validator("labels_keep", mode="before")
    @classmethod
    def _parse_labels_keep(cls, value: Any) -> list[str] | None:
        return parse_label_list(value)

    @field_validator("filters")
    @classmethod
    def _canonical_filters(cls, specs: list[str]) -> list[str]:
        return normalise_filters(specs)

    @field_validator("split", mode="before")
    @classmethod
    def _parse_split(cls, value: Any) -> list[float] | None:
        return parse_split(value)

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> PrepareConfig:
        if self.anp_negative > self.anp_positive:
            raise ValueError("anp_negative must not exceed anp_positive")
        if self.vader_negative > self.vader_positive:
            raise ValueError("vader_negative must not exceed vader_positive")
        return self

    @property
    def source_entry(self) -> Source[Any]:
        """The chosen source's entry in the registry."""
        return SOURCES[self.source]

    def effective_filters(self) -> list[str]:
        """The preset's filters with the explicit ones on top (an explicit value wins)."""
        preset = PRESETS[self.preset] if self.preset else ()
        return normalise_filters([*preset, *self.filters])

    def label_method(self) -> str:
        return self.labels or self.source_entry.default_labels

    def label_rules(self) -> LabelRules:
        return LabelRules(dict(self.label_map), self.labels_keep)

    def label_vocabulary(self) -> list[str] | None:
        """The label set when the tool makes the labels (or the distribution columns name
        them), after the label rules; None when the labels come from the data."""
        method = self.label_method()
        if self.label_distribution_columns:
            vocabulary = list(self.label_distribution_columns)
        elif method == "anp-emotion":
            vocabulary = emotion_labels(self.emotion_classes)
        elif method == "source" and not self.source_entry.sentiment_labels:
            return None
        else:
            vocabulary = label_set(self.classes or 3)
        return self.label_rules().vocabulary(vocabulary)


def make_config(
    source: str | None = None, config: PrepareConfig | None = None, **options: Any
) -> PrepareConfig:
    """A checked config from a base config and overrides; problems are one-line user errors."""
    values = config.to_dict() if config is not None else {}
    if source is not None:
        values["source"] = source
    values.update(options)
    try:
        checked = PrepareConfig.model_validate(values)
    except ValidationError as exc:
        raise UserInputError(validation_message(exc, "invalid prepare option ")) from None
    _check_consistency(checked)
    resolved: dict[str, Any] = {"labels": checked.label_method()}
    for name in _FILE_OPTIONS:
        if getattr(checked, name) is not None:
            resolved[name] = os.path.abspath(getattr(checked, name))
    return checked.model_copy(update=resolved)


def _check_consistency(config: PrepareConfig) -> None:
    """Options that cannot work together: refuse them before reading anything."""
    method = config.label_method()
    for name, source in SOURCES.items():
        given = [option for option in source.refused_elsewhere if getattr(config, option)]
        if name != config.source and given:
            raise UserInputError(f"{given[0]} applies to the {name} source only")
    config.source_entry.check(config, method)
    if method == "anp" and config.source != "mvso":
        raise UserInputError("ANP labels need the mvso source")
    if method == "anp" and not config.anp_scores:
        raise UserInputError("ANP labels need an ANP score table (anp_scores / --anp-scores PATH)")
    if method == "anp-emotion" and (config.source != "mvso" or not config.anp_emotions):
        raise UserInputError(
            "anp-emotion labels need the mvso source and an ANP emotion table (--anp-emotions)"
        )
    if config.anp_emotions is not None and method != "anp-emotion":
        raise UserInputError("anp_emotions applies to --labels anp-emotion only")
    tool_sentiment = method in ("anp", "vader") or config.source_entry.sentiment_labels
    if config.classes is not None and not tool_sentiment:
        raise UserInputError(
            "classes applies only where the tool makes sentiment labels (ANP scores, VADER, "
            "MVSA's merge); a table's own labels are kept: use labels_keep (--labels-keep) to "
            "drop classes"
        )
    if config.label_distribution_columns and (
        method != "source" or config.label_map or config.labels_keep
    ):
        raise UserInputError(
            "label distribution columns are the labels: they do not go with labels "
            f"{method!r}, a label map or labels_keep"
        )
    if config.label_map or config.labels_keep:
        # a label set the tool makes is known now: rules naming other labels are typos
        fixed = config.model_copy(update={"label_map": {}, "labels_keep": None})
        vocabulary = fixed.label_vocabulary()
        if vocabulary is not None:
            config.label_rules().check_used(vocabulary, f"{method} labels")

"""Where posts come from: one streaming reader per source layout, all yielding `Post | Reject`."""

from sentimodal.sources.mvsa import read_mvsa
from sentimodal.sources.mvso import load_anp_scores, read_mvso
from sentimodal.sources.record import (
    NEGATIVE,
    NEUTRAL,
    POSITIVE,
    SENTIMENT_LABELS,
    Post,
    Record,
    Reject,
)
from sentimodal.sources.table import read_table

__all__ = [
    "NEGATIVE",
    "NEUTRAL",
    "POSITIVE",
    "SENTIMENT_LABELS",
    "Post",
    "Record",
    "Reject",
    "load_anp_scores",
    "read_mvsa",
    "read_mvso",
    "read_table",
]

"""Zero-shot protocols: can an embedding head recognise a sentiment it never saw?

- :mod:`~sentimodal.analysis.zeroshot.unseen_class`: one unseen label, with decision rules and
  calibrations of its score (the calibrated protocol).
- :mod:`~sentimodal.analysis.zeroshot.generalised`: several unseen labels, every choice of them,
  the generalised zero-shot figures.
- :mod:`~sentimodal.analysis.zeroshot.held_out` (the seen-only dataset, scores on all labels) and
  :mod:`~sentimodal.analysis.zeroshot.vocabulary` (MVSO sentiment words for hinge variants)
  serve both.
"""

from sentimodal.analysis.zeroshot.generalised import (
    GZSL_FIGURES,
    GeneralisedResult,
    gzsl_chance,
    gzsl_metrics,
    run_generalised_zero_shot,
    stacking_bias,
    unseen_sets,
    with_bias,
)
from sentimodal.analysis.zeroshot.held_out import HELD_OUT_SPLIT, seen_only
from sentimodal.analysis.zeroshot.unseen_class import (
    UnseenClassConfig,
    UnseenClassResult,
    best_bias,
    calibrated_rules,
    chance_metrics,
    run_unseen_class,
    unseen_bias,
)
from sentimodal.analysis.zeroshot.vocabulary import adjective_scores, sentiment_vocabulary

__all__ = [
    "GZSL_FIGURES",
    "HELD_OUT_SPLIT",
    "GeneralisedResult",
    "UnseenClassConfig",
    "UnseenClassResult",
    "adjective_scores",
    "best_bias",
    "calibrated_rules",
    "chance_metrics",
    "gzsl_chance",
    "gzsl_metrics",
    "run_generalised_zero_shot",
    "run_unseen_class",
    "seen_only",
    "sentiment_vocabulary",
    "stacking_bias",
    "unseen_bias",
    "unseen_sets",
    "with_bias",
]

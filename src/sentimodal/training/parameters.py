"""The estimator's parameters, as scikit-learn's: what ``clone`` rebuilds a model from, what
``set_params`` and a grid search change, and the validated run they stand for.

A model's settings are a :class:`RunConfig` (``config``) with keyword overrides on top (its
fields, or ``group__field`` of one of its groups), plus ``verbose``, the estimator's own: how
much ``fit`` shows, not part of the run (it is not written to ``run.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import ValidationError

from sentimodal.config import validation_message
from sentimodal.errors import UserInputError
from sentimodal.training.run_config import RunConfig, check_param
from sentimodal.training.train_config import given_settings


class RunParameters:
    """``get_params`` / ``set_params`` / ``run_config`` over a RunConfig and overrides."""

    def __init__(
        self,
        config: RunConfig | Mapping[str, Any] | None = None,
        *,
        verbose: bool = True,
        **overrides: Any,
    ):
        self.config = config
        self.verbose = verbose
        self.overrides = overrides

    # ----------------------------------------------------------------------------- parameters

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The estimator's parameters, as scikit-learn's ``get_params``.

        ``deep=False``: what the constructor was given (``config``, ``verbose`` and each
        keyword override), which ``clone`` rebuilds it from. ``deep=True`` adds every
        other setting with the value this estimator would train with (the recipe's derived
        ones filled in, see :meth:`RunConfig.resolved`), and each field of the nested groups
        as ``group__field`` (``train__epochs``, ``train__lr``, ``image_encoder_config__weights``,
        ...): every name ``set_params`` and a ``GridSearchCV`` grid take.
        """
        given = {"config": self.config, "verbose": self.verbose, **self.overrides}
        if not deep:
            return given
        run = self.run_config().resolved().to_dict()
        params = {**run, **given}
        for group, value in run.items():
            if isinstance(value, Mapping):
                params.update({f"{group}__{key}": item for key, item in value.items()})
        return params

    def set_params(self, **params: Any) -> Self:
        """Change settings; ``train__epochs=5`` sets one field of a nested group. An unknown
        name is a ValueError at once, as in scikit-learn, naming the valid ones."""
        for key in params:
            if key != "verbose":
                check_param(key, type(self).__name__)
        for key, value in params.items():
            if key in ("config", "verbose"):
                setattr(self, key, value)
                continue
            group, _, field_name = key.partition("__")
            if field_name:
                current = self.overrides.get(group)
                nested = current.to_dict() if hasattr(current, "to_dict") else dict(current or {})
                value = {**nested, field_name: value}
            self.overrides = {**self.overrides, group: value}
        return self

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.get_params(deep=False).items() if v is not None}
        if self.verbose:
            shown.pop("verbose")
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    # ----------------------------------------------------------------------------- settings

    def run_config(self) -> RunConfig:
        """The validated settings the user gave (config, then keyword overrides on top); what
        the recipe derives from them is filled in by ``fit`` (``run_``, see
        :meth:`RunConfig.resolved`)."""
        base = self.config
        data = base.to_dict() if isinstance(base, RunConfig) else dict(base or {})
        for key, value in self.overrides.items():
            # training settings given on top of a config change those fields, not the group
            if key == "train" and isinstance(data.get(key), Mapping):
                value = {**data[key], **given_settings(value)}
            data[key] = value
        try:
            return RunConfig.model_validate(data)
        except ValidationError as exc:
            raise UserInputError(validation_message(exc, "invalid model setting ")) from None

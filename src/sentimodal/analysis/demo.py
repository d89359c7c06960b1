"""The demo: the whole path on the embedded MVSA-Single sample, offline.

Prepare the sample, extract features once (cached by the feature store, so a re-run over the
same folder skips it), train the study's models (text-only, image-only, concatenation, gated,
gated with the embedding head) and the product's default, compare them on the test split, and
write a report answering "how much do images add?". It is the smallest complete run, and the
one a new user tries first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from sentimodal.analysis.baselines import BaselineConfig, BaselineName, run_baseline
from sentimodal.analysis.model_report import (
    add_comparison,
    add_modality_section,
    add_model_details,
)
from sentimodal.analysis.plots import confusion_grid
from sentimodal.analysis.report import Report, ReportPaths
from sentimodal.analysis.results_folder import CONFIG_FILE, write_results_folder
from sentimodal.config import Config
from sentimodal.features.defaults import DEFAULT_IMAGE_ENCODER, FROZEN_TEXT_ENCODER
from sentimodal.features.store import extract_features
from sentimodal.models.config import GLOVE_SOURCE, HeadKind, LabelSource
from sentimodal.models.recipes import get_recipe
from sentimodal.preparation.config import PrepareConfig
from sentimodal.preparation.pipeline import prepare
from sentimodal.progress import note
from sentimodal.sample import sample_path
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig
from sentimodal.training.train_config import TrainConfig

BASELINE_TITLES = {
    "majority": "majority class",
    "vader": "VADER thresholds",
    "logreg": "logistic regression on frozen MiniLM + EfficientNet-Lite0",
}
DATASET_DIR = "dataset"
MODELS_DIR = "models"


class DemoModel(Config):
    """One model of the demo; the encoders and training settings are the demo's, shared,
    unless the model names its own text encoder or training settings."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    title: str
    #: a run model (a recipe name: text, image, concat, gated, late)
    model: str
    head: HeadKind = "softmax"
    model_options: dict[str, Any] = Field(default_factory=dict)
    #: None: the demo's text encoder
    text_encoder: str | None = None
    #: None: the demo's training settings; a mapping: laid over the model's own defaults
    #: (``{}`` trains as ``sentimodal train`` would)
    train: dict[str, Any] | None = None


def _default_models() -> list[DemoModel]:
    return [
        DemoModel(name="text", title="Text only (MiniLM)", model="text"),
        DemoModel(name="image", title="Image only (EfficientNet-Lite0)", model="image"),
        DemoModel(name="concat", title="Concatenation", model="concat"),
        DemoModel(
            name="gated", title="Gated fusion (GL2)", model="gated", model_options={"gate": "gl2"}
        ),
        DemoModel(
            name="gated_embedding",
            title="Gated fusion (GL2), GloVe embedding head",
            model="gated",
            head="embedding",
            model_options={"gate": "gl2"},
        ),
        DemoModel(
            name="default",
            title="Late fusion, MiniLM fine-tuned (train's default)",
            model="late",
            text_encoder="minilm_tokens",
            train={},
        ),
    ]


class DemoConfig(Config):
    """Everything the demo does; written to OUT/config.yaml."""

    #: 60/20/20 rather than prepare's default, so the test split has ~110 posts, not ~55
    prepare: PrepareConfig = Field(
        default_factory=lambda: PrepareConfig(source="mvsa", split=[0.6, 0.2, 0.2])
    )
    image_encoder: str = DEFAULT_IMAGE_ENCODER
    text_encoder: str = FROZEN_TEXT_ENCODER
    label_source: LabelSource = GLOVE_SOURCE
    #: the frozen-feature models' training (TrainConfig's defaults unless changed here)
    train: TrainConfig = Field(default_factory=TrainConfig)
    models: list[DemoModel] = Field(default_factory=_default_models)
    #: the text-only and image-only models of "how much do images add?"
    text_model: str = "text"
    image_model: str = "image"
    #: the fused model it is asked of; None: the fused model with the best val accuracy
    fused_model: str | None = None
    #: baselines measured beside the models on the same split
    baselines: list[BaselineName] = Field(default_factory=lambda: ["majority", "logreg"])
    #: the split models are compared on
    split: Literal["val", "test"] = "test"
    #: posts shown per outcome where adding the image changed the prediction
    max_examples: int = Field(12, ge=1)

    @model_validator(mode="after")
    def _known_models(self) -> DemoConfig:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique: {names}")
        chosen = [self.text_model, self.image_model, self.fused_model]
        unknown = [n for n in chosen if n is not None and n not in names]
        if unknown:
            raise ValueError(f"{unknown} are not among the models {names}")
        if not any(get_recipe(m.model).modalities == ("text", "image") for m in self.models):
            raise ValueError("the demo needs a fused model (concat, gated or late)")
        return self

    def best_fused(self, metrics: dict[str, dict[str, Any]]) -> str:
        """The fused model asked "how much do images add?": the chosen one, or the best on val."""
        if self.fused_model is not None:
            return self.fused_model
        fused = [m.name for m in self.models if len(get_recipe(m.model).modalities) == 2]
        return max(fused, key=lambda name: metrics[name]["val"]["accuracy"])

    def run_config(self, model: DemoModel) -> RunConfig:
        return RunConfig(
            model=model.model,
            head=model.head,
            image_encoder=self.image_encoder,
            text_encoder=model.text_encoder or self.text_encoder,
            label_source=self.label_source,
            model_options=model.model_options,
            train=self.train if model.train is None else model.train,
        )


@dataclass
class DemoResult:
    """What the demo produced: each model's metrics by split, and the report's files."""

    metrics: dict[str, dict[str, Any]]
    titles: dict[str, str]
    split: str
    report: ReportPaths
    seconds: float


def run_demo(config: DemoConfig, out: Path, progress: bool = True) -> DemoResult:
    """The demo into ``out``: dataset, models/<name>/, config.yaml, report.md + report.html.

    Status lines and progress bars go to stderr; the caller prints the comparison."""
    started = time.perf_counter()
    write_results_folder(out, config=config)  # first: a stopped demo still says what it was
    note(("1/4", "bold"), f" preparing the embedded MVSA-Single sample into {out}")
    dataset = prepare(None, sample_path(), out / DATASET_DIR, config.prepare, progress=progress)
    note(("2/4", "bold"), f" features: {config.image_encoder} + {config.text_encoder}")
    features = extract_features(
        dataset, image=config.image_encoder, text=config.text_encoder, progress=progress
    )
    for result in features.values():
        cached = "cached" if result.cache_hit else f"{result.seconds:.0f} s"
        note(f"  {result.kind}: {result.name} ({cached})")

    models: dict[str, SentimentModel] = {}
    metrics: dict[str, dict[str, Any]] = {}
    for number, spec in enumerate(config.models, 1):
        note(("3/4", "bold"), f" training model {number}/{len(config.models)}: {spec.title}")
        run = config.run_config(spec)
        model = SentimentModel(run).fit(dataset, progress=progress)
        model.metrics_ = model.evaluate_splits(dataset)
        model.save(out / MODELS_DIR / spec.name)
        models[spec.name], metrics[spec.name] = model, model.metrics_
    titles = {spec.name: spec.title for spec in config.models}
    for name in config.baselines:
        note(("3/4", "bold"), f" baseline: {BASELINE_TITLES[name]}")
        metrics[f"baseline-{name}"] = run_baseline(dataset, BaselineConfig(name=name))
        titles[f"baseline-{name}"] = f"Baseline: {BASELINE_TITLES[name]}"
    compared = {titles[name]: m[config.split] for name, m in metrics.items()}

    note(("4/4", "bold"), " writing the report")
    report = Report("sentimodal demo: how much do images add?")
    counts = ", ".join(f"{split} {sum(c.values())}" for split, c in dataset.info["counts"].items())
    report.add_markdown(
        f"{len(dataset.examples)} posts of the MVSA-Single sample shipped with sentimodal "
        f"({counts}; labels merged from the text and image annotations), features from "
        f"`{config.image_encoder}` (images) and `{config.text_encoder}` (texts; a model may "
        f"name its own, see the configuration). "
        f"{len(config.models)} models trained on the train split, with their epochs chosen on "
        f"the val split, and compared on the {config.split} split. Everything up to this "
        f"report took "
        f"{time.perf_counter() - started:.0f} s."
    )
    add_comparison(report, compared, config.split)
    report.add_figure(
        confusion_grid(
            {
                titles[n]: (m[config.split]["confusion"], m[config.split]["labels"])
                for n, m in metrics.items()
            }
        ),
        f"confusions-{config.split}",
        f"Confusion matrices on the {config.split} split (counts; colour: share of the true "
        "class), every model and baseline on one scale.",
    )
    fused_name = config.best_fused(metrics)
    report.add_markdown(
        f"The fused model below is **{titles[fused_name]}**"
        + (", the fused model with the best val accuracy." if config.fused_model is None else ".")
    )
    text, image, fused = (models[n] for n in (config.text_model, config.image_model, fused_name))
    add_modality_section(
        report,
        text,
        image,
        fused,
        dataset,
        config.split,
        max_examples=config.max_examples,
        show_gates=False,
    )
    for spec in config.models:
        model = models[spec.name]
        add_model_details(report, model, dataset, model.metrics_, spec.title, confusions=False)
    report.add_section("Configuration")
    report.add_config(config, caption=f"Demo configuration ({CONFIG_FILE})")
    paths = write_results_folder(out, report=report)
    return DemoResult(metrics, titles, config.split, paths, time.perf_counter() - started)

"""`sentimodal demo [--out DIR]`: the whole path on the embedded MVSA-Single sample, offline.

Prepare the sample, extract features once (cached by the feature store, so a re-run over the
same folder skips it), train a text-only, an image-only, a concatenation, a gated and a gated
embedding-head model, compare them on the test split, and write a report answering "how much
do images add?". It is the smallest complete run, and the one a new user tries first.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer
import yaml
from pydantic import Field, ValidationError, model_validator

from sentimodal.config import Config
from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli.app import app, console, say, user_errors
from sentimodal.interfaces.cli.tables import comparison_table
from sentimodal.interfaces.cli.train import RUN_CONFIG_FILE
from sentimodal.models.config import HeadKind
from sentimodal.preparation.pipeline import PrepareConfig
from sentimodal.sample import sample_path
from sentimodal.training.config import TrainConfig
from sentimodal.training.run_config import ModelKind, RunConfig

if TYPE_CHECKING:  # torch-heavy modules load only when the demo runs
    from sentimodal.analysis.report import ReportPaths
    from sentimodal.training.estimator import SentimentModel

CONFIG_FILE = "config.yaml"
DATASET_DIR = "dataset"
MODELS_DIR = "models"


class DemoModel(Config):
    """One model of the demo; the encoders and training settings are the demo's, shared,
    unless the model names its own text encoder or training settings."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    title: str
    model: ModelKind
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
    image_encoder: str = "efficientnet_lite0"
    text_encoder: str = "minilm"
    label_source: Literal["glove_6b_50d", "minilm"] = "glove_6b_50d"
    #: few posts, so stop early: at most 40 epochs, 6 without a better val accuracy
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=40, patience=6))
    models: list[DemoModel] = Field(default_factory=_default_models)
    #: the text-only, image-only and fused models of "how much do images add?"
    modality_models: tuple[str, str, str] = ("text", "image", "gated")
    #: the split models are compared on
    split: Literal["val", "test"] = "test"
    #: posts shown per outcome where adding the image changed the prediction
    max_examples: int = Field(12, ge=1)

    @model_validator(mode="after")
    def _known_models(self) -> DemoConfig:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique: {names}")
        unknown = [n for n in self.modality_models if n not in names]
        if unknown:
            raise ValueError(f"modality_models {unknown} are not among the models {names}")
        return self

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


def run_demo(config: DemoConfig, out: Path, progress: bool = True) -> ReportPaths:
    """The demo into ``out``: dataset, models/<name>/, config.yaml, report.md + report.html."""
    from sentimodal.analysis.model_report import (
        add_comparison,
        add_modality_section,
        add_model_details,
        evaluate_splits,
    )
    from sentimodal.analysis.report import Report
    from sentimodal.features.store import extract_features
    from sentimodal.preparation.pipeline import prepare
    from sentimodal.training.estimator import SentimentModel
    from sentimodal.training.model_dir import METRICS_FILE, write_json

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / CONFIG_FILE)
    say(("1/4", "bold"), f" preparing the embedded MVSA-Single sample into {out}")
    dataset = prepare(None, sample_path(), out / DATASET_DIR, config.prepare, progress=progress)
    say(("2/4", "bold"), f" features: {config.image_encoder} + {config.text_encoder}")
    features = extract_features(
        dataset, image=config.image_encoder, text=config.text_encoder, progress=progress
    )
    for result in features.values():
        cached = "cached" if result.cache_hit else f"{result.seconds:.0f} s"
        console.print(f"  {result.kind}: {result.name} ({cached})")

    models: dict[str, SentimentModel] = {}
    metrics: dict[str, dict[str, Any]] = {}
    for spec in config.models:
        say(("3/4", "bold"), f" training {spec.title}")
        run = config.run_config(spec)
        model = SentimentModel(run).fit(dataset, progress=progress)
        model.metrics_ = evaluate_splits(model, dataset)
        directory = model.save(out / MODELS_DIR / spec.name)
        run.save(directory / RUN_CONFIG_FILE)
        write_json(directory / METRICS_FILE, model.metrics_)
        models[spec.name], metrics[spec.name] = model, model.metrics_
    titles = {spec.name: spec.title for spec in config.models}
    compared = {titles[name]: m[config.split] for name, m in metrics.items()}
    rows = [{"model": name, **m} for name, m in compared.items()]
    console.print(comparison_table(rows, f"{config.split} split ({rows[0]['n']} posts)"))

    say(("4/4", "bold"), " writing the report")
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
    text, image, fused = (models[name] for name in config.modality_models)
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
    report.add_markdown(
        f"The gate values of the fused model are in its own section "
        f"({titles[config.modality_models[2]]}) below."
    )
    for spec in config.models:
        model = models[spec.name]
        add_model_details(report, model, dataset, model.metrics_, spec.title)
    report.add_section("Configuration")
    report.add_config(config, caption="Demo configuration (config.yaml)")
    paths = report.write(out)
    say(
        "report: ",
        (str(paths.html), "bold"),
        f" and {paths.markdown.name} ({time.perf_counter() - started:.0f} s in all)",
    )
    return paths


@app.command("demo")
@user_errors
def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder to write into."),
    config_file: Path | None = typer.Option(
        None, "--config", help="A demo config YAML/JSON (as written to OUT/config.yaml)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Run everything on the embedded sample, offline; print the comparison; write a report."""
    if config_file is not None and not config_file.is_file():
        raise UserInputError(f"config file not found: {config_file}")
    try:
        config = DemoConfig.load(config_file) if config_file is not None else DemoConfig()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise UserInputError(
            f"{config_file}: invalid demo config: {where}: {first['msg']}"
        ) from None
    except yaml.YAMLError as exc:
        raise UserInputError(
            f"{config_file}: not YAML/JSON: {' '.join(str(exc).split())}"
        ) from None
    run_demo(config, out, progress=not quiet)

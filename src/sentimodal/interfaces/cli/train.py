"""`sentimodal train DATASET_DIR --out MODEL_DIR`: train, evaluate and save one model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import typer

from sentimodal.interfaces.cli.app import app, console, say, user_errors

#: flags that set a training setting rather than a run setting
_TRAIN_FLAGS = ("epochs", "seed", "lr", "backbone_lr", "batch_size", "optimizer")


def run_config_from(config_file: Path | None, **flags: Any) -> Any:
    """A RunConfig file (YAML/JSON) with the command-line flags that were given on top; a
    flag replaces the file's setting, and a training profile fills only what neither gave."""
    from sentimodal.config import load_config
    from sentimodal.training.estimator import SentimentModel
    from sentimodal.training.run_config import RunConfig
    from sentimodal.training.train_config import given_settings

    base: dict[str, Any] = {}
    train: dict[str, Any] = {}
    if config_file is not None:
        loaded = load_config(RunConfig, config_file, "run config")
        base = loaded.model_dump(mode="json", include=loaded.model_fields_set)
        train = given_settings(loaded.train) if "train" in loaded.model_fields_set else {}
    for key in _TRAIN_FLAGS:
        value = flags.pop(key, None)
        if value is not None:
            train[key] = value
    base.update({k: v for k, v in flags.items() if v is not None}, train=train)
    return SentimentModel(base).run_config()


def _model_help() -> str:
    from sentimodal.models.recipes import recipes_help

    return f"The run model (default late): {recipes_help()}."


@app.command("train")
@user_errors
def train_command(
    dataset_dir: Path = typer.Argument(..., help="A prepared dataset directory."),
    out: str = typer.Option(..., "--out", "-o", help="Model directory to write."),
    config_file: Path | None = typer.Option(
        None, "--config", help="A RunConfig YAML/JSON; flags given here override it."
    ),
    model: str | None = typer.Option(None, "--model", help=_model_help()),
    head: str | None = typer.Option(None, "--head", help="softmax (default) or embedding."),
    image_encoder: str | None = typer.Option(
        None,
        "--image-encoder",
        help="efficientnet_lite0 (default), mobilenet_v2, resnet50, ..., or timm:<model name>.",
    ),
    text_encoder: str | None = typer.Option(
        None,
        "--text-encoder",
        help="Default: the model's own (sentimodal models); minilm, glove_mean, ..., or "
        "hf:<model id or folder> (fine-tuned by text, late and cross).",
    ),
    label_source: str | None = typer.Option(
        None,
        "--label-vectors",
        help="Where an embedding head's label vectors come from: glove_6b_50d or minilm.",
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Maximum training epochs."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate (heads, MLPs)."),
    backbone_lr: float | None = typer.Option(
        None, "--backbone-lr", help="Learning rate of the fine-tuned transformer."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Training batch size."),
    optimizer: str | None = typer.Option(
        None, "--optimizer", help="adamw (fine-tuning's), adam (frozen features'), rmsprop, sgd."
    ),
    device: str | None = typer.Option(
        None, "--device", help="Where the networks run: auto (a GPU if any), cpu, cuda or mps."
    ),
    image_weights: str | None = typer.Option(
        None,
        "--image-weights",
        help="Image encoder weights: its named ones, a local .pth/.safetensors file, or none.",
    ),
    train_splits: str = typer.Option(
        "train",
        "--train-splits",
        help="Splits to train on, comma-separated; train,val: all labelled posts, no validation.",
    ),
    engine: str | None = typer.Option(
        None, "--engine", help="local (default) or ray: data-parallel on Ray Train."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Ray Train workers (with --engine ray)."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="A running Ray cluster (HOST:PORT) for --engine ray."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the checkpoint an interrupted run left in --out."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train a model on the train split (val picks the best epoch), evaluate, and save it.

    Each epoch's state is kept in OUT/checkpoint until the model is saved; --resume
    continues an interrupted run from it.
    """
    from sentimodal.files import check_output_folder

    out = check_output_folder(out)
    from sentimodal.analysis.model_report import model_report
    from sentimodal.interfaces.cli.tables import metrics_table
    from sentimodal.preparation.dataset import PreparedDataset
    from sentimodal.training.checkpoint import CHECKPOINT_FOLDER
    from sentimodal.training.estimator import SentimentModel

    run = run_config_from(
        config_file,
        model=model,
        head=head,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        label_source=label_source,
        epochs=epochs,
        seed=seed,
        lr=lr,
        backbone_lr=backbone_lr,
        batch_size=batch_size,
        optimizer=optimizer,
        engine=engine,
        workers=workers,
        ray_address=ray_address,
        device=device,
    )
    if image_weights is not None:
        # the recipe's settings of the encoder (grid=true for cross) stay, the weights change
        run = run.model_copy(
            update={
                "image_encoder_config": {
                    **(run.resolved().image_encoder_config or {}),
                    "weights": image_weights,
                }
            }
        )
    splits = [split.strip() for split in train_splits.split(",") if split.strip()]
    dataset = PreparedDataset.load(dataset_dir)
    what = f"fine-tuning {run.resolved().text_encoder}" if run.fine_tunes else "frozen features"
    say(
        "training ",
        (run.model, "bold"),
        f" ({run.head} head, {what}) on {dataset.root} ({' + '.join(splits)})",
    )
    checkpoints = out / CHECKPOINT_FOLDER
    estimator = SentimentModel(run).fit(
        dataset,
        train_splits=splits,
        progress=not quiet,
        checkpoint_dir=checkpoints,
        resume=resume,
    )
    estimator.metrics_ = estimator.evaluate_splits(dataset)
    estimator.save(out)
    shutil.rmtree(checkpoints, ignore_errors=True)  # a saved model needs no checkpoint
    for split, metrics in estimator.metrics_.items():
        console.print(metrics_table(metrics, f"{split} split"))
    gates = estimator.gate_stats()
    if gates:
        for modality, stats in gates.items():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in stats.items() if isinstance(v, float))
            say("gates ", (modality, "bold"), f": {shown}")
    report = model_report(estimator, dataset, estimator.metrics_, title=f"Model {out.name}")
    paths = report.write(out)
    say(
        "model saved to ",
        (str(out), "bold"),
        f" (report: {paths.html.name}, {paths.markdown.name})",
    )

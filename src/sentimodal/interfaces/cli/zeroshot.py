"""`sentimodal zeroshot unseen|anp`: the zero-shot protocols, each writing a report and its config.

- ``unseen DATASET_DIR --out DIR``: train embedding heads without one label, then rank all labels.
- ``anp --anp-scores CSV --out DIR``: score the MVSO adjective-noun pairs in each label space
  (and through a trained text model) against their MVSO sentiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from sentimodal.config import validation_message
from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli.app import app, command_line, console, say, user_errors
from sentimodal.models.recipes import recipe_choices

zeroshot_app = typer.Typer(
    help="Zero-shot protocols: unseen sentiment classes, ANP label-space check.",
    no_args_is_help=True,
)
if TYPE_CHECKING:  # torch-heavy modules load only when a command runs
    import pandas as pd

    from sentimodal.analysis.report import Report
    from sentimodal.analysis.zeroshot.unseen_class import UnseenClassResult
    from sentimodal.preparation.dataset import PreparedDataset
    from sentimodal.training.run_config import RunConfig

app.add_typer(zeroshot_app, name="zeroshot")

RESULTS_FILE = "results.json"


def _csv_list(value: str, option: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UserInputError(f"{option} needs at least one value")
    return items


def _rounded(table: pd.DataFrame) -> pd.DataFrame:
    return table.round(3)


@zeroshot_app.command("unseen")
@user_errors
def unseen_command(
    context: typer.Context,
    dataset_dir: Path = typer.Argument(..., help="A prepared dataset with train/val/test."),
    out: str = typer.Option(..., "--out", "-o", help="Folder for report, results and config."),
    unseen: str = typer.Option(
        "neutral",
        "--unseen",
        help="The label(s) never shown in training, comma-separated (several: generalised).",
    ),
    unseen_size: int | None = typer.Option(
        None,
        "--unseen-size",
        help="Generalised protocol over every choice of this many unseen labels (e.g. 2).",
    ),
    model: str = typer.Option("text", "--model", help=recipe_choices()),
    text_encoder: str = typer.Option("minilm", "--text-encoder", help="Text features."),
    image_encoder: str = typer.Option("efficientnet_lite0", "--image-encoder"),
    label_sources: str = typer.Option(
        "minilm,glove_6b_50d",
        "--label-vectors",
        "--label-sources",
        help="Label vector sources to compare (also --label-sources).",
    ),
    losses: str = typer.Option(
        "cosine,hinge", "--losses", help="Embedding losses to compare (one unseen label)."
    ),
    margin: float = typer.Option(0.1, "--margin", help="Hinge loss margin."),
    vocabularies: str = typer.Option(
        "none",
        "--vocabularies",
        help="Hinge variants: none (labels only), contrast (also the most opposite MVSO "
        "adjectives), soft (contrast, aimed at the label and the most like-minded ones).",
    ),
    anp_scores: Path | None = typer.Option(
        None, "--anp-scores", help="MVSO ANP sentiment CSV, for --vocabularies contrast/soft."
    ),
    vocabulary_size: int = typer.Option(
        50, "--vocabulary-size", help="Adjectives per pole in the hinge vocabulary."
    ),
    reject_rate: float = typer.Option(
        0.1, "--reject-rate", help="Label-free calibration: share of seen val posts sent to unseen."
    ),
    epochs: int = typer.Option(30, "--epochs", help="Maximum epochs (early stopping on val)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    supervised: bool = typer.Option(
        True, "--supervised/--no-supervised", help="Also train on all labels, as the reference."
    ),
    prompts: str | None = typer.Option(
        None,
        "--prompts",
        help="Also score labels by this prompt ('a photo of something {label}'), clip: only.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train on the seen labels only, then classify all labels with the unseen ones added.

    One unseen label: the calibrated protocol (decision rules, bias calibrations). Several
    (``--unseen a,b`` or ``--unseen-size K``): the generalised zero-shot figures (unseen, seen
    and harmonic-mean per-class accuracy among all labels) per unseen set and their mean.
    """
    from sentimodal.files import check_output_folder

    out = check_output_folder(out)
    from sentimodal.analysis.results_folder import write_results_folder
    from sentimodal.analysis.zeroshot.unseen_class import UnseenClassConfig, run_unseen_class
    from sentimodal.preparation.dataset import PreparedDataset
    from sentimodal.training.estimator import SentimentModel

    run = SentimentModel(
        model=model,
        head="embedding",
        text_encoder=text_encoder,
        image_encoder=image_encoder,
        train={"epochs": epochs, "seed": seed, "margin": margin},
        feature_workers=0,
    ).run_config()
    held_out = _csv_list(unseen, "--unseen")
    if unseen_size is not None or len(held_out) > 1:
        dataset = PreparedDataset.load(dataset_dir)
        sets = [held_out] if unseen_size is None else None
        generalised(
            dataset,
            sets,
            unseen_size,
            run,
            _csv_list(label_sources, "--label-sources"),
            supervised,
            out,
            command_line(context),
            quiet,
            prompts,
        )
        return
    try:
        config = UnseenClassConfig(
            unseen=unseen,
            run=run,
            label_sources=_csv_list(label_sources, "--label-sources"),
            losses=_csv_list(losses, "--losses"),
            reject_rate=reject_rate,
            supervised=supervised,
            vocabularies=_csv_list(vocabularies, "--vocabularies"),
            anp_scores=anp_scores,
            vocabulary_size=vocabulary_size,
            prompts=prompts,
        )
    except ValidationError as exc:
        raise UserInputError(validation_message(exc, "invalid protocol setting ")) from None
    dataset = PreparedDataset.load(dataset_dir)
    result = run_unseen_class(dataset, config, progress=not quiet)
    paths = write_results_folder(
        out,
        config=config,
        data={RESULTS_FILE: result.to_dict()},
        report=unseen_report(result, dataset_dir, command_line(context)),
    )
    console.print(_rounded(result.table).to_string(index=False), soft_wrap=True)
    say("report: ", (str(paths.markdown), "bold"))


def unseen_report(result: UnseenClassResult, dataset_dir: Path, command: str) -> Report:
    """The protocol's table with what was held out and how the calibration set looks."""
    from sentimodal.analysis.report import Report

    counts = ", ".join(f"{k} {v}" for k, v in result.test_counts.items())
    calibration = ", ".join(f"{k} {v}" for k, v in result.calibration_counts.items())
    report = Report(f"Unseen-class protocol: {result.config.unseen!r} never seen in training")
    report.add_markdown(
        f"Dataset `{dataset_dir}`. Test posts: {counts}. Models are trained without any "
        f"{result.config.unseen!r} post in train or val; at test time "
        f"{result.config.unseen!r} is added as a candidate label by its vector only (by its "
        f"prompt in the joint space, in `prompts:` rows). "
        f"Rows marked `uses_unseen_labels` are not zero-shot: the labelled calibration uses "
        f"the val split ({calibration}) and the reference is trained on all labels.\n\n"
        f"Command: `{command}`"
    )
    report.add_table(_rounded(result.table), caption="Test metrics")
    report.add_config(result.config)
    return report


@zeroshot_app.command("anp")
@user_errors
def anp_command(
    context: typer.Context,
    anp_scores: Path = typer.Option(
        ..., "--anp-scores", help="MVSO ANP sentiment CSV (anp,score; no header)."
    ),
    out: str = typer.Option(..., "--out", "-o", help="Folder for report, scores and config."),
    model_dir: Path | None = typer.Option(
        None, "--model", help="Also score the phrases with this trained text model."
    ),
    sources: str = typer.Option("glove_6b_50d,minilm", "--sources", help="Label spaces to check."),
    poles: str = typer.Option(
        "positive/negative,good/bad", "--poles", help="Positive/negative pole pairs."
    ),
) -> None:
    """Correlate zero-shot phrase scores with the MVSO sentiment of each ANP."""
    from sentimodal.files import check_output_folder

    out = check_output_folder(out)
    from sentimodal.analysis.label_space_check import AnpCheckConfig, run_anp_check
    from sentimodal.analysis.report import Report
    from sentimodal.analysis.results_folder import write_results_folder

    pairs = []
    for pair in _csv_list(poles, "--poles"):
        parts = [p.strip() for p in pair.split("/")]
        if len(parts) != 2 or not all(parts):
            raise UserInputError(f"--poles: expected POSITIVE/NEGATIVE, got {pair!r}")
        pairs.append((parts[0], parts[1]))
    config = AnpCheckConfig(
        anp_scores=anp_scores,
        sources=_csv_list(sources, "--sources"),
        poles=pairs,
        model_dir=model_dir,
    )
    table, scores = run_anp_check(config)
    positive, negative = int((scores["score"] > 0).sum()), int((scores["score"] < 0).sum())
    report = Report("ANP label-space check (MVSO English)")
    report.add_markdown(
        f"{len(scores)} ANPs from `{anp_scores}` ({positive} with a positive MVSO score, "
        f'{negative} negative). Each phrase ("nice smile") is scored zero-shot; `spearman` '
        "is the rank correlation with the MVSO score, `sign_agreement` the share with the "
        "same sign, `balanced_sign_agreement` its mean over the two MVSO signs.\n\n"
        f"Command: `{command_line(context)}`"
    )
    report.add_table(_rounded(table), caption="Agreement with the MVSO sentiment score")
    report.add_config(config)
    paths = write_results_folder(
        out, config=config, tables={"anp_scores.csv": scores}, report=report
    )
    console.print(_rounded(table).to_string(index=False), soft_wrap=True)
    say("report: ", (str(paths.markdown), "bold"))


def generalised(
    dataset: PreparedDataset,
    sets: list[list[str]] | None,
    size: int | None,
    run: RunConfig,
    sources: list[str],
    supervised: bool,
    out: Path,
    command: str,
    quiet: bool,
    prompts: str | None = None,
) -> None:
    """The generalised zero-shot protocol over the given unseen sets (or every K-subset)."""
    from sentimodal.analysis.report import Report
    from sentimodal.analysis.results_folder import write_results_folder
    from sentimodal.analysis.zeroshot.generalised import run_generalised_zero_shot, unseen_sets

    if sets is None:
        assert size is not None
        sets = unseen_sets(dataset.labels, size)
    result = run_generalised_zero_shot(
        dataset, sets, run, sources, supervised=supervised, progress=not quiet, prompts=prompts
    )
    payload = {
        "command": command,
        "unseen_sets": sets,
        "test_counts": result.test_counts,
        "summary": result.summary.to_dict(orient="records"),
        "rows": result.rows.to_dict(orient="records"),
    }
    counts = ", ".join(f"{k} {v}" for k, v in result.test_counts.items())
    report = Report(f"Generalised zero-shot: {len(sets)} unseen set(s) of {len(sets[0])} label(s)")
    report.add_markdown(
        f"Dataset `{dataset.root}`; test posts: {counts}. For each unseen set the embedding "
        "head is trained without any post of those labels in train or val; every test post "
        "is then ranked among all labels, the unseen ones placed by their label vectors "
        "only (`prompts:` rows: by their prompts in a clip: model's joint space). Figures "
        "are mean per-class accuracies: `unseen_accuracy` and `seen_accuracy` "
        "among all labels (generalised zero-shot), `harmonic_mean` of the two, and "
        "`zsl_accuracy` among the unseen labels only. `calibrated stacking` adds one bias to "
        "the unseen labels' scores, chosen without any unseen post: the bias that sends "
        "(unseen labels / all labels) of the seen validation posts to an unseen label. The "
        f"supervised reference is trained on every label.\n\nCommand: `{command}`"
    )
    report.add_table(_rounded(result.summary), caption="Mean and std over the unseen sets")
    report.add_table(_rounded(result.rows), caption="Per unseen set")
    report.add_config(run)
    paths = write_results_folder(
        out,
        config=run,
        tables={"sets.csv": result.rows, "summary.csv": result.summary},
        data={RESULTS_FILE: payload},
        report=report,
    )
    console.print(_rounded(result.summary).to_string(index=False), soft_wrap=True)
    say("report: ", (str(paths.markdown), "bold"))

"""Any label set, end to end: the labels are whatever the user's table holds.

Each label-set shape (2, 3, 6 and 24 classes, integer labels, labels with spaces) goes through
prepare -> features -> train -> evaluate -> predict -> report on the command line, on real
posts: MVSA-Single tweets and images, Emotion6 images, MVSO-style XML over the real ANP emotion
table. Models are small and read cheap frozen features (raw 32x32 pixels, GloVe means).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sentimodal.errors import RecordError, UserInputError
from sentimodal.interfaces.cli import app
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.dataset_labels import check_trainable
from sentimodal.preparation.label_set import LabelRules, parse_label_map, sort_labels
from sentimodal.sources.table import label_text

runner = CliRunner()
FAST_TRAIN = ["--epochs", "4", "--seed", "0", "--quiet"]


def mvsa_posts(root: Path, per_label: int) -> pd.DataFrame:
    """MVSA-Single posts whose text and image annotators agree, the first ``per_label`` ids
    of each label: id, text, absolute image path, label."""
    pairs = pd.read_csv(root / "labelResultAll.txt", sep="\t", dtype=str)
    pairs[["text_label", "image_label"]] = pairs["text,image"].str.split(",", expand=True)
    agreed = pairs[pairs["text_label"] == pairs["image_label"]].copy()
    agreed["n"] = agreed["ID"].astype(int)
    rows = []
    for label, group in agreed.sort_values("n").groupby("text_label"):
        for post_id in group["ID"].head(per_label):
            text = (root / "data" / f"{post_id}.txt").read_bytes().decode("utf-8", "replace")
            image = str(root / "data" / f"{post_id}.jpg")
            rows.append({"id": post_id, "text": text.strip(), "image": image, "label": label})
    return pd.DataFrame(rows)


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def end_to_end(
    table: Path, tmp: Path, prepare_args: list[str], model: list[str], posts: pd.DataFrame
) -> tuple[PreparedDataset, dict, list[dict]]:
    """prepare -> features -> train (report included) -> evaluate -> predict, on the CLI."""
    data, model_dir = tmp / "data", tmp / "model"
    invoke("prepare", "table", str(table), "--out", str(data), "--quiet", *prepare_args)
    dataset = PreparedDataset.load(data)
    image = "pixels32" if "image" in model else "none"
    text = "glove_mean" if "text" in model else "none"
    invoke("features", str(data), "--image", image, "--text", text, "--workers", "0")
    encoders = ["--image-encoder", "pixels32", "--text-encoder", "glove_mean"]
    invoke("train", str(data), "--out", str(model_dir), *model, *encoders, *FAST_TRAIN)
    assert (model_dir / "report.html").is_file() and (model_dir / "report.md").is_file()
    metrics_path = tmp / "metrics.json"
    invoke("evaluate", str(model_dir), str(data), "--split", "test", "--output", str(metrics_path))
    metrics = json.loads(metrics_path.read_text())
    assert metrics["labels"] == dataset.labels
    assert len(metrics["confusion"]) == len(dataset.labels)
    posts.to_csv(tmp / "posts.csv", index=False)
    invoke("predict", str(model_dir), "--input", str(tmp / "posts.csv"), "-o", str(tmp / "p.jsonl"))
    lines = (tmp / "p.jsonl").read_text().splitlines()
    predictions = [json.loads(line) for line in lines]
    assert len(predictions) == len(posts)
    assert all(p["label"] in dataset.labels for p in predictions)
    assert all(set(p["scores"]) == set(dataset.labels) for p in predictions)
    return dataset, metrics, predictions


# ------------------------------------------------------------------------------ the rules


def test_label_cells_sorting_and_rules() -> None:
    assert [label_text(v) for v in (1, 1.0, " 2 ", "POS", "Neutral", "very  good", None)] == [
        "1",
        "1",
        "2",
        "positive",
        "neutral",
        "very good",
        "",
    ]
    assert sort_labels(["10", "2", "1"]) == ["1", "2", "10"]
    assert sort_labels(["joy", "anger", "10"]) == ["10", "anger", "joy"]
    rules = LabelRules(parse_label_map("happy=joy, glad = joy,mad=anger"), ["joy", "anger"])
    assert [rules.apply(x) for x in ("happy", "glad", "mad", "joy")] == [
        "joy",
        "joy",
        "anger",
        "joy",
    ]
    with pytest.raises(RecordError, match="not among --labels-keep joy,anger"):
        rules.apply("sadness")
    assert rules.vocabulary(["happy", "mad", "calm"]) == ["anger", "joy"]
    with pytest.raises(UserInputError, match="OLD=NEW"):
        parse_label_map("happy")


# ------------------------------------------------------------------------------ the cases


def test_joy_anger_sadness_csv_prepares_three_classes_with_no_rejects(tmp_path: Path) -> None:
    rows = [
        {"text": f"post number {i}", "label": ("joy", "anger", "sadness")[i % 3]} for i in range(60)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "emotions.csv", index=False)
    out = tmp_path / "data"
    args = ["--text-column", "text", "--label-column", "label", "--quiet"]
    invoke("prepare", "table", str(tmp_path / "emotions.csv"), "--out", str(out), *args)
    info = json.loads((out / "dataset.json").read_text())
    assert info["labels"] == ["anger", "joy", "sadness"]
    assert info["n_rejects"] == 0 and info["n_examples"] == 60
    assert info["counts"]["train"] == {"anger": 14, "joy": 14, "sadness": 14}


def test_binary_image_csv_trains_evaluates_predicts_without_classes(
    tmp_path: Path, mvsa_root: Path
) -> None:
    """The issue's first case: positive/negative image paths, no --classes anywhere."""
    posts = mvsa_posts(mvsa_root, 20)
    posts = posts[posts["label"] != "neutral"][["image", "label"]]
    posts.to_csv(tmp_path / "train.csv", index=False)
    prepare_args = ["--image-column", "image", "--label-column", "label"]
    dataset, metrics, _ = end_to_end(
        tmp_path / "train.csv", tmp_path, prepare_args, ["--model", "image"], posts.head(5)
    )
    assert dataset.labels == ["negative", "positive"]
    assert set(metrics["per_class"]) == {"negative", "positive"}


def test_training_refuses_a_class_with_no_training_posts(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "text": [f"great happy day {i}" for i in range(12)],
            "label": ["positive", "negative"] * 5 + ["neutral", "neutral"],
            "split": ["train"] * 10 + ["test", "test"],
        }
    )
    data = tmp_path / "data"
    PreparedDataset.from_dataframe(frame, split_column="split", root=data)
    out = tmp_path / "model"
    args = ["--model", "text", "--text-encoder", "glove_mean", *FAST_TRAIN]
    result = runner.invoke(app, ["train", str(data), "--out", str(out), *args])
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "class 'neutral' has no train posts (train 0, test 2)" in message
    assert not out.exists()  # nothing written half way


def test_training_refuses_a_one_class_set(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": [f"a post {i}" for i in range(10)], "label": "joy"})
    data = tmp_path / "data"
    PreparedDataset.from_dataframe(frame, split=(0.8, 0.2), root=data)
    out = tmp_path / "model"
    args = ["--model", "text", "--text-encoder", "glove_mean", *FAST_TRAIN]
    result = runner.invoke(app, ["train", str(data), "--out", str(out), *args])
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "at least two classes" in message and "one class ('joy': train 8, val 2)" in message
    assert not out.exists()
    with pytest.raises(UserInputError, match="at least two classes"):
        check_trainable(PreparedDataset.load(data))


# ------------------------------------------------------------------------------ label-set shapes


def test_three_classes_from_mvsa_with_a_text_model(tmp_path: Path, mvsa_root: Path) -> None:
    posts = mvsa_posts(mvsa_root, 14)
    posts[["id", "text", "label"]].to_csv(tmp_path / "posts.csv", index=False)
    args = ["--text-column", "text", "--label-column", "label", "--id-column", "id"]
    dataset, metrics, _ = end_to_end(
        tmp_path / "posts.csv", tmp_path, args, ["--model", "text"], posts.head(4)
    )
    assert dataset.labels == ["negative", "neutral", "positive"]
    assert metrics["n"] == len(dataset.split("test"))


def test_integer_labels_stay_integers(tmp_path: Path, mvsa_root: Path) -> None:
    posts = mvsa_posts(mvsa_root, 12)
    posts["label"] = posts["label"].map({"negative": -1, "neutral": 0, "positive": 1})
    posts[["text", "image", "label"]].to_json(
        tmp_path / "posts.jsonl", orient="records", lines=True
    )
    args = ["--text-column", "text", "--image-column", "image", "--label-column", "label"]
    dataset, metrics, predictions = end_to_end(
        tmp_path / "posts.jsonl", tmp_path, args, ["--model", "late"], posts.head(3)
    )
    assert dataset.labels == ["-1", "0", "1"]  # numeric order, never "1.0"
    assert set(metrics["support"]) == {"-1", "0", "1"}
    # the late fusion's report compares its text and image branches on the integer labels
    assert "How much do images add?" in (tmp_path / "model" / "report.md").read_text()


def test_labels_with_spaces_and_a_label_map(tmp_path: Path, mvsa_root: Path) -> None:
    posts = mvsa_posts(mvsa_root, 12)
    words = {"negative": "bad day", "neutral": "just news", "positive": "good day"}
    posts["label"] = posts["label"].map(words)
    posts[["text", "image", "label"]].to_csv(tmp_path / "posts.csv", index=False)
    args = ["--image-column", "image", "--label-column", "label"]
    args += ["--label-map", "just news=plain news", "--labels-keep", "bad day,good day,plain news"]
    dataset, _, predictions = end_to_end(
        tmp_path / "posts.csv", tmp_path, args, ["--model", "image"], posts.head(3)
    )
    assert dataset.labels == ["bad day", "good day", "plain news"]
    # an embedding head places labels with spaces by their words' mean GloVe vector
    emb = tmp_path / "emb"
    head = ["--model", "image", "--head", "embedding", "--image-encoder", "pixels32"]
    invoke("train", str(tmp_path / "data"), "--out", str(emb), *head, *FAST_TRAIN)
    out = invoke(
        "predict", str(emb), "--image", posts["image"].iloc[0], "--labels", "sunny day,bad"
    )
    assert "sunny day" in out
    result = runner.invoke(
        app,
        ["predict", str(emb), "--image", posts["image"].iloc[0]] + ["--labels", "xqzzv mood,bad"],
    )
    assert result.exit_code == 2 and "'xqzzv' has no GloVe 6B vector" in result.output


def test_six_emotion6_classes_from_folders(tmp_path: Path, shared_data: Path) -> None:
    root = shared_data / "emotion6" / "images"
    rows = [
        {"image": str(path), "label": folder.name}
        for folder in sorted(root.iterdir())
        for path in sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem))[:7]
    ]
    posts = pd.DataFrame(rows)
    posts.to_csv(tmp_path / "e6.csv", index=False)
    args = ["--image-column", "image", "--label-column", "label"]
    dataset, metrics, _ = end_to_end(
        tmp_path / "e6.csv", tmp_path, args, ["--model", "image"], posts.head(4)
    )
    assert dataset.labels == ["anger", "disgust", "fear", "joy", "sadness", "surprise"]
    assert len(metrics["confusion"]) == 6
    # an experiment grid over both heads runs on the 6 emotions like on sentiment
    from sentimodal.analysis.experiment import ExperimentSpec, run_experiment

    spec = ExperimentSpec.model_validate(
        {
            "name": "emotions",
            "base": {
                "model": "image",
                "image_encoder": "pixels32",
                "feature_workers": 0,
                "train": {"epochs": 2, "patience": None},
            },
            "grid": {"head": ["softmax", "embedding"]},
            "seeds": [0],
            "baselines": ["majority"],
        }
    )
    grid = run_experiment(spec, dataset.root, tmp_path / "grid", command="pytest", progress=False)
    results = pd.read_csv(tmp_path / "grid" / "results.csv")
    assert grid.computed == 3 and set(results["cell"]) >= {"head=softmax", "head=embedding"}


# ------------------------------------------------------------------------------ MVSO emotions

BASIC_ANPS = {
    "joy": ["long_socks", "natural_beauty", "shiny_legs"],
    "trust": ["creative_leadership", "old_warden", "renewable_energy"],
    "fear": ["crazy_donkey", "abandoned_hospital", "open_shirt"],
    "surprise": ["bygone_age", "old_books", "classic_trucks"],
    "sadness": ["tiny_dog", "lost_cat", "fluffy_dog"],
    "disgust": ["inanimate_objects", "odd_future", "competitive_eating"],
    "anger": ["fat_face", "gothic_festival", "evil_dog"],
    "anticipation": ["scientific_illustration", "sticky_rice", "affordable_homes"],
}


def mvso_corpus(root: Path) -> Path:
    """getInfo XML files in ANP folders: two photos per ANP, titled and tagged by the ANP."""
    serial = 0
    for anps in BASIC_ANPS.values():
        for anp in anps:
            folder = root / anp
            folder.mkdir(parents=True)
            words = anp.replace("_", " ")
            for n in range(2):
                serial += 1
                photo_id = str(1000 + serial)  # Flickr ids are numbers, secrets hex
                (folder / f"{photo_id}.xml").write_text(
                    f'<rsp stat="ok"><photo id="{photo_id}" secret="ab12" server="1" farm="1">'
                    f"<title>{words} photo {n}</title><description>my {words}</description>"
                    f'<tags><tag raw="{words}">{anp}</tag></tags></photo></rsp>\n'
                )
    return root


def test_mvso_anp_emotion_labels_eight_and_twenty_four(tmp_path: Path, shared_data: Path) -> None:
    emotions = shared_data / "ontologies" / "mvso_english_anp_emotion.csv"
    root = mvso_corpus(tmp_path / "mvso")
    table = pd.read_csv(emotions).set_index("ANP")
    common = ["--labels", "anp-emotion", "--anp-emotions", str(emotions), "--quiet"]
    basic, full = tmp_path / "basic", tmp_path / "full"
    invoke("prepare", "mvso", str(root), "--out", str(basic), "--emotion-classes", "8", *common)
    invoke("prepare", "mvso", str(root), "--out", str(full), *common)

    eight = PreparedDataset.load(basic)
    assert eight.labels == sorted(BASIC_ANPS) and eight.info["n_rejects"] == 0
    by_anp = eight.examples.drop_duplicates("anp").set_index("anp")
    for label, anps in BASIC_ANPS.items():
        for anp in anps:
            row = by_anp.loc[anp]
            assert row["label"] == label  # argmax of the summed intensities
            distribution = dict(zip(eight.labels, row["label_distribution"], strict=True))
            joy = table.loc[anp, ["ecstasy", "joy", "serenity"]].sum() / table.loc[anp].sum()
            assert distribution["joy"] == pytest.approx(joy)
            assert sum(distribution.values()) == pytest.approx(1.0)

    twenty_four = PreparedDataset.load(full)
    assert len(twenty_four.labels) == 24
    row = twenty_four.examples.drop_duplicates("anp").set_index("anp").loc["tiny_dog"]
    assert row["label"] == table.loc["tiny_dog"].idxmax() == "sadness"
    # most of the 24 emotions are nobody's argmax here: training is refused, naming one
    model = tmp_path / "m24"
    result = runner.invoke(
        app, ["train", str(full), "--out", str(model), "--model", "text", *FAST_TRAIN]
    )
    assert result.exit_code == 2 and "class 'acceptance' has no train posts" in result.stderr
    assert not model.exists()

    # the 8 basic emotions train end to end, and soft targets train on the distributions
    encoders = ["--text-encoder", "glove_mean", "--model", "text"]
    invoke("train", str(basic), "--out", str(tmp_path / "m8"), *encoders, *FAST_TRAIN)
    out = invoke("predict", str(tmp_path / "m8"), "--text", "a lost cat in the rain")
    assert any(label in out for label in BASIC_ANPS)
    soft = {"text_encoder": "glove_mean", "train": {"epochs": 3, "soft_targets": True}}
    from sentimodal.training.estimator import SentimentModel

    model8 = SentimentModel(model="text", **soft).fit(eight, progress=False)
    assert model8.classes_ == eight.labels


def test_twenty_four_emotions_from_the_anp_table(tmp_path: Path, shared_data: Path) -> None:
    """24 classes: each emotion's most characteristic ANP phrases (real MVSO figures)."""
    table = pd.read_csv(shared_data / "ontologies" / "mvso_english_anp_emotion.csv")
    table = table.set_index("ANP")
    shares = table.div(table.sum(axis=1), axis=0)
    rows, used = [], set()
    for emotion in table.columns:
        top = [a for a in shares[emotion].sort_values(ascending=False).index if a not in used][:4]
        used.update(top)
        rows += [{"text": anp.replace("_", " "), "label": emotion} for anp in top]
    posts = pd.DataFrame(rows)
    posts.to_csv(tmp_path / "anps.csv", index=False)
    args = ["--text-column", "text", "--label-column", "label", "--split", "0.5,0.25,0.25"]
    dataset, metrics, _ = end_to_end(
        tmp_path / "anps.csv", tmp_path, args, ["--model", "text"], posts.head(3)
    )
    assert len(dataset.labels) == 24 and len(metrics["confusion"]) == 24
    # the confusion heat map of the report is sized to the 24 labels
    assert (tmp_path / "model" / "report.html").stat().st_size > 0


def test_label_distribution_columns_argmax_and_ties(tmp_path: Path) -> None:
    rows = [
        {"text": "a", "anger": 0.2, "joy": 0.8, "neutral": 0},
        {"text": "b", "anger": 1, "joy": 1, "neutral": 0},  # tie: the column named first
        {"text": "c", "anger": 0, "joy": 0, "neutral": 0},  # no votes: a reject
        {"text": "d", "anger": 0, "joy": 0, "neutral": 3},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "data"
    args = ["--text-column", "text", "--split", "none", "--quiet"]
    cols = ["--label-distribution-columns", "joy,anger,neutral"]
    invoke("prepare", "table", str(tmp_path / "d.csv"), "--out", str(out), *args, *cols)
    dataset = PreparedDataset.load(out)
    assert dataset.labels == ["anger", "joy", "neutral"]
    by_id = dataset.examples.set_index("id")
    assert list(by_id["label"]) == ["joy", "joy", "neutral"]
    assert list(by_id.loc["1", "label_distribution"]) == pytest.approx([0.2, 0.8, 0.0])
    assert list(by_id.loc["2", "label_distribution"]) == pytest.approx([0.5, 0.5, 0.0])
    assert dataset.rejects()["reason"].tolist() == ["label distribution: every probability is 0"]


# ------------------------------------------------------------------------------ small pieces


def test_undefined_metrics_print_as_a_dash_and_serialise_as_null() -> None:
    from rich.console import Console

    from sentimodal.evaluation.metrics import classification_report
    from sentimodal.interfaces.cli.tables import comparison_table, metrics_table

    labels = ["negative", "neutral", "positive"]
    metrics = classification_report(["negative", "positive"], ["negative", "negative"], labels)
    assert metrics["per_class"]["neutral"] is None and metrics["per_class_f1"]["neutral"] is None
    console = Console(width=200, record=True)
    console.print(metrics_table(metrics, "test"))
    console.print(comparison_table([{"model": "m", "accuracy": None, "macro_f1": 0.5}], "t"))
    text = console.export_text()
    assert "neutral" in text and "–" in text
    assert json.loads(json.dumps(metrics))["per_class_precision"]["positive"] is None


def test_classes_applies_only_to_tool_made_labels(tmp_path: Path) -> None:
    pd.DataFrame({"t": ["a", "b"], "s": ["joy", "anger"]}).to_csv(tmp_path / "t.csv", index=False)
    args = ["prepare", "table", str(tmp_path / "t.csv"), "--out", str(tmp_path / "o")]
    args += ["--text-column", "t", "--label-column", "s", "--classes", "2", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--labels-keep" in result.stderr
    assert not (tmp_path / "o").exists()


def test_dataframe_with_integer_labels_fits_and_predicts(mvsa_root: Path) -> None:
    from sentimodal.training.estimator import SentimentModel

    posts = mvsa_posts(mvsa_root, 12)
    posts = posts[posts["label"] != "neutral"].copy()
    posts["label"] = (posts["label"] == "positive").astype(int)  # 0 / 1
    model = SentimentModel(
        model="text", text_encoder="glove_mean", train={"epochs": 3}, feature_workers=0
    ).fit(posts[["text", "label"]], progress=False)
    assert model.classes_ == ["0", "1"]
    (prediction,) = model.predict_posts([{"text": "what a wonderful day"}])
    assert prediction.label in {"0", "1"} and set(prediction.scores) == {"0", "1"}


def test_minilm_places_any_phrase_glove_refuses_unknown_words() -> None:
    from sentimodal.models.label_space import LabelSpace

    space = LabelSpace.from_minilm(["xqzzv mood", "a sunny day"])
    assert space.dim == 384 and space.labels == ["xqzzv mood", "a sunny day"]
    glove = LabelSpace.from_glove(["sunny day", "bad"])
    assert glove.vectors.shape == (2, 50)
    with pytest.raises(UserInputError, match="'xqzzv' has no GloVe 6B vector"):
        LabelSpace.from_glove(["xqzzv mood", "bad"])

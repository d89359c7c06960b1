"""Training machinery on synthetic data: losses, batching, seeds, early stopping, inference."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from rich.console import Console

from sentimodal.errors import UserInputError
from sentimodal.models import LabelSpace, get_model
from sentimodal.models.batches import as_tensors, epoch_batches, take
from sentimodal.training import (
    ConfidentConfig,
    TrainConfig,
    confident_mask,
    cosine_proximity,
    extract_embeddings,
    fine_tune_confident,
    fit,
    hinge_rank,
    make_loss,
    make_optimizer,
    mse,
    predict_labels,
    predict_scores,
)
from sentimodal.training.losses import ContrastWords, class_weights, contrast_words, cross_entropy
from sentimodal.training.train_config import HingeVocabulary

pytestmark = pytest.mark.usefixtures("one_thread")


def _blobs(n: int = 300, dim: int = 5, seed: int = 0, noise: float = 1.0):
    """Three Gaussian blobs: a learnable problem with some overlap."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centres = np.array([[2.0, 0, 0, 0, 0], [0, 2.0, 0, 0, 0], [0, 0, 2.0, 0, 0]])[:, :dim]
    x = centres[labels] + rng.normal(0, noise, (n, dim))
    return {"text": x.astype(np.float32)}, labels


def _tokens(n: int = 120, seed: int = 0):
    """Token sequences whose label is whether token 7 occurs; lengths 1..40, post-padded."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((n, 101), dtype=np.int64)
    lengths = rng.integers(1, 41, n)
    labels = rng.integers(0, 2, n)
    for row in range(n):
        seq = rng.integers(8, 30, lengths[row])
        if labels[row]:
            seq[rng.integers(0, lengths[row])] = 7
        ids[row, : lengths[row]] = seq
    return {"text": ids, "text_lengths": lengths}, labels


# ---- losses -------------------------------------------------------------------------------


def test_cosine_and_mse_losses_by_hand():
    vectors = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    outputs = torch.tensor([[3.0, 0.0], [0.0, -1.0], [1.0, 1.0]])
    targets = torch.tensor([0, 1, 0])
    torch.testing.assert_close(
        cosine_proximity(outputs, targets, vectors),
        torch.tensor([0.0, 2.0, 1 - 2**-0.5]),
    )
    torch.testing.assert_close(
        mse(outputs, targets, vectors), torch.tensor([(4 + 0) / 2, (0 + 9) / 2, (0 + 1) / 2])
    )


def test_hinge_rank_loss_by_hand():
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    pred = torch.tensor([[1.0, 1.0]])  # cos: 0.707 to labels 0 and 1, -0.707 to label 2
    c = 2**-0.5
    # true label 0: other label 1 violates by margin (0.1 - c + c), label 2 not at all
    torch.testing.assert_close(
        hinge_rank(pred, torch.tensor([0]), vectors, margin=0.1), torch.tensor([0.1])
    )
    # true label 2: both others violate by margin + c - (-c)
    torch.testing.assert_close(
        hinge_rank(pred, torch.tensor([2]), vectors, margin=0.1),
        torch.tensor([2 * (0.1 + 2 * c)]),
    )
    # well separated: no loss, and no gradient
    close = torch.tensor([[1.0, 0.05]], requires_grad=True)
    loss = hinge_rank(close, torch.tensor([0]), vectors, margin=0.1)
    loss.sum().backward()
    assert loss.item() == 0.0 and close.grad.abs().sum() == 0
    # a gradient step on a violating prediction moves it towards its true label
    point = torch.tensor([[0.2, 1.0]], requires_grad=True)
    hinge_rank(point, torch.tensor([0]), vectors, margin=0.5).sum().backward()
    with torch.no_grad():
        moved = point - 0.1 * point.grad
    before = torch.nn.functional.cosine_similarity(point.detach(), vectors[:1])
    assert torch.nn.functional.cosine_similarity(moved, vectors[:1]) > before


def test_hinge_rank_loss_uses_the_vocabulary_words():
    labels = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    pred = torch.tensor([[1.0, 0.3, 0.0]])
    true = torch.tensor([0])
    plain = hinge_rank(pred, true, labels, margin=0.1)
    assert plain.item() == 0.0  # the other label is far: no loss from the labels alone

    def words(rows: list[list[float]], targets: torch.Tensor = labels) -> ContrastWords:
        vectors = torch.cat([labels, torch.tensor(rows)])
        contrast = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
        return ContrastWords(targets, vectors, contrast)

    # words far from the prediction satisfy the margin: still zero
    far = words([[0.0, 0.0, 1.0], [-1.0, 1.0, 0.0]])
    assert hinge_rank(pred, true, labels, 0.1, far).item() == 0.0
    # a contrast word nearer than the true label violates: margin - cos(true) + cos(word)
    near = words([[1.0, 0.3, 0.0], [0.0, 0.0, 1.0]])
    expected = torch.tensor([0.1 - 1.09**-0.5 + 1.0])
    torch.testing.assert_close(hinge_rank(pred, true, labels, 0.1, near), expected)
    # the same word moved away from the prediction: less loss
    moved = words([[1.0, 0.6, 0.0], [0.0, 0.0, 1.0]])
    assert 0 < hinge_rank(pred, true, labels, 0.1, moved).item() < expected.item()
    # words contrasted with the other label only do not count for this post
    assert hinge_rank(pred, torch.tensor([1]), labels, 0.1, near).item() == pytest.approx(
        hinge_rank(pred, torch.tensor([1]), labels, 0.1).item()
    )
    # a target moved away from the label is what "true" is measured against: aimed where its
    # cosine is 0, the first far word (cosine 0) violates by the margin, the second does not
    aimed = torch.tensor([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])
    far_aimed = words([[0.0, 0.0, 1.0], [-1.0, 1.0, 0.0]], aimed)
    torch.testing.assert_close(hinge_rank(pred, true, labels, 0.1, far_aimed), torch.tensor([0.1]))


def test_contrast_words_place_the_vocabulary_with_the_label_source():
    space = LabelSpace.from_glove(["negative", "positive"])
    vocabulary = HingeVocabulary(
        negatives={"positive": ["awful", "sad"], "negative": ["good"]},
        targets={"positive": ["happy"]},
    )
    words = contrast_words(space, vocabulary)
    unit = space.vectors / np.linalg.norm(space.vectors, axis=1, keepdims=True)
    # labels first, then the words in sorted order: awful, good, happy, sad
    assert words.words.shape == (6, 50) and words.contrast.tolist() == [
        [0, 0, 0, 1, 0, 0],
        [0, 0, 1, 0, 0, 1],
    ]
    np.testing.assert_allclose(words.targets[0].numpy(), unit[0], atol=1e-6)
    happy = LabelSpace.from_glove(["happy", "x"]).vectors[0]
    expected = (unit[1] + happy / np.linalg.norm(happy)) / 2
    np.testing.assert_allclose(words.targets[1].numpy(), expected, atol=1e-6)
    with pytest.raises(UserInputError, match="not among"):
        contrast_words(space, HingeVocabulary(negatives={"neutral": ["bad"]}))
    with pytest.raises(UserInputError, match="are labels"):
        contrast_words(space, HingeVocabulary(negatives={"positive": ["negative"]}))
    model = get_model("mlp", input_dim=5, head="embedding", label_dim=50)
    model.set_label_space(space)
    with pytest.raises(UserInputError, match="needs the hinge loss"):
        make_loss(model, TrainConfig(loss="cosine", vocabulary=vocabulary))
    # through make_loss, the contrast words change the loss of the same outputs
    outputs, targets = torch.from_numpy(unit[[1, 0]] + 0.5 * unit[[0, 1]]), torch.tensor([1, 0])
    plain = make_loss(model, TrainConfig(loss="hinge", margin=0.5))(outputs, targets)
    extended = make_loss(model, TrainConfig(loss="hinge", margin=0.5, vocabulary=vocabulary))
    assert extended(outputs, targets) > plain


def test_cross_entropy_on_late_fusion_log_probs_is_negative_log_average():
    probs = torch.tensor([[0.2, 0.5, 0.3]])
    torch.testing.assert_close(
        cross_entropy(probs.log(), torch.tensor([1])), -torch.log(torch.tensor([0.5]))
    )


def test_balanced_class_weights_and_weighted_loss():
    weights = class_weights(np.array([0, 0, 0, 1, 2, 2]), 4)
    torch.testing.assert_close(weights, torch.tensor([6 / 9, 6 / 3, 6 / 6, 0.0]))
    model = get_model("mlp", input_dim=2, hidden=[])
    loss = make_loss(model, TrainConfig(), torch.tensor([1.0, 3.0, 1.0]))
    outputs = torch.zeros(2, 3)  # every per-example loss is log 3
    torch.testing.assert_close(loss(outputs, torch.tensor([0, 1])), torch.log(torch.tensor(3.0)))
    outputs = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    per = cross_entropy(outputs, torch.tensor([0, 1]))
    torch.testing.assert_close(loss(outputs, torch.tensor([0, 1])), (per[0] + 3 * per[1]) / 4)


def test_loss_must_fit_the_head():
    data, labels = _blobs(20)
    softmax = get_model("mlp", input_dim=5)
    with pytest.raises(UserInputError, match="does not fit a softmax head"):
        fit(softmax, data, labels, config=TrainConfig(loss="hinge"), progress=False)
    embedding = get_model("mlp", input_dim=5, head="embedding", label_dim=3)
    embedding.set_label_space(LabelSpace(["a", "b", "c"], np.eye(3), "test"))
    with pytest.raises(UserInputError, match="does not fit a embedding head"):
        fit(embedding, data, labels, config=TrainConfig(loss="cross_entropy"), progress=False)
    with pytest.raises(UserInputError, match=r"class indices in \[0, 3\)"):
        fit(softmax, data, labels + 1, progress=False)


# ---- batches ------------------------------------------------------------------------------


def test_length_bucketed_batches_cover_everything_once_and_cut_padding():
    lengths = torch.from_numpy(np.random.default_rng(0).integers(1, 80, 993))
    random = epoch_batches(993, 32, torch.Generator().manual_seed(0))
    bucketed = epoch_batches(993, 32, torch.Generator().manual_seed(0), lengths, 10)
    for batches in (random, bucketed):
        assert sorted(torch.cat(batches).tolist()) == list(range(993))
    # the lone last example joined the batch before it
    assert min(len(b) for b in random) > 1 and len(random) == 31

    def padded(batches):
        return sum(len(b) * int(lengths[b].max()) for b in batches)

    assert padded(bucketed) < 0.7 * padded(random)
    again = epoch_batches(993, 32, torch.Generator().manual_seed(0), lengths, 10)
    assert all(torch.equal(a, b) for a, b in zip(bucketed, again, strict=True))


def test_take_trims_token_batches_to_their_longest_sequence():
    data, _ = _tokens(10)
    tensors = as_tensors({"text": data["text"]})  # lengths are counted from the pad id
    torch.testing.assert_close(tensors["text_lengths"], torch.from_numpy(data["text_lengths"]))
    index = torch.tensor([0, 3])
    batch = take(tensors, index)
    assert batch["text"].shape == (2, int(data["text_lengths"][[0, 3]].max()))
    assert take(tensors, index, trim=False)["text"].shape == (2, 101)
    with pytest.raises(UserInputError, match="different numbers"):
        as_tensors({"text": np.zeros((3, 2)), "image": np.zeros((4, 2))})


# ---- the training loop --------------------------------------------------------------------


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_same_seed_same_weights_and_the_callers_rng_is_untouched():
    data, labels = _tokens(90)

    def run(seed: int) -> list[torch.Tensor]:
        model = get_model(
            "text_lstm", vocab_size=30, embedding_dim=8, lstm_dim=6, dropout=0.5, seed=3
        )
        config = TrainConfig(epochs=2, batch_size=16, seed=seed, optimizer="rmsprop")
        fit(model, data, labels, config=config, progress=False)
        return _weights(model)

    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    first = run(0)
    assert torch.equal(torch.rand(3), expected)
    second = run(0)
    other = run(1)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adam"])
def test_each_optimizer_learns(optimizer):
    data, labels = _blobs(300)
    model = get_model("mlp", input_dim=5, hidden=[16], dropout=0.0, seed=0)
    lr = {"sgd": 0.05, "rmsprop": 3e-3, "adam": 3e-3}[optimizer]
    config = TrainConfig(optimizer=optimizer, lr=lr, epochs=8, patience=None, batch_size=32)
    result = fit(model, data, labels, config=config, progress=False)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.7 * losses[0]
    assert (predict_labels(model, data) == labels).mean() > 0.8
    assert result.best_epoch is None  # no validation data


def test_optimizer_settings():
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = make_optimizer(params, TrainConfig(optimizer="sgd", momentum=0.8, weight_decay=0.1))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.8 and sgd.defaults["weight_decay"] == 0.1
    rms = make_optimizer(params, TrainConfig(optimizer="rmsprop"), lr=0.5)
    assert rms.defaults["alpha"] == 0.9 and rms.defaults["lr"] == 0.5


def test_early_stopping_restores_the_best_epoch():
    data, labels = _blobs(300, seed=0, noise=1.5)
    val = _blobs(200, seed=1, noise=1.5)
    model = get_model("mlp", input_dim=5, hidden=[64], dropout=0.0, seed=0)
    config = TrainConfig(lr=0.05, epochs=30, patience=2, batch_size=16)
    result = fit(model, data, labels, val=val, config=config, progress=False)
    accs = [h["val_accuracy"] for h in result.history]
    assert result.best_epoch == int(np.argmax(accs)) + 1
    assert len(accs) == result.best_epoch + 2 < 30 and result.stopped_early
    assert (predict_labels(model, val[0]) == val[1]).mean() == pytest.approx(max(accs))
    assert set(result.history[0]) == {
        "epoch",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "seconds",
    }
    # monitoring the loss picks the epoch of the lowest validation loss
    model = get_model("mlp", input_dim=5, hidden=[64], dropout=0.0, seed=0)
    by_loss = fit(
        model,
        data,
        labels,
        val=val,
        config=config.model_copy(update={"monitor": "val_loss"}),
        progress=False,
    )
    losses = [h["val_loss"] for h in by_loss.history]
    assert by_loss.best_epoch == int(np.argmin(losses)) + 1


def test_balanced_class_weight_raises_minority_recall():
    rng = np.random.default_rng(0)
    labels = (rng.random(600) < 0.15).astype(int)
    x = (labels[:, None] * 1.0 + rng.normal(0, 1.0, (600, 2))).astype(np.float32)
    recalls = {}
    for mode in ("none", "balanced"):
        model = get_model("mlp", input_dim=2, hidden=[], n_classes=2, seed=0)
        fit(
            model,
            {"text": x},
            labels,
            config=TrainConfig(lr=0.05, epochs=10, class_weight=mode),
            progress=False,
        )
        recalls[mode] = (predict_labels(model, {"text": x})[labels == 1] == 1).mean()
    assert recalls["balanced"] > recalls["none"] + 0.2


def test_progress_prints_one_line_per_epoch():
    data, labels = _blobs(60)
    out = io.StringIO()
    model = get_model("mlp", input_dim=5, hidden=[4], seed=0)
    config = TrainConfig(epochs=2, patience=None)
    fit(model, data, labels, val=(data, labels), config=config, console=Console(file=out))
    lines = [line for line in out.getvalue().splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "val_acc" in lines[1] and "train_loss" in lines[0]
    assert "trained after 2 of 2 epochs; best epoch" in " ".join(out.getvalue().split())


def test_embedding_head_trains_with_each_embedding_loss():
    data, labels = _blobs(300)
    space = LabelSpace(["a", "b", "c"], np.random.default_rng(0).normal(size=(3, 8)), "test")
    for loss in ("cosine", "mse", "hinge"):
        model = get_model("mlp", input_dim=5, hidden=[16], head="embedding", label_dim=8, seed=0)
        model.set_label_space(space)
        config = TrainConfig(loss=loss, lr=1e-2, epochs=15, patience=None)
        fit(model, data, labels, config=config, progress=False)
        assert (predict_labels(model, data) == labels).mean() > 0.8, loss


# ---- inference and confident examples -----------------------------------------------------


def test_inference_keeps_input_order_despite_length_sorting():
    data, _ = _tokens(50)
    model = get_model("text_lstm", vocab_size=30, embedding_dim=8, lstm_dim=6, seed=0).eval()
    scores = predict_scores(model, data, batch_size=7)
    features = extract_embeddings(model, data, batch_size=7)
    assert features.shape == (50, 12)
    with torch.no_grad():
        for row in (0, 17, 49):
            one = {key: torch.from_numpy(value[row : row + 1]) for key, value in data.items()}
            np.testing.assert_allclose(scores[row], model.scores(one)[0].numpy(), atol=1e-5)
            np.testing.assert_allclose(features[row], model.embed(one)[0].numpy(), atol=1e-5)
    with pytest.raises(UserInputError, match="no examples"):
        predict_scores(model, {"text": np.zeros((0, 5), dtype=np.int64)})


def test_confident_examples_are_those_above_threshold():
    data, labels = _blobs(200, noise=1.5)
    model = get_model("mlp", input_dim=5, hidden=[8], seed=0)
    fit(model, data, labels, config=TrainConfig(epochs=5, lr=0.01), progress=False)
    scores = predict_scores(model, data)
    mask = confident_mask(model, data, labels, 0.6)
    np.testing.assert_array_equal(mask, scores[np.arange(200), labels] > 0.6)
    assert 0 < mask.sum() < 200
    before = _weights(model)
    tuned = fine_tune_confident(
        model,
        data,
        labels,
        train_config=TrainConfig(batch_size=16),
        config=ConfidentConfig(threshold=0.6, epochs=2),
        progress=False,
    )
    np.testing.assert_array_equal(tuned.kept, mask)
    assert len(tuned.result.history) == 2
    assert not all(torch.equal(a, b) for a, b in zip(before, _weights(model), strict=True))
    with pytest.raises(UserInputError, match="threshold"):
        fine_tune_confident(model, data, labels, config=ConfidentConfig(threshold=1.0))

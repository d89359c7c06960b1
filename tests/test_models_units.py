"""Model plumbing on synthetic tensors: shapes, heads, label spaces, packing, gates, configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sentimodal.errors import UserInputError
from sentimodal.models import (
    GatedFusionConfig,
    LabelSpace,
    LateFusion,
    MLPConfig,
    build_model,
    config_from_dict,
    get_model,
    glove_embedding_matrix,
    list_models,
)
from sentimodal.models.registry import network_kind
from sentimodal.training import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_thread")


def _space(dim: int = 4) -> LabelSpace:
    return LabelSpace(["a", "b", "c"], np.eye(3, dim, dtype=np.float32) * 2.0, "test")


CONFIGS = {
    "mlp": {"input": "image", "input_dim": 12, "hidden": [8, 6], "dropout": [0.1, 0.2]},
    "linear": {"input": "image", "input_dim": 12},
    "text_lstm": {"vocab_size": 30, "embedding_dim": 8, "lstm_dim": 5},
    "text_transformer": {
        "architecture": {
            "vocab_size": 30,
            "hidden_size": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 16,
            "max_position_embeddings": 16,
            "pad_token_id": 0,
        },
        "init": "random",
    },  # fmt: skip
    "text_cross": {
        "architecture": {
            "vocab_size": 30,
            "hidden_size": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 16,
            "max_position_embeddings": 16,
            "pad_token_id": 0,
        },
        "init": "random",
        "image_dim": 12,
        "image_positions": 4,
        "attention_heads": 2,
    },  # fmt: skip
    "text_mpnet": {
        "architecture": {
            "vocab_size": 30,
            "hidden_size": 8,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 16,
            "max_position_embeddings": 16,
            "pad_token_id": 1,
        },
        "init": "random",
        "frozen_layers": 1,
    },  # fmt: skip
    "pixel_cnn": {"channels": (4, 6), "hidden": [10]},
    "concat": {"text_dim": 7, "image_dim": 12},
    "gated": {"text_dim": 7, "image_dim": 12, "compress_image": 9},
    "late": {
        "text": {"kind": "text_lstm", "vocab_size": 30, "embedding_dim": 8, "lstm_dim": 5},
        "image": {"kind": "mlp", "input": "image", "input_dim": 12, "hidden": [6]},
    },
}


def _batch(n: int = 5, kind: str = "") -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    lengths = torch.tensor([3, 1, 7, 4, 2][:n])
    ids = torch.zeros(n, 9, dtype=torch.int64)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(1, 30, (int(length),))
    text = (
        ids
        if kind in ("text_lstm", "text_transformer", "text_cross", "text_mpnet", "late")
        else torch.randn(n, 7)
    )
    image = {"pixel_cnn": torch.rand(n, 3, 32, 32), "text_cross": torch.randn(n, 4, 12)}.get(
        kind, torch.randn(n, 12)
    )
    return {"text": text, "text_lengths": lengths, "image": image}


def test_registry_lists_every_kind():
    shipped = {
        k for k in list_models() if network_kind(k).network.__module__.startswith("sentimodal.")
    }
    assert shipped == set(CONFIGS)  # a user's module may have registered more
    with pytest.raises(UserInputError, match="unknown model 'nope'"):
        get_model("nope")
    with pytest.raises(UserInputError, match="bad settings"):
        get_model("mlp", input_dim=3, hidden=[4, 4], dropout=[0.1])


@pytest.mark.parametrize("kind", list(CONFIGS))
@pytest.mark.parametrize("head", ["softmax", "embedding"])
def test_every_model_with_either_head(kind, head):
    extra = {"label_dim": 4} if head == "embedding" else {"n_classes": 3}
    model = get_model(kind, head=head, seed=0, **CONFIGS[kind], **extra)
    if head == "embedding":
        model.set_label_space(_space())
    model.eval()
    batch = _batch(kind=kind)
    out = model(batch)
    assert out.shape == (5, 4 if head == "embedding" else 3)
    scores = model.scores(batch)
    assert scores.shape == (5, 3)
    if head == "softmax":
        torch.testing.assert_close(scores.sum(dim=1), torch.ones(5))
    else:
        assert scores.abs().max() <= 1 + 1e-5
    assert model.embed(batch).shape[0] == 5
    # the config round-trips through YAML and rebuilds the same architecture
    rebuilt = build_model(config_from_dict(model.config.to_dict()), seed=0)
    again = type(model.config).from_yaml(model.config.to_yaml())
    assert again == model.config
    for (k1, v1), (k2, v2) in zip(
        model.state_dict().items(), rebuilt.state_dict().items(), strict=True
    ):
        assert k1 == k2
        torch.testing.assert_close(v1, v2)


def test_seed_makes_initial_weights_reproducible_without_touching_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = get_model("mlp", input_dim=5, seed=7)
    assert torch.rand(1) == expected
    b = get_model("mlp", input_dim=5, seed=7)
    c = get_model("mlp", input_dim=5, seed=8)
    torch.testing.assert_close(a.body.layers[0].weight, b.body.layers[0].weight)
    assert not torch.equal(a.body.layers[0].weight, c.body.layers[0].weight)


def test_mlp_per_layer_dropout_and_missing_modality():
    model = get_model("mlp", input="image", input_dim=4, hidden=[3, 2], dropout=[0.0, 0.25])
    rates = [m.p for m in model.body.layers if isinstance(m, torch.nn.Dropout)]
    assert rates == [0.0, 0.25]
    with pytest.raises(UserInputError, match=r"needs the input\(s\) \['image'\]"):
        model({"text": torch.randn(2, 4)})


def _lstm(mode: str):
    return get_model(
        "text_lstm", vocab_size=50, embedding_dim=6, lstm_dim=4, sequence_mode=mode, seed=0
    ).eval()


def test_lstm_output_does_not_depend_on_padding():
    seq = torch.tensor([5, 9, 2, 44, 7])
    short = seq[None, :]
    long = torch.zeros(3, 101, dtype=torch.int64)
    long[0, :5] = seq
    long[1, :2] = torch.tensor([3, 3])
    long[2, :60] = torch.arange(1, 61) % 49 + 1
    lengths = torch.tensor([5, 2, 60])
    outputs = {}
    with torch.no_grad():
        for mode in ("masked", "packed", "padded"):
            model = _lstm(mode)
            alone = model.embed({"text": short, "text_lengths": torch.tensor([5])})
            in_batch = model.embed({"text": long, "text_lengths": lengths})
            outputs[mode] = (alone, in_batch)
            if mode != "padded":
                torch.testing.assert_close(alone[0], in_batch[0])
                # lengths are counted from the pad id when not given
                torch.testing.assert_close(model.embed({"text": long}), in_batch)
    # masked and packed are two implementations of the same function
    torch.testing.assert_close(outputs["masked"][1], outputs["packed"][1])
    # "padded" runs over the padding (as Keras without masking): the output changes with it
    alone, in_batch = outputs["padded"]
    torch.testing.assert_close(alone, outputs["masked"][0])  # no padding: same as masked
    assert not torch.allclose(alone[0], in_batch[0], atol=1e-4)


def test_reverse_within_length():
    from sentimodal.models.text_lstm import reverse_within_length

    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]]).float()[:, :, None]
    out = reverse_within_length(x, torch.tensor([3, 2]))[:, :, 0]
    assert out.tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]


def test_lstm_handles_empty_text_and_rejects_float_features():
    model = get_model("text_lstm", vocab_size=10, embedding_dim=4, lstm_dim=3).eval()
    ids = torch.tensor([[0, 0, 0], [4, 2, 0]])
    assert torch.isfinite(model({"text": ids})).all()
    with pytest.raises(UserInputError, match="token ids"):
        model({"text": torch.randn(2, 3)})


def test_text_lstm_glove_init():
    with pytest.raises(UserInputError, match="embedding_dim=50"):
        get_model("text_lstm", vocab_size=10, embedding_init="glove")
    vocab = ["<pad>", "<unk>", "happy", "sad", "qqzzxxq"]
    table = glove_embedding_matrix(vocab)
    assert table.shape == (5, 50)
    assert not table[0].any()
    from sentimodal.features.resources import glove_table

    np.testing.assert_allclose(table[2], glove_table().vector("happy"))
    assert table[4].any()  # unknown word: random, not zero
    model = get_model("text_lstm", vocab_size=5, embedding_dim=50, embedding_init="glove")
    model.init_embeddings(table)
    np.testing.assert_allclose(model.embedding.weight[3].detach().numpy(), table[3])
    with pytest.raises(UserInputError, match="do not fit"):
        model.init_embeddings(table[:4])


def test_pixel_cnn_layers_and_flattened_input():
    model = get_model("pixel_cnn", seed=0).eval()
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == [
        "Conv2d", "ReLU", "MaxPool2d", "BatchNorm2d",
        "Conv2d", "ReLU", "MaxPool2d", "BatchNorm2d", "Flatten",
    ]  # fmt: skip
    assert [model.features[0].out_channels, model.features[4].out_channels] == [96, 256]
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            model({"image": images}), model({"image": images.reshape(2, -1)})
        )
    with pytest.raises(UserInputError, match="pixel CNN"):
        model({"image": torch.rand(2, 3, 16, 16)})
    with pytest.raises(UserInputError, match="odd"):
        get_model("pixel_cnn", kernel_size=4)


def test_gl2_gates_stay_in_unit_interval_while_gl1_gates_do_not():
    torch.manual_seed(0)
    n = 200
    text = torch.randn(n, 6)
    image = torch.randn(n, 8)
    labels = (text[:, 0] > 0).long() + (text[:, 1] > 0).long()
    data = {"text": text.numpy(), "image": image.numpy()}
    config = TrainConfig(optimizer="sgd", lr=0.5, epochs=15, batch_size=32, patience=None)
    stats = {}
    for gate in ("gl1", "gl2"):
        model = get_model(
            "gated", text_dim=6, image_dim=8, gate=gate, compress_image=None, dropout=0.0, seed=0
        )
        fit(model, data, labels.numpy(), config=config, progress=False)
        values = torch.cat(list(model.gates().values()))
        stats[gate] = model.gate_stats(near_zero=0.05)
        if gate == "gl2":
            assert values.min() >= 0 and values.max() <= 1
        else:
            assert values.min() < 0 or values.max() > 1  # nothing holds GL1 gates in [0, 1]
    gl2 = stats["gl2"]
    assert set(gl2) == {"text", "image"}
    assert set(gl2["text"]) == {"dim", "mean", "std", "min", "max", "near_zero"}
    assert gl2["image"]["dim"] == 8
    # the label depends on the text only: its gates open further than the image's
    assert gl2["text"]["max"] > gl2["image"]["max"]


def test_gated_fusion_compresses_images_to_600_by_default():
    config = GatedFusionConfig(text_dim=5, image_dim=1280)
    model = build_model(config)
    assert model.image_gate.shape == (600,)
    assert model.head.linear.in_features == 605
    assert model.gate_stats()["image"]["mean"] == pytest.approx(0.5)


def test_late_fusion_averages_branch_probabilities():
    text = get_model("mlp", input="text", input_dim=7, hidden=[4], seed=0)
    image = get_model("mlp", input="image", input_dim=12, hidden=[4], seed=1)
    late = LateFusion.from_models(text, image).eval()
    batch = _batch()
    with torch.no_grad():
        expected = (text.scores(batch) + image.scores(batch)) / 2
        torch.testing.assert_close(late.scores(batch), expected)
        outs = late.training_outputs(batch)
    assert len(outs) == 2
    assert late.embed(batch).shape == (5, 8)
    rebuilt = build_model(late.config.to_dict())
    rebuilt.load_state_dict(late.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval().scores(batch), expected)


def test_late_fusion_joint_loss_adds_the_fused_output_from_one_pass():
    branches = {
        "text": {"kind": "mlp", "input": "text", "input_dim": 7, "hidden": [4]},
        "image": {"kind": "mlp", "input": "image", "input_dim": 12, "hidden": [4]},
    }
    late = get_model("late", joint_loss=True, seed=0, **branches).eval()
    batch = _batch()
    calls = []
    late.text.register_forward_hook(lambda *_: calls.append("text"))
    with torch.no_grad():
        text_out, image_out, fused = late.training_outputs(batch)
        torch.testing.assert_close(fused, late(batch))
    assert calls == ["text", "text"]  # once for the three outputs, once for forward
    torch.testing.assert_close(text_out, late.text(batch))
    # the fused loss reaches both branches
    late.train()
    late.training_outputs(batch)[2].logsumexp(dim=1).sum().backward()
    assert late.text.head.linear.weight.grad is not None
    assert late.image.head.linear.weight.grad is not None
    plain = get_model("late", seed=0, **branches)
    assert len(plain.training_outputs(batch)) == 2


def test_late_fusion_branches_follow_the_fusion_head():
    late = get_model(
        "late",
        head="embedding",
        label_dim=4,
        text={"kind": "mlp", "input": "text", "input_dim": 7},
        image={"kind": "mlp", "input": "image", "input_dim": 12},
    )
    assert late.text.head_kind == late.image.head_kind == "embedding"
    with pytest.raises(UserInputError, match="label space"):
        late.scores(_batch())
    late.set_label_space(_space())
    assert late.eval().scores(_batch()).shape == (5, 3)
    with pytest.raises(UserInputError, match="input='image'"):
        get_model(
            "late",
            text={"kind": "mlp", "input": "text", "input_dim": 7},
            image={"kind": "mlp", "input": "text", "input_dim": 12},
        )


def test_embedding_head_decodes_nearest_label_and_takes_new_label_spaces():
    model = get_model("mlp", input_dim=3, hidden=[], head="embedding", label_dim=3, seed=0)
    with torch.no_grad():
        model.head.linear.weight.copy_(torch.eye(3))
        model.head.linear.bias.zero_()
    space = LabelSpace(["x", "y", "z"], np.eye(3) * 5, "test")
    model.set_label_space(space)
    points = torch.tensor([[0.1, 2.0, 0.0], [3.0, -1.0, 0.2], [0.0, 0.1, 0.2]])
    scores = model.scores({"text": points})
    assert scores.argmax(dim=1).tolist() == [1, 0, 2]
    expected = torch.nn.functional.cosine_similarity(points[:1], torch.tensor([[0.0, 1.0, 0.0]]))
    torch.testing.assert_close(scores[0, 1], expected[0])
    assert space.decode(model({"text": points})) == ["y", "x", "z"]
    # another label set of the same dimension: scores follow the new labels
    bigger = LabelSpace(
        ["p", "q", "r", "s"], np.array([[1, 1, 0], [0, 0, 1], [-1, 0, 0], [0, -1, 0]]), "test"
    )
    model.set_label_space(bigger)
    assert model.scores({"text": points}).shape == (3, 4)
    with pytest.raises(UserInputError, match="dimension 2"):
        model.set_label_space(LabelSpace(["a", "b"], np.eye(2), "test"))
    softmax = get_model("mlp", input_dim=3)
    with pytest.raises(UserInputError, match="embedding head"):
        softmax.set_label_space(space)


def test_label_space_glove_phrases_round_trip_and_rebuild():
    from sentimodal.features.resources import glove_table

    space = LabelSpace.from_glove(["positive", "very sad", "nice_smile"])
    table = glove_table()
    np.testing.assert_allclose(space.vector("positive"), table.vector("positive"))
    np.testing.assert_allclose(
        space.vector("very sad"), (table.vector("very") + table.vector("sad")) / 2, rtol=1e-6
    )
    np.testing.assert_allclose(
        space.vector("nice_smile"), (table.vector("nice") + table.vector("smile")) / 2, rtol=1e-6
    )
    again = LabelSpace.from_dict(space.to_dict())
    assert again.labels == space.labels and again.source == "glove_6b_50d"
    np.testing.assert_array_equal(again.vectors, space.vectors)
    other = space.with_labels(["happy", "angry"])
    assert other.labels == ["happy", "angry"] and other.dim == 50
    with pytest.raises(UserInputError, match="GloVe"):
        LabelSpace.from_glove(["positive", "qqzzxxqq"])
    with pytest.raises(UserInputError, match="by hand"):
        _space().with_labels(["u", "v"])
    with pytest.raises(UserInputError, match="one row per label"):
        LabelSpace(["a", "b"], np.ones((3, 2)), "test")
    with pytest.raises(UserInputError, match="not unique"):
        LabelSpace(["a", "a"], np.ones((2, 2)), "test")
    with pytest.raises(UserInputError, match="unknown label vector source"):
        LabelSpace.from_source("word2vec", ["a", "b"])


def test_model_config_validation():
    with pytest.raises(ValueError, match="label_dim"):
        MLPConfig(input_dim=3, head="embedding")
    parsed = config_from_dict({"kind": "mlp", "input_dim": 3})
    assert isinstance(parsed, MLPConfig)
    with pytest.raises(UserInputError, match="bad model config"):
        config_from_dict({"kind": "transformer"})


@pytest.mark.slow  # loads sentence-transformers and MiniLM: about 30 s on a busy machine
def test_label_space_from_minilm():
    space = LabelSpace.from_minilm(["negative", "positive"])
    assert space.dim == 384 and space.source == "minilm"
    other = space.with_labels(["happy", "sad", "calm"])
    # phrases of like meaning are nearer in the sentence space
    sims = other.vectors @ space.vectors.T
    assert sims[0].argmax() == 1 and sims[1].argmax() == 0

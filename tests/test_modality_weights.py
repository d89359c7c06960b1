"""A fusion's own weights per modality and post: exact where the head is linear, the late
fusion's average weights and branch scores, the token-level fusion's image gate."""

from __future__ import annotations

import pytest
import torch

from sentimodal.models import get_model
from sentimodal.models.fusion import LateFusion
from sentimodal.models.modality_weights import linear_shares, modality_weights


def _features(n: int = 5) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    text, image = torch.randn(n, 7, generator=generator), torch.randn(n, 12, generator=generator)
    return {"text": text, "image": image}


def _terms(model, parts: list[torch.Tensor]) -> list[torch.Tensor]:
    weight = model.head.linear.weight
    blocks = torch.split(weight, [part.shape[1] for part in parts], dim=1)
    return [part @ block.T for part, block in zip(parts, blocks, strict=True)]


def test_linear_shares_split_a_linear_layer_exactly() -> None:
    layer = torch.nn.Linear(5, 3)
    a, b = torch.randn(4, 2), torch.randn(4, 3)
    shares = linear_shares(layer.weight, [a, b], centred=False)
    out = layer(torch.cat([a, b], dim=1)) - layer.bias
    term_a, term_b = a @ layer.weight[:, :2].T, b @ layer.weight[:, 2:].T
    torch.testing.assert_close(out, term_a + term_b)
    norms = torch.stack([term_a.norm(dim=1), term_b.norm(dim=1)])
    torch.testing.assert_close(torch.stack(shares), norms / norms.sum(dim=0))
    # a term that is the same for every class moves no probability: centred, it counts 0
    constant = torch.nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        constant.weight[:, 0] = 1.0
    nothing, rest = linear_shares(constant.weight, [torch.ones(4, 1), b[:, :2]], centred=True)
    torch.testing.assert_close(nothing, torch.zeros(4))
    torch.testing.assert_close(rest, torch.ones(4))


@pytest.mark.parametrize("gate", ["gl1", "gl2"])
def test_gated_weights_are_the_gated_features_terms_of_the_head(gate: str) -> None:
    model = get_model("gated", text_dim=7, image_dim=12, compress_image=4, gate=gate, seed=0)
    model.eval()
    batch = _features()
    with torch.no_grad():
        model.text_gate.uniform_(0, 2)  # a trained model's gates differ per modality
        found = model.modality_weights(batch)
        parts = model._gated(batch)
        logits = model(batch) - model.head.linear.bias
        terms = _terms(model, parts)
    torch.testing.assert_close(logits, terms[0] + terms[1])  # the head is their sum
    centred = [t - t.mean(dim=1, keepdim=True) for t in terms]
    sizes = torch.stack([c.norm(dim=1) for c in centred])
    torch.testing.assert_close(found.weights["text"], sizes[0] / sizes.sum(dim=0))
    torch.testing.assert_close(found.weights["text"] + found.weights["image"], torch.ones(5))
    stats = model.gate_stats()
    for modality in ("text", "image"):
        assert found.gates[modality] == pytest.approx([stats[modality]["mean"]] * 5, abs=1e-6)
    # a post without its image is read with the mean image (zeros, standardised), and so
    # weighed: without compression its image term is nothing
    marked = {**batch, "image_present": torch.tensor([True, False, True, True, True])}
    mean_image = {**batch, "image": batch["image"] * torch.tensor([1, 0, 1, 1, 1.0])[:, None]}
    with torch.no_grad():
        missing = model.modality_weights(marked)
        torch.testing.assert_close(
            missing.weights["image"], model.modality_weights(mean_image).weights["image"]
        )
        plain = get_model("gated", text_dim=7, image_dim=12, compress_image=None, gate=gate)
        alone = plain.eval().modality_weights(marked)
    assert float(alone.weights["image"][1]) == 0.0 and float(alone.weights["text"][1]) == 1.0


def test_concat_has_weights_only_when_its_head_is_linear() -> None:
    linear = get_model("concat", text_dim=7, image_dim=12, seed=0).eval()
    with torch.no_grad():
        found = linear.modality_weights(_features())
    assert found is not None
    torch.testing.assert_close(found.weights["text"] + found.weights["image"], torch.ones(5))
    deep = get_model("concat", text_dim=7, image_dim=12, hidden=[8], seed=0).eval()
    assert deep.modality_weights(_features()) is None
    assert modality_weights(deep, {k: v.numpy() for k, v in _features().items()}) is None


def test_late_fusion_weights_are_its_average_and_its_branches_scores() -> None:
    text = get_model("mlp", input="text", input_dim=7, hidden=[4], seed=0)
    image = get_model("mlp", input="image", input_dim=12, hidden=[4], seed=1)
    late = LateFusion.from_models(text, image).eval()
    batch = {**_features(), "image_present": torch.tensor([True, True, False, True, True])}
    with torch.no_grad():
        found = late.modality_weights(batch)
        # the weights are the average's: its scores are the weighted branch scores
        mixed = sum(found.weights[m][:, None] * found.branch_scores[m] for m in ("text", "image"))
        torch.testing.assert_close(mixed, late.scores(batch))
        torch.testing.assert_close(found.branch_scores["text"], text.scores(batch))
    assert found.weights["text"].tolist() == pytest.approx([0.5, 0.5, 1.0, 0.5, 0.5])
    assert found.gates == {}
    # batched through numpy, as predictions run it: the same numbers, every column in place
    arrays = modality_weights(late, {k: v.numpy() for k, v in batch.items()}, batch_size=2)
    assert arrays["weights"]["image"].tolist() == pytest.approx([0.5, 0.5, 0.0, 0.5, 0.5])
    assert arrays["branch_scores"]["image"].shape == (5, late.config.n_classes)
    torch.testing.assert_close(
        torch.as_tensor(arrays["branch_scores"]["image"]), found.branch_scores["image"]
    )


def test_stacked_late_fusion_weights_split_the_stackers_logits() -> None:
    branches = {
        "text": {"kind": "mlp", "input": "text", "input_dim": 7, "hidden": [4]},
        "image": {"kind": "mlp", "input": "image", "input_dim": 12, "hidden": [4]},
    }
    late = get_model("late", combine="stacked", seed=0, **branches).eval()
    with torch.no_grad():
        late.stack.weight[:, 3:] *= 4  # the stacker trusts the image branch more
        found = late.modality_weights(_features())
    assert (found.weights["image"] > found.weights["text"]).all()
    torch.testing.assert_close(found.weights["text"] + found.weights["image"], torch.ones(5))
    assert "stacker" in found.method


def test_the_token_level_fusion_reports_its_image_gate() -> None:
    architecture = {
        "vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 16, "max_position_embeddings": 16, "pad_token_id": 0,
    }  # fmt: skip
    cross = get_model(
        "text_cross", architecture=architecture, init="random", seed=0,
        image_dim=6, image_positions=4, attention_heads=2,
    ).eval()  # fmt: skip
    generator = torch.Generator().manual_seed(3)
    batch = {
        "text": torch.randint(1, 30, (3, 5), generator=generator),
        "image": torch.randn(3, 4, 6, generator=generator),
    }
    with torch.no_grad():
        shut = cross.modality_weights(batch)
        cross.gate.fill_(1.0)
        opened = cross.modality_weights(batch)
        marked = cross.modality_weights({**batch, "image_present": torch.tensor([1, 0, 1]) > 0})
    assert shut.gates["image gate"].tolist() == [0.0, 0.0, 0.0]  # the gate starts shut
    assert (opened.gates["image gate"] > 0).all()
    assert float(marked.gates["image gate"][1]) == 0.0
    assert cross.modality_weights({"text": batch["text"]}) is None
    # as a late fusion's text branch, its gate joins the fusion's weights
    image = get_model("mlp", input="image", input_dim=6, hidden=[4], seed=1)
    late = LateFusion.from_models(cross, image).eval()
    with torch.no_grad():
        fused = late.modality_weights(batch)
    torch.testing.assert_close(fused.gates["text branch: image gate"], opened.gates["image gate"])
    assert fused.weights["text"].tolist() == [0.5, 0.5, 0.5]
    assert "text branch: the image gate" in fused.method

"""Fine-tuning only MPNet's top layers from cached bottom-layer states, against fine-tuned MiniLM.

Issue 15's lever "a stronger text encoder": all-mpnet-base-v2 cannot be fine-tuned in full
within the default's 15 minutes on 2 cores, but its bottom ``L`` of 12 layers can run once per
post (states cached in float16) and only the top ``12 - L`` layers and a softmax head trained
from the cache. This script measures that text branch against MiniLM-L6 fine-tuned in full
(the default's text branch), both with tweet normalisation, mean pooling, dropout 0.1 and the
default's fine-tuning profile (AdamW, 4 epochs, linear warmup 10% and decay, backbone 5e-5,
head 1e-3, weight decay 0.01, batch 32, gradient clip 1.0).

Protocols (the test split is never read):

- ``split``: train on ``train``, evaluate ``val`` after every epoch, for each seed;
- ``cv``: 5-fold stratified cross-validation over train + val (seed 0 folds), 4 epochs, the
  last epoch evaluated on the held-out fold (no epoch selection).

    python scripts/mpnet_top_eval.py /tmp/tweet/mvsa --cache /tmp/textft/cache \\
        --models mpnet:11 mpnet:9@1e-4 minilm --protocol split --seeds 0 1 2 \\
        --out /tmp/textft/split.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from torch import nn

from sentimodal.features import resources
from sentimodal.features.text_normalize import normalize_texts
from sentimodal.models.text_transformer import load_matching_weights, shape_settings
from sentimodal.preparation.dataset import PreparedDataset

MAX_LEN = 128
EPOCHS = 4
BATCH = 32


def texts_and_labels(dataset: PreparedDataset) -> tuple[list[str], list[str], np.ndarray, list]:
    frame = dataset.examples.reset_index(drop=True)
    texts = normalize_texts(dataset.texts(frame), "tweet")
    labels = np.array([dataset.labels.index(v) for v in frame["label"]])
    return frame["id"].astype(str).tolist(), texts, labels, frame["split"].tolist()


def mpnet_cache(texts: list[str], layers: list[int], cache: Path) -> dict[int, Any]:
    """Per frozen depth L: (flat float16 states, offsets) of every post after L layers."""
    files = {layer: cache / f"mpnet-L{layer}.npz" for layer in layers}
    if not all(f.is_file() for f in files.values()):
        transformers: Any = resources.require("transformers")
        folder = resources.mpnet_path()
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
        ids = tokenizer(texts, truncation=True, max_length=MAX_LEN)["input_ids"]
        lengths = np.array([len(i) for i in ids])
        order = np.argsort(lengths)
        states: dict[int, list] = {layer: [None] * len(texts) for layer in layers}
        start = time.perf_counter()
        with torch.inference_mode():
            for b in range(0, len(order), 64):
                rows = order[b : b + 64]
                width = int(lengths[rows].max())
                batch = torch.full((len(rows), width), tokenizer.pad_token_id)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for n, r in enumerate(rows):
                    batch[n, : lengths[r]] = torch.tensor(ids[r])
                    mask[n, : lengths[r]] = 1
                out = model(input_ids=batch, attention_mask=mask, output_hidden_states=True)
                for layer in layers:
                    hidden = out.hidden_states[layer].to(torch.float16).numpy()
                    for n, r in enumerate(rows):
                        states[layer][r] = hidden[n, : lengths[r]]
        seconds = time.perf_counter() - start
        print(f"mpnet states for {len(texts)} posts, layers {layers}: {seconds:.1f} s", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        for layer in layers:
            np.savez(
                files[layer],
                flat=np.concatenate(states[layer]),
                offsets=offsets,
                seconds=seconds,
            )
    out = {}
    for layer, f in files.items():
        data = np.load(f)
        out[layer] = (torch.from_numpy(data["flat"]), data["offsets"])
    return out


class MPNetTop(nn.Module):
    """MPNet's layers L..11 (pretrained) over cached states, mean pooling, dropout, linear."""

    def __init__(self, frozen: int, n_classes: int) -> None:
        super().__init__()
        transformers: Any = resources.require("transformers")
        full = transformers.AutoModel.from_pretrained(
            str(resources.mpnet_path()), local_files_only=True
        )
        self.layers = nn.ModuleList(full.encoder.layer[frozen:])
        self.bias = full.encoder  # for compute_position_bias (relative_attention_bias)
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(768, n_classes))
        for p in full.embeddings.parameters():
            p.requires_grad_(False)
        for layer in full.encoder.layer[:frozen]:
            for p in layer.parameters():
                p.requires_grad_(False)
        self.bias.relative_attention_bias.weight.requires_grad_(False)

    def backbone(self) -> list[nn.Parameter]:
        return [p for p in self.layers.parameters() if p.requires_grad]

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        bias = self.bias.compute_position_bias(states)
        additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for layer in self.layers:
            states = layer(states, additive, bias)[0]
        weights = mask.unsqueeze(-1).float()
        return self.head((states * weights).sum(1) / weights.sum(1))


class MiniLMFull(nn.Module):
    """The default's text branch: bundled MiniLM-L6 fine-tuned in full, mean pooling."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        transformers: Any = resources.require("transformers")
        config = transformers.BertConfig(
            **shape_settings(resources.transformer_config(resources.minilm_path()))
        )
        config._attn_implementation = "sdpa"
        self.encoder = transformers.BertModel(config, add_pooling_layer=False)
        load_matching_weights(self.encoder, resources.minilm_path(), "all-MiniLM-L6-v2")
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(384, n_classes))

    def backbone(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).float()
        return self.head((states * weights).sum(1) / weights.sum(1))


def make_batch(kind: str, data: Any, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if kind == "minilm":
        ids, lengths = data
        width = int(lengths[rows].max())
        x = torch.from_numpy(ids[rows, :width])
        return x, (x != 0).long()
    flat, offsets = data
    lengths = offsets[rows + 1] - offsets[rows]
    width = int(lengths.max())
    x = torch.zeros((len(rows), width, 768), dtype=torch.float32)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for n, r in enumerate(rows):
        x[n, : lengths[n]] = flat[offsets[r] : offsets[r + 1]].float()
        mask[n, : lengths[n]] = 1
    return x, mask


def predict(model: nn.Module, kind: str, data: Any, rows: np.ndarray) -> np.ndarray:
    """Class probabilities of ``rows``."""
    model.eval()
    out = []
    with torch.inference_mode():
        for b in range(0, len(rows), 64):
            x, mask = make_batch(kind, data, rows[b : b + 64])
            out.append(model(x, mask).softmax(1).numpy())
    return np.concatenate(out)


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    return {
        "accuracy": float(accuracy_score(y, p)),
        "weighted_f1": float(f1_score(y, p, average="weighted")),
        "macro_f1": float(f1_score(y, p, average="macro")),
        "per_class_f1": f1_score(y, p, average=None, labels=[0, 1, 2]).tolist(),
    }


def fit_eval(
    spec: str, data: Any, labels: np.ndarray, train: np.ndarray, held: np.ndarray, seed: int
) -> dict[str, Any]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    name, _, rate = spec.partition("@")
    kind = name.split(":")[0]
    model = MiniLMFull(3) if kind == "minilm" else MPNetTop(int(name.split(":")[1]), 3)
    backbone = model.backbone()
    in_backbone = {id(p) for p in backbone}
    head = [p for p in model.parameters() if p.requires_grad and id(p) not in in_backbone]
    optimizer = torch.optim.AdamW(
        [{"params": head, "lr": 1e-3}, {"params": backbone, "lr": float(rate or 5e-5)}],
        weight_decay=0.01,
    )
    steps = EPOCHS * math.ceil(len(train) / BATCH)
    warmup = int(0.1 * steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / (steps - warmup)),
    )
    epochs = []
    for epoch in range(EPOCHS):
        model.train()
        start = time.perf_counter()
        perm = rng.permutation(train)
        for b in range(0, len(perm), BATCH):
            rows = perm[b : b + BATCH]
            x, mask = make_batch(kind, data, rows)
            loss = nn.functional.cross_entropy(model(x, mask), torch.from_numpy(labels[rows]))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
        seconds = time.perf_counter() - start
        probabilities = predict(model, kind, data, held)
        result = scores(labels[held], probabilities.argmax(1))
        result.update(epoch=epoch + 1, train_seconds=seconds)
        print(spec, seed, json.dumps(result), flush=True)
        epochs.append(result)
    # the last epoch's probabilities, for ensembles of runs over the same held-out posts
    return {
        "spec": spec,
        "seed": seed,
        "epochs": epochs,
        "held": held.tolist(),
        "probabilities": probabilities.round(5).tolist(),
    }


def latency(texts: list[str], dataset: PreparedDataset, splits: np.ndarray) -> dict[str, Any]:
    """Median seconds of one post (tokenise + forward, batch of 1) through the full MiniLM and
    the full MPNet, over the first 200 val posts, after a warm-up."""
    transformers: Any = resources.require("transformers")
    folder = resources.mpnet_path()
    models = {
        "minilm": (resources.minilm_tokenizer(), MiniLMFull(3).encoder.eval()),
        "mpnet": (
            transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True),
            transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval(),
        ),
    }
    sample = [texts[i] for i in np.flatnonzero(splits == "val")[:200]]
    out: dict[str, Any] = {}
    for name, (tokenizer, model) in models.items():
        times = []
        with torch.inference_mode():
            for n, text in enumerate([*sample[:20], *sample]):
                start = time.perf_counter()
                enc = tokenizer([text], truncation=True, max_length=MAX_LEN, return_tensors="pt")
                model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
                if n >= 20:
                    times.append(time.perf_counter() - start)
        out[name] = {
            "p50_ms": 1000 * float(np.median(times)),
            "p90_ms": 1000 * float(np.quantile(times, 0.9)),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--models", nargs="+", default=["mpnet:11", "minilm"])
    parser.add_argument("--protocol", choices=["split", "cv"], default="split")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--cache-only", action="store_true")
    parser.add_argument("--latency", action="store_true", help="per-post forward cost only")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)

    dataset = PreparedDataset.load(args.dataset)
    _ids, texts, labels, splits = texts_and_labels(dataset)
    splits = np.array(splits)
    layers = sorted(
        {int(s.partition("@")[0].split(":")[1]) for s in args.models if s.startswith("mpnet")}
    )
    states = mpnet_cache(texts, layers, args.cache) if layers else {}
    if args.cache_only:
        return
    tokenizer = resources.minilm_tokenizer()
    enc = tokenizer(texts, truncation=True, max_length=MAX_LEN, padding="max_length")
    minilm = (
        np.asarray(enc["input_ids"], dtype=np.int64),
        np.asarray(enc["attention_mask"]).sum(1),
    )
    if args.latency:
        print(json.dumps(latency(texts, dataset, splits)), flush=True)
        return

    if args.protocol == "split":
        runs = [
            (seed, np.flatnonzero(splits == "train"), np.flatnonzero(splits == "val"))
            for seed in args.seeds
        ]
    else:
        pool = np.flatnonzero(np.isin(splits, ["train", "val"]))
        folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(pool, labels[pool]))
        runs = [(fold, pool[folds[fold][0]], pool[folds[fold][1]]) for fold in args.folds]
    results = json.loads(args.out.read_text()) if args.out.is_file() else []
    done = {(r["spec"], r["seed"]) for r in results}
    for spec in args.models:
        name = spec.partition("@")[0]
        data = minilm if name == "minilm" else states[int(name.split(":")[1])]
        for seed, train, held in runs:
            if (spec, seed) in done:
                continue
            results.append(fit_eval(spec, data, labels, train, held, seed))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Issue 15's two untried image levers against the image default, by the same k-fold
cross-validation as ``scripts/image_only_cv.py`` (same folds, same validation tenth), on what
``scripts/image_tail_cache.py`` stored from one frozen EfficientNet-Lite0 pass:

- ``majority``; ``logreg:SET`` (the project's baseline, C by the validation tenth) and
  ``linear:SET`` (the image default's solver and grid: L2 logistic regression, C by 5-fold CV on
  the training part, one-standard-error rule) on a feature set SET, "+"-joined from
  ``mean_h`` (the 1280-d default vector), ``std_h``, ``mean_s`` and ``std_s`` (each stage's
  output pooled by mean / standard deviation: the multi-level features);
- ``tail1`` / ``tail5``: the last block (from the cached 192 x 7 x 7 map) or the last five
  blocks (from the 112 x 14 x 14 map) + the head conv + a softmax layer, fine-tuned: the
  softmax layer starts from ``linear:mean_h`` fitted on the training part (linear probe, then
  fine-tune), AdamW with weight decay, dropout, horizontal flip of the cached map, batch norm
  statistics frozen; the epoch (0 = the linear probe itself) with the best validation accuracy
  is kept.

    python scripts/image_tail_cv.py runs/e6-folder runs/tail/e6.npz \\
        --models majority,logreg:mean_h,linear:mean_h,tail1 --out runs/tail/e6.csv
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from image_only_cv import concat_linear  # noqa: E402

from sentimodal.analysis.crossval import (  # noqa: E402
    FIGURES,
    fold_dataset,
    fold_of,
    logistic_regression,
    mean_std_table,
    summarise,
)
from sentimodal.analysis.report import markdown_table  # noqa: E402
from sentimodal.evaluation.metrics import classification_report  # noqa: E402
from sentimodal.features.image_encoders import get_image_encoder  # noqa: E402
from sentimodal.models.config import LinearConfig  # noqa: E402
from sentimodal.preparation.dataset import PreparedDataset  # noqa: E402
from sentimodal.training.linear_fit import fit_linear  # noqa: E402


class Tail(nn.Module):
    """Lite0's blocks ``first``.. + head conv + pool + dropout + softmax layer."""

    def __init__(self, net: nn.Module, first: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(copy.deepcopy(net._blocks[first:]))
        self.conv_head = copy.deepcopy(net._conv_head)
        self.bn = copy.deepcopy(net._bn1)
        self.act = nn.ReLU6()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.act(self.bn(self.conv_head(x))).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))

    def train(self, mode: bool = True):  # batch norm statistics stay the pretrained ones
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self


def rows_of(data: PreparedDataset, position: dict[str, int], split: str):
    frame = data.split(split)
    keep = [i for i in frame["id"].astype(str) if i in position]
    labels = frame.set_index(frame["id"].astype(str))["label"].astype(str)
    return np.array([position[i] for i in keep]), np.array(
        [data.labels.index(v) for v in labels.loc[keep]]
    )


def predict(model: Tail, maps: np.ndarray, rows: np.ndarray, batch: int = 128) -> torch.Tensor:
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(rows), batch):
            out.append(model(torch.from_numpy(maps[rows[s : s + batch]]).float()))
    return torch.cat(out)


def fine_tune(
    data: PreparedDataset,
    ids: list[str],
    maps: np.ndarray,
    pooled: np.ndarray,
    first: int,
    args: argparse.Namespace,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, dict]:
    position = {i: n for n, i in enumerate(ids)}
    (tr, y_tr), (va, y_va), (te, y_te) = (
        rows_of(data, position, s) for s in ("train", "val", "test")
    )
    n_classes = len(data.labels)
    # linear probe on the frozen pooled vector, standardisation folded into the layer
    x_tr = pooled[tr]
    mean, std = x_tr.mean(0), x_tr.std(0)
    std[std < 1e-6] = 1.0
    grid = LinearConfig(input_dim=pooled.shape[1])
    probe = fit_linear(
        (x_tr - mean) / std,
        y_tr,
        n_classes,
        grid.c_values,
        folds=grid.cv_folds,
        seed=seed,
        select=grid.select,
        one_se=grid.one_standard_error,
    )
    torch.manual_seed(seed)
    net = get_image_encoder("efficientnet_lite0").module().net
    model = Tail(net, first, n_classes, args.dropout)
    weight = probe.weight.double() / torch.from_numpy(std)
    with torch.no_grad():
        model.fc.weight.copy_(weight.float())
        model.fc.bias.copy_((probe.bias.double() - weight @ torch.from_numpy(mean)).float())
    tail_params = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
    optimiser = torch.optim.AdamW(
        [
            {"params": tail_params, "lr": args.lr},
            {"params": model.fc.parameters(), "lr": args.head_lr},
        ],
        weight_decay=args.weight_decay,
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.smoothing)
    y_va_t = torch.from_numpy(y_va)

    def score() -> tuple[float, float]:
        logits = predict(model, maps, va)
        return float((logits.argmax(1) == y_va_t).float().mean()), float(
            nn.functional.cross_entropy(logits, y_va_t)
        )

    best = (*score(), 0)
    best_state = copy.deepcopy(model.state_dict())
    history = [best[:2]]
    rng = np.random.default_rng(seed)
    since = 0
    epoch_seconds = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = rng.permutation(len(tr))
        for s in range(0, len(order), args.batch):
            chosen = order[s : s + args.batch]
            x = torch.from_numpy(maps[tr[chosen]]).float()
            flip = torch.from_numpy(rng.random(len(chosen)) < 0.5)
            x[flip] = x[flip].flip(-1)
            loss = loss_fn(model(x), torch.from_numpy(y_tr[chosen]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        epoch_seconds.append(time.perf_counter() - start)
        acc, val_loss = score()
        history.append((acc, val_loss))
        print(
            f"  epoch {epoch}: val acc {acc:.3f} loss {val_loss:.3f} ({epoch_seconds[-1]:.1f}s)",
            flush=True,
        )
        if (acc, -val_loss) > (best[0], -best[1]):
            best = (acc, val_loss, epoch)
            best_state = copy.deepcopy(model.state_dict())
            since = 0
        else:
            since += 1
            if since >= args.patience:
                break
    model.load_state_dict(best_state)
    pred = predict(model, maps, te).argmax(1).numpy()
    labels = np.asarray(data.labels, dtype=object)
    extra = {
        "epoch": best[2],
        "c": probe.c,
        "s/epoch": float(np.mean(epoch_seconds)),
    }
    return labels[y_te], labels[pred], extra


def linear_variant(
    data: PreparedDataset, ids: list[str], x: np.ndarray, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray, float]:
    """The default's solver with another C grid or choice rule (``--c-values``, ``--select``,
    ``--no-one-se``), on the training part only."""
    position = {i: n for n, i in enumerate(ids)}
    (tr, y_tr), (te, y_te) = (rows_of(data, position, s) for s in ("train", "test"))
    mean, std = x[tr].mean(0), x[tr].std(0)
    std[std < 1e-6] = 1.0
    grid = LinearConfig(input_dim=x.shape[1])
    c_values = [float(c) for c in args.c_values.split(",")] if args.c_values else grid.c_values
    fitted = fit_linear(
        (x[tr] - mean) / std, y_tr, len(data.labels), c_values, folds=grid.cv_folds,
        seed=args.seed, select=args.select or grid.select, one_se=not args.no_one_se,
    )  # fmt: skip
    logits = torch.as_tensor((x[te] - mean) / std) @ fitted.weight.double().T + fitted.bias
    labels = np.asarray(data.labels, dtype=object)
    return labels[y_te], labels[logits.argmax(1).numpy()], fitted.c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("cache", type=Path)
    parser.add_argument("--models", required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-folds", default="", help="comma-separated fold numbers to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--head-lr", type=float, default=1e-4)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--smoothing", type=float, default=0.1)
    parser.add_argument(
        "--splits", default="", help="only posts of these splits (e.g. train,val: no test post)"
    )
    parser.add_argument("--c-values", default="", help="linear: another C grid, comma-separated")
    parser.add_argument("--select", default="", help="linear: accuracy or log_loss")
    parser.add_argument("--no-one-se", action="store_true", help="linear: the best C itself")
    parser.add_argument("--tag", default="", help="suffix of the tail models' names")
    parser.add_argument("--out", type=Path, required=True, help="CSV, appended to")
    args = parser.parse_args()
    torch.set_num_threads(2)
    dataset = PreparedDataset.load(args.dataset)
    if args.splits:
        keep = dataset.examples["split"].isin(args.splits.split(","))
        dataset = PreparedDataset(
            dataset.examples[keep].reset_index(drop=True), dataset.info, dataset.root
        )
    cache = np.load(args.cache)
    ids = [str(i) for i in cache["ids"]]
    all_ids = dataset.examples["id"].astype(str).tolist()
    fold = fold_of(all_ids, dataset.examples["label"].astype(str).tolist(), args.folds, args.seed)
    folds = [int(f) for f in args.only_folds.split(",") if f] or list(range(args.folds))
    rows = []
    for k in folds:
        data = fold_dataset(dataset, fold, k, 0.1, args.seed)
        for model in args.models.split(","):
            start = time.perf_counter()
            extra: dict = {}
            kind, _, fset = model.partition(":")
            if kind == "majority":
                train = data.split("train")["label"].astype(str)
                counts = sorted(train.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
                y_true = data.split("test")["label"].astype(str).to_numpy()
                y_pred = np.full(len(y_true), counts[0][0], dtype=object)
            elif kind in ("logreg", "linear"):
                x = np.hstack([cache[p].astype(np.float64) for p in fset.split("+")])
                if kind == "logreg":
                    y_true, y_pred, extra["c"] = logistic_regression(
                        data, ids, x, [0.001, 0.01, 0.1, 1.0]
                    )
                elif args.c_values or args.select or args.no_one_se:
                    y_true, y_pred, extra["c"] = linear_variant(data, ids, x, args)
                    model += args.tag
                else:
                    y_true, y_pred, extra["c"] = concat_linear(data, ids, x, args.seed)
            elif kind in ("tail1", "tail5"):
                first, key = (15, "pre15") if kind == "tail1" else (11, "pre11")
                y_true, y_pred, extra = fine_tune(
                    data,
                    ids,
                    cache[key],
                    cache["mean_h"].astype(np.float64),
                    first,
                    args,
                    args.seed,
                )
                model += args.tag
            else:
                parser.error(f"unknown model {model}")
            report = classification_report(y_true, y_pred, dataset.labels)
            rows.append(
                {
                    "model": model,
                    "fold": k,
                    **{figure: report[figure] for figure in FIGURES},
                    **{f"f1:{c}": v for c, v in report["per_class_f1"].items()},
                    "seconds": time.perf_counter() - start,
                    **extra,
                }
            )
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists():
        frame = pd.concat([pd.read_csv(args.out), frame], ignore_index=True)
    frame.to_csv(args.out, index=False)
    table = mean_std_table(summarise(frame[["model", "fold", *FIGURES]]))
    seconds = frame.groupby("model", sort=False)["seconds"].mean()
    table["s/fold"] = [f"{seconds[m]:.1f}" for m in table["model"]]
    print(markdown_table(table))


if __name__ == "__main__":
    main()

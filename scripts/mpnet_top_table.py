"""Tables of ``scripts/mpnet_top_eval.py`` results: each text branch over its seeds (the last
epoch, no selection; and the best epoch on val, as ``train`` keeps it), and ensembles of runs
that share held-out posts (mean of their last-epoch probabilities).

    python scripts/mpnet_top_table.py /tmp/textft/split.json /tmp/textft/split2.json \\
        --labels negative neutral positive --ensemble minilm:0+minilm:1 minilm:1+mpnet:11:1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from sentimodal.preparation.dataset import PreparedDataset


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--dataset", type=Path, default=Path("/tmp/tweet/mvsa"))
    parser.add_argument("--ensemble", nargs="*", default=[], help="spec:seed+spec:seed ...")
    args = parser.parse_args()
    runs = [run for path in args.results for run in json.loads(path.read_text())]
    dataset = PreparedDataset.load(args.dataset)
    frame = dataset.examples.reset_index(drop=True)
    labels = np.array([dataset.labels.index(v) for v in frame["label"]])

    print(
        "| text branch | seeds | s / epoch | accuracy | weighted-F1 | macro-F1 | F1 negative "
        "| F1 neutral | F1 positive | best-epoch accuracy |"
    )
    print("| --- | ---: |" + " ---: |" * 8)
    for spec in dict.fromkeys(run["spec"] for run in runs):
        mine = [run for run in runs if run["spec"] == spec]
        last = [run["epochs"][-1] for run in mine]
        seconds = np.mean([e["train_seconds"] for run in mine for e in run["epochs"]])
        cells = [cell([e[k] for e in last]) for k in ("accuracy", "weighted_f1", "macro_f1")]
        cells += [cell([e["per_class_f1"][c] for e in last]) for c in range(3)]
        best = cell([max(e["accuracy"] for e in run["epochs"]) for run in mine])
        print(f"| {spec} | {len(mine)} | {seconds:.0f} | {' | '.join(cells)} | {best} |")

    for ensemble in args.ensemble:
        members = []
        for member in ensemble.split("+"):
            spec, _, seed = member.rpartition(":")
            members.append(next(r for r in runs if r["spec"] == spec and r["seed"] == int(seed)))
        held = np.array(members[0]["held"])
        assert all(m["held"] == members[0]["held"] for m in members)
        pred = np.mean([np.array(m["probabilities"]) for m in members], axis=0).argmax(1)
        y = labels[held]
        per_class = f1_score(y, pred, average=None, labels=[0, 1, 2])
        cells = [
            accuracy_score(y, pred),
            f1_score(y, pred, average="weighted"),
            f1_score(y, pred, average="macro"),
            *per_class,
        ]
        print(f"| mean of {ensemble} | 1 | | {' | '.join(f'{v:.3f}' for v in cells)} | |")


if __name__ == "__main__":
    main()

"""Test numbers of a trained late fusion's branches combined by the mean (the default) and by
its stacked weights, and of its text branch alone; run once, after every choice was made.

    python scripts/late_fusion_test_once.py /tmp/tweet/default /tmp/tweet/mvsa
"""

import sys

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from sentimodal.training.batches import as_tensors
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.inference import run_batched

model = SentimentModel.load(sys.argv[1])
data = model._dataset(sys.argv[2])
inputs = model._inputs(data, "test", progress=False)
net = model.model_
logp = run_batched(net, as_tensors(inputs.data), net.branch_log_probs).numpy()
y = data.examples.set_index("id").loc[inputs.ids, "label"].astype(str).to_numpy()
n = len(model.classes_)
names = np.array(model.classes_)
stacked = model.predict_frame(data, "test").set_index("id").loc[inputs.ids, "label"].to_numpy()
for name, pred in (
    ("mean", names[(np.exp(logp[:, :n]) + np.exp(logp[:, n:])).argmax(1)]),
    ("stacked", stacked),
    ("text branch", names[logp[:, :n].argmax(1)]),
):
    f1 = f1_score(y, pred, labels=list(names), average=None)
    print(
        name,
        len(y),
        f"acc {accuracy_score(y, pred):.3f} wF1 {f1_score(y, pred, average='weighted'):.3f} "
        f"mF1 {f1_score(y, pred, average='macro'):.3f}",
        dict(zip(names.tolist(), f1.round(3).tolist(), strict=True)),
    )

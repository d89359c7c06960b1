"""Training speed of the study's text model: Keras (as in the study) against ours.

One epoch over MVSA-Single tweets repeated to ``--sequences`` sequences, three ways, in
alternating rounds so that machine load hits every leg alike:

1. ``keras``: Keras 3 with the torch backend, the study's setup: Embedding 200 -> Bidirectional
   LSTM 300 -> Dense softmax, sequences padded to 101, batch 64, RMSprop. Skipped with a
   message when keras is not importable (``pip install 'sentimodal[bench]'``).
2. ``padded``: our model doing the same work: every batch padded to 101, LSTM over the padding.
3. ``bucketed``: our model as trained by default: length-bucketed batches trimmed to their
   longest tweet, each direction reading its state at the last real token ("masked").

``--with-packed`` adds a leg with ``pack_padded_sequence`` instead of "masked" (same outputs).

Prints samples/s per leg (best of the rounds) and the ratios. Example:
``python benchmarks/bench_text_model.py --sequences 4000 --rounds 1 --threads 1``
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from sentimodal.features.text_encoders import get_text_encoder
from sentimodal.models import get_model
from sentimodal.training import TrainConfig, fit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mvsa_single"
LABELS = ("negative", "neutral", "positive")
MAX_LEN, EMBEDDING, HIDDEN, BATCH = 101, 200, 300, 64


def load_tweets(root: Path) -> tuple[list[str], np.ndarray]:
    """Every tweet with its text annotator's label (the benchmark needs any sensible label)."""
    texts, labels = [], []
    for row in (root / "labelResultAll.txt").read_text().splitlines()[1:]:
        post, pair = row.split("\t")
        texts.append((root / "data" / f"{post}.txt").read_bytes().decode("utf-8", "replace"))
        labels.append(LABELS.index(pair.split(",")[0]))
    return texts, np.array(labels)


def make_data(root: Path, sequences: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    texts, labels = load_tweets(root)
    encoder = get_text_encoder("tokens", max_len=MAX_LEN).fit(texts)
    ids, lengths = encoder.encode_with_lengths(texts)
    rows = np.resize(np.arange(len(texts)), sequences)  # the tweets repeated
    return ids[rows], lengths[rows], labels[rows], encoder.vocab_size


def keras_epoch(ids: np.ndarray, labels: np.ndarray, vocab_size: int) -> float:
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((MAX_LEN,), dtype="int32"),
            layers.Embedding(vocab_size, EMBEDDING),
            layers.Bidirectional(layers.LSTM(HIDDEN)),
            layers.Dense(len(LABELS), activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3), loss="sparse_categorical_crossentropy")
    start = time.perf_counter()
    model.fit(ids.astype(np.int32), labels, batch_size=BATCH, epochs=1, verbose=0)
    return time.perf_counter() - start


def our_epoch(
    ids: np.ndarray, lengths: np.ndarray, labels: np.ndarray, vocab_size: int, mode: str
) -> float:
    """One epoch of our model; ``mode`` "padded" does Keras' work, the others skip padding."""
    model = get_model(
        "text_lstm",
        vocab_size=vocab_size,
        embedding_dim=EMBEDDING,
        lstm_dim=HIDDEN,
        sequence_mode=mode,
        seed=0,
    )
    config = TrainConfig(
        optimizer="rmsprop",
        lr=1e-3,
        batch_size=BATCH,
        epochs=1,
        patience=None,
        length_batching="none" if mode == "padded" else "bucket",
    )
    start = time.perf_counter()
    fit(model, {"text": ids, "text_lengths": lengths}, labels, config=config, progress=False)
    return time.perf_counter() - start


def keras_available() -> bool:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as error:
        print(f"keras leg skipped: keras is not importable ({error}); pip install keras")
        return False
    if keras.backend.backend() != "torch":
        print(f"keras leg skipped: backend is {keras.backend.backend()!r}, not 'torch'")
        return False
    print(f"keras {keras.__version__} (torch backend)")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MVSA-Single folder")
    parser.add_argument("--sequences", type=int, default=20000, help="sequences per epoch")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per leg")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--no-keras", action="store_true", help="skip the keras leg")
    parser.add_argument("--with-packed", action="store_true", help="add a packed-sequence leg")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    ids, lengths, labels, vocab_size = make_data(args.data, args.sequences)
    print(
        f"{len(ids)} sequences, vocabulary {vocab_size}, mean length {lengths.mean():.1f} "
        f"tokens (padded to {MAX_LEN}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s)"
    )
    legs = {
        "padded": lambda: our_epoch(ids, lengths, labels, vocab_size, "padded"),
        "bucketed": lambda: our_epoch(ids, lengths, labels, vocab_size, "masked"),
    }
    if args.with_packed:
        legs["packed"] = lambda: our_epoch(ids, lengths, labels, vocab_size, "packed")
    if not args.no_keras and keras_available():
        legs = {"keras": lambda: keras_epoch(ids, labels, vocab_size), **legs}
    times: dict[str, list[float]] = {name: [] for name in legs}
    for round_ in range(1, args.rounds + 1):
        for name, leg in legs.items():
            seconds = leg()
            times[name].append(seconds)
            rate = len(ids) / seconds
            print(f"round {round_} {name:>8}: {seconds:8.1f} s  {rate:8.1f} samples/s")

    speed = {name: len(ids) / min(values) for name, values in times.items()}
    print("\nbest of rounds:")
    for name, value in speed.items():
        print(f"  {name:>8}: {value:8.1f} samples/s")
    if "keras" in speed:
        print(f"  padded / keras   = {speed['padded'] / speed['keras']:.2f}x")
        print(f"  bucketed / keras = {speed['bucketed'] / speed['keras']:.2f}x")
    print(f"  bucketed / padded = {speed['bucketed'] / speed['padded']:.2f}x")
    if "packed" in speed:
        print(f"  bucketed / packed = {speed['bucketed'] / speed['packed']:.2f}x")


if __name__ == "__main__":
    main()

"""The study's end-to-end text model: token embedding, bidirectional LSTM, head.

Padding never enters the LSTM states (``sequence_mode`` "masked" or "packed"): the output for
a tweet is the same however much it is padded, and with the trainer's length-bucketed batches
(trimmed to their longest sequence) a batch costs about its real tokens only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from sentimodal.errors import UserInputError
from sentimodal.features.resources import glove_table
from sentimodal.models.base import PAD_ID, Batch, PretrainedStart, SentimentNet
from sentimodal.models.config import TextLSTMConfig
from sentimodal.models.heads import make_head
from sentimodal.models.registry import register_network


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each sequence of ``x`` (N, T, D) reversed over its first ``length`` steps; padding stays
    at the end, so the backward direction can run like the forward one."""
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    last = lengths.to(x.device)[:, None] - 1
    index = torch.where(steps <= last, last - steps, steps)
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))


@register_network(TextLSTMConfig, branch_of=("text",))
class TextBiLSTM(SentimentNet):
    """Embedding -> (Bi)LSTM -> dropout -> head over int64 token ids (pad id 0, post-padded).

    ``embed`` is the final states of both directions side by side (600-d by default): the text
    features the study exports for fusion. The directions are two LSTMs so that each can run
    on its own padded-at-the-end input with the fused (unpacked) kernels.
    """

    inputs = ("text",)

    def __init__(self, config: TextLSTMConfig) -> None:
        super().__init__(config)
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(config.embedding_dim, config.lstm_dim, batch_first=True)
        self.lstm_reverse = (
            nn.LSTM(config.embedding_dim, config.lstm_dim, batch_first=True)
            if config.bidirectional
            else None
        )
        self.dropout = nn.Dropout(config.dropout)
        self.out_dim = config.lstm_dim * (2 if config.bidirectional else 1)
        self.head = make_head(config, self.out_dim)

    def embed(self, batch: Batch) -> torch.Tensor:
        ids = self.token_ids(batch, "tokens")
        lengths = batch.get("text_lengths")
        if lengths is None:
            lengths = (ids != PAD_ID).sum(dim=1)
        # An empty text still gets one (pad) step, so every sequence has a final state.
        lengths = lengths.clamp(min=1, max=ids.shape[1])
        x = self.embedding(ids)
        states = [self._final_state(self.lstm, x, lengths)]
        if self.lstm_reverse is not None:
            if self.config.sequence_mode == "padded":
                backward = x.flip(1)  # as Keras' go_backwards: the padding comes first
            else:
                backward = reverse_within_length(x, lengths)
            states.append(self._final_state(self.lstm_reverse, backward, lengths))
        return self.dropout(torch.cat(states, dim=1))

    def _final_state(self, lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mode = self.config.sequence_mode
        if mode == "packed":
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            return lstm(packed)[1][0][-1]
        outputs, (h_n, _) = lstm(x)
        if mode == "padded":
            return h_n[-1]
        return outputs[torch.arange(len(x), device=x.device), lengths.to(x.device) - 1]

    def start_pretrained(self, start: PretrainedStart) -> None:
        if self.config.embedding_init != "glove":
            return
        if start.vocabulary is None:
            raise UserInputError("embedding_init='glove' needs the text encoder's vocabulary")
        self.init_embeddings(glove_embedding_matrix(start.vocabulary, start.seed))

    def init_embeddings(self, vectors: np.ndarray | torch.Tensor) -> None:
        """Start the (trainable) embedding table from pretrained vectors, one row per token id."""
        table = torch.as_tensor(np.asarray(vectors), dtype=self.embedding.weight.dtype)
        if table.shape != self.embedding.weight.shape:
            raise UserInputError(
                f"pretrained embeddings of shape {tuple(table.shape)} do not fit the table "
                f"{tuple(self.embedding.weight.shape)} (vocabulary size x embedding_dim)"
            )
        with torch.no_grad():
            self.embedding.weight.copy_(table)
            self.embedding.weight[PAD_ID].zero_()


def glove_embedding_matrix(vocab: Sequence[str], seed: int = 0) -> np.ndarray:
    """An embedding table for ``vocab`` (index = token id) from GloVe 6B 50-d.

    Words GloVe lacks (and special tokens) get random vectors with GloVe's own spread, so they
    start neither at zero nor far outside the pretrained cloud; the pad row is zero.
    """
    table = glove_table()
    rows = np.array([table.vocab.get(word.lower(), -1) for word in vocab], dtype=np.int64)
    found = rows >= 0
    vectors = np.zeros((len(rows), table.dim), dtype=np.float32)
    vectors[found] = table.vectors[rows[found]]
    scale = float(vectors[found].std()) if found.any() else 0.1
    rng = np.random.default_rng(seed)
    vectors[~found] = rng.normal(0.0, scale, size=(int((~found).sum()), table.dim))
    vectors[PAD_ID] = 0.0
    return vectors

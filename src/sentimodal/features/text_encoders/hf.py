"""``hf:<model id or folder>``: any Hugging Face text transformer (``AutoModel`` +
``AutoTokenizer``), frozen or fine-tuned.

``output="vectors"`` gives frozen sentence vectors (the mean of the last token states over the
real tokens, or the first token's, ``pooling``; unit length with ``unit=True``), for the
feature store and the frozen-feature models. ``output="ids"`` gives the tokenizer's own ids,
the input of the transformer fine-tuned end to end with the model (``text``, ``late`` and
``cross`` ask for them). The store and the trainer take 0 as padding, so a tokenizer that pads
with another id has its ids stored plus one (:attr:`id_shift`), and the network shifts them
back. The shipped ``minilm_tokens`` and ``mpnet_tokens`` are two named entries of this encoder
over the offline packages' folders, with the identities their models were saved with.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np

from sentimodal.errors import UserInputError
from sentimodal.features import resources
from sentimodal.features.hub import resolve_source
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.features.text_encoders.registry import register_text_encoder
from sentimodal.features.text_normalize import (
    DEFAULT_TEXT_NORMALIZATION,
    check_normalization,
    normalize_texts,
)

Output = Literal["vectors", "ids"]
#: no text is read past a transformer's position embeddings (512 for the BERT family), and a
#: saved config claiming 10^7 would cost 80 MB of ids per text
MAX_TOKENS = 512


@functools.cache
def tokenizer_of(folder: Path) -> Any:
    """The (fast) tokenizer saved in ``folder``, loaded offline once per process."""
    transformers: Any = resources.require("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if tokenizer.pad_token_id is None:
        raise UserInputError(f"the tokenizer in {folder} has no padding token")
    return tokenizer


@functools.cache
def transformer_of(folder: Path, device: str) -> Any:
    """The transformer saved in ``folder`` (eval mode, on ``device``), loaded once."""
    transformers: Any = resources.require("transformers")
    with resources.quiet_loading():
        model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    return model.eval().to(device)


def check_max_len(max_len: Any, name: str) -> int:
    """A token length within a transformer's positions (3: room for the special tokens)."""
    if type(max_len) is not int or not 3 <= max_len <= MAX_TOKENS:
        raise UserInputError(
            f"{name}: max_len must be a whole number from 3 to {MAX_TOKENS}, got {max_len!r}"
        )
    return max_len


def id_shift(tokenizer: Any) -> int:
    """What is added to the tokenizer's ids so that 0 is free to mean padding."""
    return 0 if tokenizer.pad_token_id == 0 else 1


def token_ids(tokenizer: Any, texts: Sequence[str], max_len: int) -> np.ndarray:
    """(N, max_len) int64 ids (plus :func:`id_shift`), cut at ``max_len`` and post-padded with
    0: the one encoding of a transformer's input, whoever loaded the tokenizer (the encoder, or
    an ONNX export's copy of its files)."""
    encoded = tokenizer(
        [text or "" for text in texts],
        truncation=True,
        max_length=max_len,
        padding="max_length",
    )
    ids = np.asarray(encoded["input_ids"], dtype=np.int64).reshape(len(texts), max_len)
    mask = np.asarray(encoded["attention_mask"], dtype=bool).reshape(ids.shape)
    return np.where(mask, ids + id_shift(tokenizer), 0)


def reads_tokenizer(name: str, config: dict[str, Any]) -> bool:
    """Whether the saved text encoder ``name`` / ``config`` gives a transformer's own ids,
    which an ONNX export computes from the tokenizer files copied beside its graph."""
    from sentimodal.features.text_encoders.registry import text_encoder_class

    cls = text_encoder_class(name)
    return issubclass(cls, HFEncoder) and cls.gives_ids(config)


@register_text_encoder
class HFEncoder(TextEncoder):
    """A Hugging Face transformer's frozen vectors or own ids (see the module docstring).

    ``model`` is a local folder (no network) or a hub id at ``revision``; ``device`` runs the
    frozen vectors (``cpu``, ``cuda``, ``mps``) and is not part of the config: the vectors do not
    depend on it beyond rounding.
    """

    name = "hf"
    family: ClassVar[bool] = True

    def __init__(
        self,
        model: str,
        output: Output = "vectors",
        pooling: Literal["mean", "cls"] = "mean",
        unit: bool = True,
        max_len: int = 128,
        normalize: str = DEFAULT_TEXT_NORMALIZATION,
        revision: str | None = None,
        batch_size: int = 64,
        device: str = "cpu",
    ) -> None:
        if output not in ("vectors", "ids") or pooling not in ("mean", "cls"):
            raise UserInputError(
                f"hf:{model}: output is vectors or ids, pooling mean or cls "
                f"(got {output!r}, {pooling!r})"
            )
        check_max_len(max_len, f"hf:{model}")
        if self.family:
            self.name = f"hf:{model}"
        self.model, self.output, self.pooling, self.unit = model, output, pooling, bool(unit)
        self.max_len, self.revision = max_len, revision
        self.normalize = check_normalization(normalize)
        self.batch_size, self.device = batch_size, device
        self.source = self.resolve()
        self.dtype = "int64" if output == "ids" else "float32"
        self.backbone = self.backbone_name() if output == "ids" else None
        width = int(resources.transformer_config(self.source.folder)["hidden_size"])
        self.shape = (max_len,) if output == "ids" else (width,)

    def resolve(self) -> Any:
        return resolve_source(self.model, prefix="hf", revision=self.revision)

    def backbone_name(self) -> str:
        """What the fine-tuned network's config names as its pretrained start."""
        return f"hf:{self.model}"

    @property
    def folder(self) -> Path:
        return self.source.folder

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"output": self.output, "normalize": self.normalize}
        if self.output == "ids":
            config["max_len"] = self.max_len
        else:
            config.update(pooling=self.pooling, unit=self.unit)
        if self.revision is not None:
            config["revision"] = self.revision
        return config

    @classmethod
    def gives_ids(cls, config: dict[str, Any]) -> bool:
        return config.get("output") == "ids"

    @property
    def identity(self) -> str:
        """The weights' identity (hub commit or file sha256), and the id scheme for ids."""
        if self.output == "ids":
            return f"{self.source.identity}:ids+{self.id_shift}"
        return f"{self.source.identity}:{self.pooling}{':unit' if self.unit else ''}"

    @property
    def id_shift(self) -> int:
        return id_shift(tokenizer_of(self.folder))

    def to(self, device: Any) -> Self:
        self.device = str(device)
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = normalize_texts(texts, self.normalize)
        if self.output == "ids":
            return token_ids(tokenizer_of(self.folder), texts, self.max_len)
        return self._vectors(texts)

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        tokenizer, model = tokenizer_of(self.folder), transformer_of(self.folder, self.device)
        out = np.zeros((len(texts), self.shape[0]), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chunk = [text or "" for text in texts[start : start + self.batch_size]]
            encoded = tokenizer(
                chunk, truncation=True, max_length=self.max_len, padding=True, return_tensors="pt"
            )
            encoded = {k: v.to(self.device) for k, v in encoded.items()}
            with torch.inference_mode():
                states = model(**encoded).last_hidden_state.float()
            mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
            if self.pooling == "cls":
                pooled = states[:, 0]
            else:
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
            if self.unit:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[start : start + len(chunk)] = pooled.cpu().numpy()
        return out


class _BundledTokens(HFEncoder):
    """A named entry of :class:`HFEncoder` giving ids of a bundled (offline) transformer, with
    the identity its models were saved with: ``<ids_name>:file:<sha256[:16]>`` of the
    vocabulary."""

    family: ClassVar[bool] = False
    ids_name: ClassVar[str]
    #: the model name the network's config carries as ``backbone``
    backbone_id: ClassVar[str]

    def __init__(self, max_len: int = 128, normalize: str = DEFAULT_TEXT_NORMALIZATION) -> None:
        super().__init__(self.name, output="ids", max_len=max_len, normalize=normalize)

    @staticmethod
    @abstractmethod
    def bundle() -> Path:
        """The folder of the bundled transformer (tokenizer files included)."""

    def resolve(self) -> Any:
        from sentimodal.features.hub import HubSource

        return HubSource(self.bundle(), self.ids_name)

    def backbone_name(self) -> str:
        return self.backbone_id

    @property
    def config(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "normalize": self.normalize}

    @classmethod
    def gives_ids(cls, config: dict[str, Any]) -> bool:
        return True

    @property
    def identity(self) -> str:
        digest = resources.file_sha256(self.folder / "vocab.txt")
        return f"{self.ids_name}:file:{digest[:16]}"


@register_text_encoder
class MiniLMTokensEncoder(_BundledTokens):
    """all-MiniLM-L6-v2's WordPiece ids (``[CLS]``/``[SEP]``, pad 0), the default fine-tuned
    model's input; 128 tokens keeps every MVSA-Single tweet whole (the longest has 122)."""

    name = "minilm_tokens"
    legacy_config = {"normalize": "none"}
    backbone_id = "all-MiniLM-L6-v2"
    ids_name = "all-MiniLM-L6-v2-wordpiece"

    @staticmethod
    def bundle() -> Path:
        return resources.minilm_path()


@register_text_encoder
class MPNetTokensEncoder(_BundledTokens):
    """all-mpnet-base-v2's ids plus one (``<s>`` ... ``</s>``; MPNet pads with 1)."""

    name = "mpnet_tokens"
    backbone_id = "all-mpnet-base-v2"
    ids_name = "all-mpnet-base-v2-ids+1"

    @staticmethod
    def bundle() -> Path:
        return resources.mpnet_path()

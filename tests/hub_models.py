"""Tiny random Hugging Face and timm models saved to folders, for the hub-loading paths.

Nothing is downloaded: each model is built with random weights from a small config, with a
tokenizer made from a handful of words, and saved with ``save_pretrained``, so that loading
it back with ``HF_HUB_OFFLINE=1`` exercises the code users take with real checkpoints.
"""

from __future__ import annotations

from pathlib import Path

WORDS = [
    "i",
    "love",
    "this",
    "so",
    "much",
    "happy",
    "sad",
    "bad",
    "good",
    "great",
    "day",
    "the",
    "a",
    "is",
    "not",
    "awful",
    "photo",
    "of",
    "something",
    "positive",
    "negative",
    "neutral",
    "what",
    "cat",
    "dog",
    "!",
    ".",
    ",",
    ":)",
    ":(",
]


def bert_tokenizer(folder: Path, *, pad_first: bool = True):
    """A WordPiece tokenizer over :data:`WORDS`: pad id 0 as BERT's, or (``pad_first=False``)
    1, as RoBERTa's."""
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    special = ["[PAD]", "[UNK]"] if pad_first else ["[UNK]", "[PAD]"]
    vocab = [*special, "[CLS]", "[SEP]", "[MASK]", *WORDS]
    return BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)}, do_lower_case=True)


def tiny_bert(folder: Path, *, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT with its tokenizer, saved in ``folder``."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = bert_tokenizer(folder)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_roberta(folder: Path, *, seed: int = 0) -> Path:
    """A 2-layer RoBERTa-style model (pads with 1, so its ids are stored plus one), with the
    BERT tokenizer told to pad with id 1."""
    import torch
    from transformers import RobertaConfig, RobertaModel

    tokenizer = bert_tokenizer(folder, pad_first=False)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=70,
        pad_token_id=1,
    )
    torch.manual_seed(seed)
    RobertaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_timm(path: Path, name: str = "resnet18") -> Path:
    """A timm ``name`` with random weights (``pretrained=False``) saved as safetensors."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def tiny_clip(folder: Path, *, seed: int = 0) -> Path:
    """A tiny CLIPModel (2-layer towers, 32 wide, 32 px images, a 16-d joint space) with a
    WordPiece tokenizer and a CLIP image processor, saved in ``folder``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = bert_tokenizer(folder)
    small = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64}  # fmt: skip
    config = CLIPConfig(
        # the text tower pools at its end-of-text token: the tokenizer's [SEP]
        text_config={
            **small,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 77,
            "eos_token_id": tokenizer.sep_token_id,
            "bos_token_id": tokenizer.cls_token_id,
            "pad_token_id": 0,
        },  # fmt: skip
        vision_config={**small, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    return folder

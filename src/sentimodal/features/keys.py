"""Names of feature folders: anything that changes the stored values changes the key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

#: Bumped whenever stored values would change for the same encoder (decoding, layout), so
#: that old folders get a different key instead of being read as current.
STORE_VERSION = 1
STORE_FORMAT = "sentimodal-features"


def examples_fingerprint(ids: Sequence[str], contents: Sequence[str | None]) -> str:
    """Hash of the example ids, their order and the content a modality reads (image or text)."""
    digest = hashlib.sha256()
    for id_, content in zip(ids, contents, strict=True):
        digest.update(json.dumps([id_, content], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def feature_key(
    kind: str,
    name: str,
    encoder_config: dict[str, Any],
    identity: str,
    stored_dtype: str,
    fingerprint: str,
) -> str:
    """Short hash naming a feature folder: anything that changes the values changes it."""
    payload = {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "kind": kind,
        "name": name,
        "config": encoder_config,
        "identity": identity,
        "dtype": stored_dtype,
        "examples": fingerprint,
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]

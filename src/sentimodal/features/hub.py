"""Where a ``hf:``, ``timm:`` or ``clip:`` encoder's weights come from, and what names them.

A source is a local folder (or file), read with no network, or a Hugging Face hub id, read
from the hub cache (``HF_HOME``) and downloaded there when online. Offline (``HF_HUB_OFFLINE=1``
or no network), a hub id that is not cached is the user's to provide, so it is one line naming
the model and the two ways to provide it, never a traceback. The identity of the weights (the
hub revision's commit, or a file's sha256) goes into feature cache keys and model directories,
so features and models of other weights are never mixed up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sentimodal.errors import UserInputError
from sentimodal.features.resources import file_sha256

#: weight files looked for in a local folder, in order (the first found names the weights)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors")


@dataclass(frozen=True)
class HubSource:
    """A resolved source: the local ``folder`` holding its files, and ``identity``."""

    folder: Path
    identity: str


def hub_home() -> str:
    """The hub cache folder, as the user would set it (for messages)."""
    return os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")


def is_local(source: str) -> bool:
    """Whether ``source`` is a path on this machine rather than a hub id."""
    return Path(source).expanduser().exists() or source.startswith((".", "/", "~"))


def folder_identity(folder: Path, name: str) -> str:
    """``<name>:file:<sha256[:16]>`` of the folder's weight file."""
    for file in WEIGHT_FILES:
        if (folder / file).is_file():
            return f"{name}:file:{file_sha256(folder / file)[:16]}"
    raise UserInputError(
        f"{folder} holds no weights ({', '.join(WEIGHT_FILES)}): save the model there with "
        "save_pretrained"
    )


def resolve_source(
    source: str,
    *,
    prefix: str,
    revision: str | None = None,
    provide: str | None = None,
    label: str | None = None,
) -> HubSource:
    """The local folder and identity of ``source`` (a folder or a hub id at ``revision``);
    ``provide`` says how to give the weights otherwise and ``label`` names them (in the
    offline error)."""
    if is_local(source):
        folder = Path(source).expanduser().resolve()
        if not folder.is_dir():
            raise UserInputError(f"{prefix}:{source}: no such folder")
        return HubSource(folder, folder_identity(folder, folder.name))
    label = label or f"{prefix}:{source}"
    return _from_hub(source, prefix=prefix, revision=revision, provide=provide, label=label)


def _from_hub(
    model_id: str, *, prefix: str, revision: str | None, provide: str | None, label: str
) -> HubSource:
    """A hub snapshot from the cache, downloaded when online (the real path users take)."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in (
        "1",
        "true",
        "yes",
        "on",
    )
    try:
        folder = huggingface_hub.snapshot_download(
            model_id, revision=revision, local_files_only=offline
        )
    except HFValidationError:
        raise UserInputError(f"{label} is neither a local folder nor a hub id (org/name)") from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        state = "the hub is offline (HF_HUB_OFFLINE=1)" if offline else f"download failed: {exc}"
        provide = (
            provide or f"give a local folder ({prefix}:/path/to/model, saved with save_pretrained)"
        )
        raise UserInputError(
            f"{label} is not in the Hugging Face cache ({hub_home()}) and {state}: "
            f"{provide} or set HF_HOME to a cache that holds it"
        ) from None
    path = Path(folder)
    # a snapshot's folder is named by the commit it was taken at: the revision's identity
    return HubSource(path, f"{model_id}@{path.name}")

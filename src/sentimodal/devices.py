"""Which device runs the networks: ``auto`` (a CUDA GPU, else Apple's MPS, else the CPU),
``cpu``, ``cuda`` or ``mps``, the one setting of ``features``, ``train``, ``predict`` and
``serve``; and mixed precision, which only CUDA runs (bfloat16).

On the CPU nothing changes: tensors already live there, so moving them is a no-op and
results stay bit-identical to runs that never heard of devices. A model trained on a GPU is
saved from CPU copies of its weights and loads on any machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from sentimodal.errors import UserInputError

if TYPE_CHECKING:
    import torch

Device = Literal["auto", "cpu", "cuda", "mps"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


def resolve_device(setting: str = "auto") -> torch.device:
    """The torch device a setting names; a device this machine lacks is the user's to fix."""
    import torch

    if setting not in DEVICES:
        raise UserInputError(f"unknown device {setting!r}; choose one of: {', '.join(DEVICES)}")
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if setting == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (setting == "cuda" and not cuda) or (setting == "mps" and not mps):
        raise UserInputError(f"--device {setting}: this machine has no {setting} device")
    return torch.device(setting)


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's parameters are (the CPU for a module without any)."""
    import torch

    parameter = next(iter(module.parameters()), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    """Mixed precision for the forward passes on CUDA, in bfloat16 (float32's range, so no
    loss scaling); elsewhere, or disabled, nothing changes."""
    import torch

    if not enabled or device.type != "cuda":
        yield
        return
    if not torch.cuda.is_bf16_supported():
        raise UserInputError("mixed_precision needs a GPU with bfloat16 (Ampere or newer)")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        yield

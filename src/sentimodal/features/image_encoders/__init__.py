"""Image encoders behind one registry: ``list_image_encoders()``,
``get_image_encoder(name, **cfg)``.

Importing the package registers every encoder; weights load on first use.
"""

from sentimodal.features.defaults import DEFAULT_IMAGE_ENCODER
from sentimodal.features.image_encoders import (
    alexnet,
    clip,
    efficientnet_lite0,
    mobilenet_v2,
    pixels32,
    resnet50,
    timm_models,
)
from sentimodal.features.image_encoders.base import BackboneEncoder, ImageEncoder
from sentimodal.features.image_encoders.registry import (
    get_image_encoder,
    image_encoder_class,
    list_image_encoders,
    register_image_encoder,
)
from sentimodal.features.image_encoders.weights import WEIGHTS, WeightSpec

__all__ = [
    "clip",
    "DEFAULT_IMAGE_ENCODER",
    "WEIGHTS",
    "BackboneEncoder",
    "ImageEncoder",
    "WeightSpec",
    "alexnet",
    "efficientnet_lite0",
    "get_image_encoder",
    "image_encoder_class",
    "list_image_encoders",
    "mobilenet_v2",
    "pixels32",
    "register_image_encoder",
    "resnet50",
    "timm_models",
]

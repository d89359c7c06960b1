"""An explanation's image regions drawn over the image: a PNG anyone can look at.

Cells that spoke for the label are tinted red, those against it blue, each as strongly as
its score is large next to the largest in the grid; the grid is stretched over the image
without smoothing, so each tint covers exactly the cell that was greyed out.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

#: the strongest tint's opacity: the image stays visible under it
MAX_ALPHA = 0.6


def region_overlay(image: Image.Image, regions: Mapping[str, Any]) -> Image.Image:
    """``image`` with the ``regions`` heatmap of an explanation blended over it."""
    scores = np.array(
        [[0.0 if v is None else float(v) for v in row] for row in regions["scores"]],
        dtype=np.float32,
    )
    top = float(np.abs(scores).max()) or 1.0
    base = image.convert("RGB")
    strength = (
        np.asarray(
            Image.fromarray(np.abs(scores) / top * MAX_ALPHA * 255).resize(
                base.size, Image.NEAREST
            ),
            dtype=np.float32,
        )[..., None]
        / 255.0
    )
    sign = np.asarray(
        Image.fromarray((scores >= 0).astype(np.uint8) * 255).resize(base.size, Image.NEAREST)
    )[..., None]
    tint = np.where(sign > 0, np.array([220, 30, 30]), np.array([30, 80, 220])).astype(np.float32)
    pixels = np.asarray(base, dtype=np.float32)
    blended = pixels * (1 - strength) + tint * strength
    return Image.fromarray(blended.clip(0, 255).astype(np.uint8))


def region_overlay_png(image: Image.Image, regions: Mapping[str, Any]) -> bytes:
    """The overlay as PNG bytes (for reports, files and the try-it page alike)."""
    buffer = io.BytesIO()
    region_overlay(image, regions).save(buffer, format="PNG")
    return buffer.getvalue()

"""A small real sample shipped inside the package, so the demo and tests run offline.

600 MVSA-Single posts in the dataset's native layout, drawn per label pair with a fixed seed
by ``tools/make_sample.py``; images downscaled to at most 256 px. See DATA-LICENSE.md.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_ROOT = Path(__file__).resolve().parent


def sample_path() -> Path:
    """The sample's MVSA-Single folder, ready for ``sentimodal prepare mvsa``."""
    return SAMPLE_ROOT / "mvsa_single"

"""Shared fixtures: where the real data lives, and small crafted inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SENTIMODAL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data beside the checkout; tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mvsa_root(shared_data: Path) -> Path:
    return shared_data / "mvsa_single"


@pytest.fixture(scope="module")
def one_thread():
    """Tests share a small machine: one intra-op thread is faster there, and deterministic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_text_transformer() -> dict:
    """Settings of a text model on MiniLM's ids with one transformer layer: the estimator
    tests stay fast; the full model is tested in slow tests."""
    return {
        "model": "text",
        "text_encoder": "minilm_tokens",
        "model_options": {"num_layers": 1},
        "train": {"epochs": 1, "seed": 0},
        "feature_workers": 0,
    }

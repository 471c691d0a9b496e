"""Shared fixtures: where the example footage lives, and small PoseSequences."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO.parent / "shared" / "examples"
CASES = REPO.parent / "shared" / "cases"

os.environ.setdefault("TI_SKIP_VERSION_CHECK", "ON")  # taichi's online check hangs offline


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    """``../shared/examples`` beside the checkout; tests using it skip when it is absent."""
    if not EXAMPLES.is_dir():
        pytest.skip(f"example footage not found at {EXAMPLES}")
    return EXAMPLES


@pytest.fixture(scope="session")
def cases_dir() -> Path:
    """``../shared/cases`` (small real-world inputs that failed once); skip when absent."""
    if not CASES.is_dir():
        pytest.skip(f"real-world cases not found at {CASES}")
    return CASES


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)

"""Shared fixtures: the shipped digits example and held-out models trained the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def digits_model() -> Path:
    return DIGITS / "model.onnx"


@pytest.fixture(scope="session")
def digits_calib() -> Path:
    return DIGITS / "calib.npz"


@pytest.fixture(scope="session")
def digits_test() -> Path:
    return DIGITS / "test.npz"


@pytest.fixture(scope="session")
def digits_test_arrays(digits_test: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(digits_test, allow_pickle=False) as f:
        return f["x"], f["y"]


@pytest.fixture(scope="session")
def test_data() -> Path:
    """Models kept for tests: digits CNNs trained by examples/digits/train.py with other
    settings, never used to tune snnc."""
    return DATA

"""The committed real photos, and the mark for tests that need the build extra (TensorFlow)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT

PHOTOS = ROOT / "tests" / "data" / "real-photos"

needs_tensorflow = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None, reason="the build extra (TensorFlow) is not installed"
)


def committed_photos() -> tuple[list[Path], np.ndarray]:
    """Every committed real photo and its class index (class folders in sorted order)."""
    folders = sorted(p for p in PHOTOS.iterdir() if p.is_dir())
    pairs = [(photo, index) for index, folder in enumerate(folders) for photo in sorted(folder.glob("*.jpg"))]
    return [photo for photo, _ in pairs], np.array([index for _, index in pairs], dtype=np.int64)

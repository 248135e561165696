"""Shared fixtures of the unit tests: real photos as OpenCV arrays and a data root."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import settings

from tests import images

# The property tests draw the same examples on every run, so that the suite's outcome depends on
# the code alone; HYPOTHESIS_PROFILE=explore draws new ones each run, to look for new failures.
# (Loading a profile is global: in a whole-suite run it applies to the e2e tests too, where
# test_schemathesis.py sets its own settings.)
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def load(name: str, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """A photo of testimages/ as OpenCV decodes it (BGR, gray for camera.png)."""
    img = cv2.imread(str(images.testimage(name)), flags)
    assert img is not None, name
    return img


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    """451x300 BGR photo (odd width)."""
    return load("chelsea.jpg")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """512x512 BGR photo with one face."""
    return load("astronaut.jpg")


@pytest.fixture(scope="session")
def camera() -> np.ndarray:
    """512x512 8-bit grayscale photo."""
    return load("camera.png")


@pytest.fixture()
def root(tmp_path: Path) -> str:
    """A data root: the real path of a fresh temporary folder."""
    real = os.path.realpath(tmp_path / "root")
    os.makedirs(real)
    return real

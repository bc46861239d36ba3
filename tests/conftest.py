"""Shared fixtures: real photos shipped in packages, and one pipeline per runtime."""
from __future__ import annotations

import signal
import subprocess
import time

import cv2
import numpy as np
import pytest
from skimage import data

from openvtuber.models.runtime import litert_available
from openvtuber.tracking.pipeline import FacePipeline


@pytest.fixture(scope="session", autouse=True)
def _own_cache_dir(tmp_path_factory):
    """The bridges the tests start keep their browser profile here, not in the user's cache."""
    import os

    old = os.environ.get("OPENVTUBER_CACHE_DIR")
    os.environ["OPENVTUBER_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("OPENVTUBER_CACHE_DIR", None)
    else:
        os.environ["OPENVTUBER_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo (public domain), BGR, 512×512, one frontal face."""
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def astronaut_vga(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut centred on a 640×480 grey canvas (a webcam-sized frame)."""
    canvas = np.full((480, 640, 3), 128, np.uint8)
    canvas[:, 64:576] = astronaut[16:496]
    return canvas


@pytest.fixture(scope="session")
def litert_pipeline() -> FacePipeline:
    if not litert_available():
        pytest.skip("LiteRT is not installed on this platform")
    return FacePipeline("litert", tracking=False)


@pytest.fixture(scope="session")
def opencv_pipeline() -> FacePipeline:
    return FacePipeline("opencv", tracking=False)


def write_clip(path, frames, fps: float = 30.0):
    """An MJPG .avi of ``frames`` (BGR images of one size), as a user's recording would be."""
    frames = list(frames)
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        out.write(f)
    out.release()
    return path


def interrupt(proc: subprocess.Popen, timeout: float = 10.0) -> tuple[float, str]:
    """Ctrl-C a running CLI process as a terminal would: (seconds until it exited, its stderr)."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=timeout)
    return time.monotonic() - t0, proc.stderr.read()

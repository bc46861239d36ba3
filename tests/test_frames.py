"""Bad frames: converted when possible, refused with one line otherwise, never a crash."""
from __future__ import annotations

import numpy as np
import pytest

from openvtuber.tracking.frames import BadFrame, normalize_frame


@pytest.mark.parametrize("frame,match", [
    (np.zeros((0, 0, 3), np.uint8), "too small"),
    (np.zeros((1, 1, 3), np.uint8), "too small"),
    (np.zeros((480, 640, 2), np.uint8), "shape"),
    (np.zeros((4, 480, 640, 3), np.uint8), "shape"),
    (np.zeros((480, 640, 3), np.int64), "pixel type"),
    ("not an image", "not an image array"),
    (None, "not an image array"),
], ids=["empty", "1x1", "two-channel", "4d", "int64", "string", "none"])
def test_unusable_frames_are_refused_in_one_line(frame, match, litert_pipeline):
    with pytest.raises(BadFrame, match=match) as e:
        litert_pipeline.process(frame)
    assert "\n" not in str(e.value)


def test_grayscale_frame_is_tracked(astronaut_vga, litert_pipeline):
    gray = astronaut_vga.mean(axis=2).astype(np.uint8)
    assert litert_pipeline.process(gray).found
    assert litert_pipeline.process(gray[:, :, None]).found


def test_bgra_frame_is_tracked(astronaut_vga, litert_pipeline):
    bgra = np.dstack([astronaut_vga, np.full(astronaut_vga.shape[:2], 255, np.uint8)])
    obs = litert_pipeline.process(bgra)
    ref = litert_pipeline.process(astronaut_vga)
    assert obs.found and np.allclose(obs.landmarks, ref.landmarks, atol=1e-3)


def test_16bit_and_float_frames_are_converted(astronaut_vga):
    assert normalize_frame(astronaut_vga.astype(np.uint16) * 257).dtype == np.uint8
    f = normalize_frame(astronaut_vga.astype(np.float32) / 255.0)
    assert f.dtype == np.uint8 and np.abs(f.astype(int) - astronaut_vga).max() <= 1


def test_8k_frame_is_tracked(astronaut, litert_pipeline):
    import cv2

    big = np.full((4320, 7680, 3), 100, np.uint8)
    big[:, 1680:6000] = cv2.resize(astronaut[30:290, 90:350], (4320, 4320))   # face ≈ 20% of the width
    obs = litert_pipeline.process(big)
    assert obs.found and obs.image_size == (7680, 4320)
    assert 1680 < obs.landmarks[:, 0].mean() < 6000


def test_oversized_frame_refused():
    with pytest.raises(BadFrame, match="larger than"):
        normalize_frame(np.broadcast_to(np.uint8(0), (9000, 9000, 3)))

"""BlazeFace anchors, decode and weighted NMS: the Cython kernel equals the numpy fallback."""
from __future__ import annotations

import numpy as np
import pytest

from openvtuber.models import decode
from openvtuber.models.anchors import INPUT_SIZE, blazeface_anchors
from openvtuber.models.decode_numpy import decode as decode_numpy
from openvtuber.models.decode_numpy import weighted_nms
from openvtuber.models.detector import FaceDetector

cython = pytest.mark.skipif(decode.decode_cython is None, reason="Cython decoder not built")


def test_anchor_layout():
    a = blazeface_anchors()
    assert a.shape == (896, 2)
    # 16×16 grid with 2 anchors per cell, then 8×8 with 6 per cell
    assert np.allclose(a[0], [1 / 32, 1 / 32]) and np.allclose(a[1], a[0])
    assert np.allclose(a[512], [1 / 16, 1 / 16]) and np.allclose(a[517], a[512])
    assert np.allclose(a[-1], [15 / 16, 15 / 16])


def _random_outputs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    boxes = rng.normal(0, 6, (896, 16)).astype(np.float32)
    boxes[:, 2:4] = np.abs(boxes[:, 2:4]) * 4 + 8
    scores = rng.normal(-3, 3, 896).astype(np.float32)
    return boxes, scores


@cython
def test_cython_equals_numpy_on_random_outputs():
    rng = np.random.default_rng(1)
    anchors = blazeface_anchors()
    for _ in range(100):
        boxes, scores = _random_outputs(rng)
        a = decode.decode_cython(boxes, scores, anchors, float(INPUT_SIZE), 0.5, 0.3)
        b = decode_numpy(boxes, scores, anchors, float(INPUT_SIZE), 0.5, 0.3)
        assert a.shape == b.shape and np.array_equal(a, b)


@cython
def test_cython_equals_numpy_on_a_real_frame(astronaut_vga):
    det = FaceDetector("auto", decoder="cython")
    got_c = det.detect(astronaut_vga)
    det.set_decoder("numpy")
    got_n = det.detect(astronaut_vga)
    assert len(got_c) == len(got_n) == 1
    assert got_c[0].box == got_n[0].box
    assert np.array_equal(got_c[0].keypoints, got_n[0].keypoints)


def test_no_detection_below_threshold():
    boxes = np.zeros((896, 16), np.float32)
    scores = np.full(896, -5.0, np.float32)
    assert decode.decode(boxes, scores, blazeface_anchors(), 128.0, 0.5, 0.3).shape == (0, 17)


def test_weighted_nms_merges_overlaps_by_score():
    det = np.zeros((3, 17))
    det[:, 0] = [0.9, 0.6, 0.8]
    det[0, 1:5] = [0.10, 0.10, 0.30, 0.30]
    det[1, 1:5] = [0.12, 0.12, 0.32, 0.32]   # overlaps the first
    det[2, 1:5] = [0.60, 0.60, 0.80, 0.80]   # a second face
    out = weighted_nms(det, 0.3)
    assert out.shape == (2, 17)
    assert out[0, 0] == 0.9 and out[1, 0] == 0.8
    expected = (0.9 * det[0, 1:5] + 0.6 * det[1, 1:5]) / 1.5
    assert np.allclose(out[0, 1:5], expected)


def test_degenerate_boxes_do_not_hang_or_divide_by_zero():
    det = np.zeros((2, 17))
    det[:, 0] = [0.9, 0.7]                  # zero-area boxes
    out = weighted_nms(det, 0.3)
    assert out.shape == (2, 17) and np.isfinite(out).all()
    if decode.decode_cython is not None:
        boxes = np.zeros((896, 16), np.float32)
        scores = np.full(896, -50.0, np.float32)
        scores[[3, 7]] = 5.0
        a = decode.decode_cython(boxes, scores, blazeface_anchors(), 128.0, 0.5, 0.3)
        b = decode_numpy(boxes, scores, blazeface_anchors(), 128.0, 0.5, 0.3)
        assert np.array_equal(a, b) and np.isfinite(a).all()


def test_unknown_decoder_rejected():
    with pytest.raises(ValueError):
        FaceDetector("auto", decoder="fortran")

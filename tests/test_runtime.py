"""LiteRT and OpenCV DNN run the same graphs to the same numbers."""
from __future__ import annotations

import numpy as np
import pytest

from openvtuber.models import detector, iris, landmarks
from openvtuber.models.runtime import RuntimeUnavailable, litert_available, load, resolve_runtime
from openvtuber.models.weights import model_path

needs_litert = pytest.mark.skipif(not litert_available(), reason="LiteRT not installed here")

NETWORKS = [
    ("face_detection_short_range", detector.OUTPUTS, detector.OUTPUT_SHAPES, 128),
    ("face_landmark", landmarks.OUTPUTS, landmarks.OUTPUT_SHAPES, 192),
    ("iris_landmark", iris.OUTPUTS, iris.OUTPUT_SHAPES, 64),
]


@needs_litert
@pytest.mark.parametrize("name,outputs,shapes,size", NETWORKS, ids=[n[0] for n in NETWORKS])
def test_runtimes_agree_on_raw_outputs(name, outputs, shapes, size, astronaut):
    import cv2

    x = cv2.resize(astronaut[60:320, 120:380], (size, size))[None, :, :, ::-1].astype(np.float32) / 255.0
    a = load(model_path(name), outputs, shapes, "litert").run(x)
    b = load(model_path(name), outputs, shapes, "opencv").run(x)
    for oa, ob, shape in zip(a, b, shapes):
        assert oa.shape == ob.shape == shape
        assert np.abs(oa - ob).max() <= 1e-3 * max(1.0, float(np.abs(oa).max()))


@needs_litert
def test_runtimes_agree_on_landmarks(astronaut_vga, litert_pipeline, opencv_pipeline):
    a = litert_pipeline.process(astronaut_vga)
    b = opencv_pipeline.process(astronaut_vga)
    assert a.found and b.found
    assert np.abs(a.landmarks[:, :2] - b.landmarks[:, :2]).max() <= 0.5
    for ea, eb in ((a.right_eye, b.right_eye), (a.left_eye, b.left_eye)):
        assert np.abs(ea.iris[:, :2] - eb.iris[:, :2]).max() <= 0.5


def test_unknown_runtime_is_a_clear_error():
    with pytest.raises(ValueError, match="auto, litert or opencv"):
        resolve_runtime("tensorrt")


def test_auto_prefers_litert_when_present():
    assert resolve_runtime("auto") == ("litert" if litert_available() else "opencv")
    if not litert_available():
        with pytest.raises(RuntimeUnavailable):
            resolve_runtime("litert")

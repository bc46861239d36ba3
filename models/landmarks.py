"""MediaPipe face landmark network: 468 points with relative depth, and face presence."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .roi import RotatedRect, fill_input, project, rect_from_points, warp
from .runtime import Model, load
from .weights import model_path

INPUT_SIZE = 192
OUTPUTS = ("conv2d_21", "conv2d_31")
OUTPUT_SHAPES = ((1, 1, 1, 1404), (1, 1, 1, 1))
NUM_LANDMARKS = 468
# Outer corners of the person's right (33) and left (263) eyes: the ROI's rotation axis.
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263


@dataclass
class LandmarkResult:
    """468 (x, y, z) points in image pixels (z: relative depth, same scale as x) and the
    face-presence probability."""

    points: np.ndarray
    presence: float
    roi: RotatedRect


def roi_from_landmarks(points: np.ndarray, scale: float = 1.5) -> RotatedRect:
    """The next frame's crop from this frame's landmarks (MediaPipe's tracking ROI)."""
    return rect_from_points(points, RIGHT_EYE_OUTER, LEFT_EYE_OUTER, scale)


class FaceLandmarker:
    def __init__(self, runtime: str = "auto", threads: int = 1):
        self.model: Model = load(model_path("face_landmark"), OUTPUTS, OUTPUT_SHAPES, runtime, threads)
        self._input = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)

    def run(self, image: np.ndarray, roi: RotatedRect, mirror: np.ndarray | None = None) -> LandmarkResult:
        """Landmarks in ``roi``. With ``mirror`` (the mesh's left/right index permutation) the
        network reads the mirror image of the crop and the points come back unmirrored, in the
        person's own order: a second opinion from a network that is not mirror-symmetric."""
        m = roi.crop_to_image(INPUT_SIZE, flip=mirror is not None)
        patch = warp(image, m, INPUT_SIZE)
        fill_input(patch, self._input[0], 1.0 / 255.0)
        raw, flag = self.model.run(self._input)
        pts = project(raw.reshape(NUM_LANDMARKS, 3), m)     # ``m`` holds the mirror: positions come back
        if mirror is not None:
            pts = pts[mirror]                               # ... and the point names swap sides
        presence = float(1.0 / (1.0 + np.exp(-np.clip(float(flag.ravel()[0]), -100.0, 100.0))))
        return LandmarkResult(pts, presence, roi)

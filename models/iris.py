"""MediaPipe iris landmark network: 5 iris points and 71 eye-contour points per eye.

The network was trained on the image-left eye; the other eye is mirrored into the crop
and its outputs mirrored back, as MediaPipe's graph does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .roi import RotatedRect, fill_input, project, rect_from_points, warp
from .runtime import Model, load
from .weights import model_path

INPUT_SIZE = 64
OUTPUTS = ("output_eyes_contours_and_brows", "output_iris")
OUTPUT_SHAPES = ((1, 213), (1, 15))
# Eye-corner landmarks that frame each eye's crop (start → end of the rotation vector).
RIGHT_EYE_CORNERS = (33, 133)   # the person's right eye: image left in an unmirrored camera
LEFT_EYE_CORNERS = (362, 263)   # the person's left eye, mirrored before inference


@dataclass
class EyeResult:
    """Iris (5, 3): centre first, then four rim points; contour (71, 3); image pixels."""

    iris: np.ndarray
    contour: np.ndarray
    roi: RotatedRect

    @property
    def centre(self) -> np.ndarray:
        return self.iris[0, :2]


def eye_roi(face_points: np.ndarray, corners: tuple[int, int], scale: float = 2.3) -> RotatedRect:
    return rect_from_points(face_points[list(corners)], 0, 1, scale)


class IrisLandmarker:
    def __init__(self, runtime: str = "auto", threads: int = 1):
        self.model: Model = load(model_path("iris_landmark"), OUTPUTS, OUTPUT_SHAPES, runtime, threads)
        self._input = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)

    def run_eye(self, image: np.ndarray, roi: RotatedRect, mirrored: bool) -> EyeResult:
        m = roi.crop_to_image(INPUT_SIZE, flip=mirrored)
        # MediaPipe's iris graph crops (ImageCroppingCalculator) then resizes: pixel centres
        patch = warp(image, m, INPUT_SIZE, half_pixel=True)
        fill_input(patch, self._input[0], 1.0 / 255.0)
        contour, iris = self.model.run(self._input)
        # ``m`` already contains the mirror, so projecting undoes it
        return EyeResult(project(iris.reshape(5, 3), m), project(contour.reshape(71, 3), m), roi)

    def run(self, image: np.ndarray, face_points: np.ndarray) -> tuple[EyeResult, EyeResult]:
        """(right eye, left eye) of the person, from the 468 face landmarks."""
        right = self.run_eye(image, eye_roi(face_points, RIGHT_EYE_CORNERS), mirrored=False)
        left = self.run_eye(image, eye_roi(face_points, LEFT_EYE_CORNERS), mirrored=True)
        return right, left

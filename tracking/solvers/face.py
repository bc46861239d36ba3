"""All raw measurements of one face: the rigid fit, head pose, both eyes, mouth, brows."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .eyes import EyeMeasure, measure_eye
from .head import Camera, FaceFit, HeadPose, fit_face, solve_pnp, solve_rigid
from .mouth import FACE_POINTS_READ, BrowMeasure, MouthMeasure, measure_brows, measure_mouth

# A rigid-fit residual above this (metres, per unit of depth gain: the stretched depth fits the
# model's less closely by design) means the crop did not hold a face-shaped face.
MAX_FIT_RMSE = 0.012
FACE_READ = np.array(FACE_POINTS_READ, dtype=np.int64)


@dataclass
class RawFace:
    fit: FaceFit
    pose: HeadPose
    right: EyeMeasure
    left: EyeMeasure
    mouth: MouthMeasure
    brows: BrowMeasure


def measure_face(landmarks: np.ndarray, right_eye: tuple[np.ndarray, np.ndarray],
                 left_eye: tuple[np.ndarray, np.ndarray], camera: Camera, method: str = "rigid",
                 previous: HeadPose | None = None, depth_gain: float = 1.0) -> RawFace | None:
    """``*_eye`` = (contour (71, 3), iris (5, 3)) in pixels. None when the landmarks are
    degenerate (NaN, collapsed, or not face-shaped). ``depth_gain``: see ``head``."""
    fit = fit_face(landmarks, depth_gain)
    if fit is None or fit.rmse > MAX_FIT_RMSE * max(1.0, depth_gain):
        return None
    if method == "pnp":
        pose = solve_pnp(landmarks, camera, previous)
        if pose is None:
            return None
    else:
        pose = solve_rigid(fit, camera)
    # one transform for what the other solvers read (the mouth, brow and eye points and both
    # lid contours), into a face-sized array: the rest of the face is not needed per frame
    stack = np.concatenate([landmarks.take(FACE_READ, axis=0), right_eye[0][:16], left_eye[0][:16],
                            right_eye[1][:1], left_eye[1][:1]])
    if not math.isfinite(float(stack.sum())):        # NaN or inf anywhere (one call, not three)
        return None
    read = fit.to_model(stack)
    n = len(FACE_READ)
    m = np.zeros((len(landmarks), 3))
    m[FACE_READ] = read[:n]
    right = measure_eye(read[n:n + 16], right_eye[0], right_eye[1][0], right_eye=True)
    left = measure_eye(read[n + 16:n + 32], left_eye[0], left_eye[1][0], right_eye=False)
    return RawFace(fit, pose, right, left, measure_mouth(m), measure_brows(m))

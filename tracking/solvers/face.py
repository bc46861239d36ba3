"""All raw measurements of one face: the rigid fit, head pose, both eyes, mouth, brows."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .eyes import EyeMeasure, measure_eye
from .head import Camera, FaceFit, HeadPose, RigidFit, solve_pnp
from .mouth import FACE_POINTS_READ, BrowMeasure, MouthMeasure, measure_brows, measure_mouth

# A rigid-fit residual (metres, image plane, over the weighted points) above this means the
# crop did not hold a face-shaped face; every face of the AFLW2000 dev set and of the package
# videos stays below it (at most 5.4 and 4.9 mm).
MAX_FIT_RMSE = 0.008
FACE_READ = np.array(FACE_POINTS_READ, dtype=np.int64)


@dataclass
class RawFace:
    fit: FaceFit
    pose: HeadPose
    right: EyeMeasure
    left: EyeMeasure
    mouth: MouthMeasure
    brows: BrowMeasure

    @property
    def view_yaw(self) -> float:
        """The head's yaw as the camera sees it (degrees, DESIGN.md sign): how far one eye is
        turned away, whatever the user's neutral or the camera's placement."""
        (_, _, r02), _, (_, _, r22) = self.fit.rotation.tolist()
        return math.degrees(math.atan2(-r02, r22))         # person frame: FLIP · r · FLIP

    @property
    def view_pitch(self) -> float:
        """The head's pitch as the camera sees it (degrees, DESIGN.md sign)."""
        r12 = self.fit.rotation[1, 2]
        return math.degrees(math.asin(max(-1.0, min(1.0, r12))))      # person frame: FLIP · r · FLIP


def measure_face(landmarks: np.ndarray, right_eye: tuple[np.ndarray, np.ndarray],
                 left_eye: tuple[np.ndarray, np.ndarray], camera: Camera, fitter: RigidFit,
                 method: str = "rigid", previous: HeadPose | None = None, view: bool = True) -> RawFace | None:
    """``*_eye`` = (contour (71, 3), iris (5, 3)) in pixels. None when the landmarks are
    degenerate (NaN, collapsed, or not face-shaped). ``view``: see ``RigidFit.solve``."""
    fit = fitter.fit(landmarks)
    if fit is None or fit.rmse > MAX_FIT_RMSE:
        return None
    if method == "pnp":
        pose = solve_pnp(landmarks, camera, previous, fitter.model)
        if pose is None:
            return None
    else:
        pose = fitter.solve(fit, camera, view)
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

"""Head pose from the 468 landmarks: rotation (person frame), angles, translation.

Two estimators, both against the neutral face of ``face_model``:

* ``solve_rigid`` (the default): a similarity fit (Kabsch rotation, image-plane scale) of
  the network's own 3D output to the neutral face on the rigid points, corrected for the
  viewing direction (a face off the optical axis is seen from the side). One 3×3 SVD.
* ``solve_pnp``: OpenCV ``solvePnP`` of the 2D points against the metric model with the
  camera intrinsics, the previous pose as initial guess.

Both were measured on the synthetic head sweep (``TrackerOptions.head_method``); the rigid
fit was the more accurate (PnP on the network's 2D points: 4.8 / 5.5 / 2.8° MAE against
2.8 / 2.8 / 1.8°) and is cheaper, so it is the default.

The landmark network under-reads how far the points move in depth when the head turns
(its output regresses towards a frontal face), so the rigid fit stretches the observed
depth by ``depth_gain`` first. ``tests/tools/fit_response.py`` picks it on a training
sweep (2.25); on the accuracy clip it takes the yaw error from 5.2° to 2.8°, with no
per-angle gains (gains on Euler angles couple the axes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .face_model import RIGID, neutral_face
from .geometry import FLIP, FLIP_DIAG, kabsch_rotation, quat_from_matrix, ypr_from_matrix


_FLIP_BOTH = np.outer(FLIP_DIAG, FLIP_DIAG)


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_frame(cls, width: int, height: int, hfov_deg: float = 60.0) -> "Camera":
        """A typical webcam: square pixels, centred principal point, ``hfov_deg`` across."""
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(f, f, width / 2.0, height / 2.0)

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)


@dataclass
class HeadPose:
    """``rotation``: person-frame 3×3 (head → camera, DESIGN.md signs); ``translation``:
    metres in camera space (x right, y down, z ahead)."""

    rotation: np.ndarray
    yaw: float
    pitch: float
    roll: float
    translation: np.ndarray

    @property
    def quaternion(self) -> tuple[float, float, float, float]:
        return quat_from_matrix(self.rotation)

    @classmethod
    def from_image_rotation(cls, r_img: np.ndarray, translation: np.ndarray) -> "HeadPose":
        r_person = r_img * _FLIP_BOTH          # FLIP @ r_img @ FLIP
        yaw, pitch, roll = ypr_from_matrix(r_person)
        return cls(r_person, yaw, pitch, roll, translation)


@dataclass
class FaceFit:
    """The network's 3D landmarks aligned to the neutral face: ``points ≈ scale · R @ model + centre``
    in the image frame (``scale`` in pixels per metre). ``rmse`` (metres) is large for a
    bad crop or a face that is not a face."""

    rotation: np.ndarray
    scale: float
    centre: np.ndarray
    rmse: float

    def to_model(self, points: np.ndarray) -> np.ndarray:
        """Observed (N, 3) image-pixel landmarks → person-frame metres with the head's rotation
        removed, so the eye, mouth and brow solvers measure a frontal face at any pose.

        The points keep the network's own depth: the depth gain corrects how far the head
        turns, but stretched lids and lips read as closing and smiling when the head turns
        (the demo's eyes read half shut at 25° of yaw)."""
        return (np.asarray(points, dtype=np.float64) - self.centre) @ (self.rotation * (FLIP_DIAG / self.scale))


@lru_cache(maxsize=1)
def _rigid_model() -> tuple[np.ndarray, list[list[float]], np.ndarray]:
    """The rigid points in the image frame's axes, centred and with a column of ones (so one
    product gives the cross-covariance and the sum of the observed points), their second
    moments and their centroid. Fixed: computed once."""
    model = neutral_face()[RIGID] @ FLIP
    mu = model.mean(axis=0)
    a = model - mu
    return np.ascontiguousarray(np.hstack([a, np.ones((len(a), 1))])), (a.T @ a).tolist(), mu


@lru_cache(maxsize=8)
def _depth_bias(depth_gain: float) -> np.ndarray:
    """The inverse of the rotation the stretched fit reads on the neutral face itself (the
    stretch is along the camera axis, so it is taken off on the camera side): the
    face is not symmetric in depth (the forehead leans back), so stretching its depth tilts
    the fit (5° of pitch at 2×). Taken off every fit, a frontal face reads frontal whether or
    not the user has calibrated."""
    a = _rigid_model()[0][:, :3]
    return kabsch_rotation(((a * (1.0, 1.0, depth_gain)).T @ a).tolist()).T


def fit_face(points: np.ndarray, depth_gain: float = 1.0) -> FaceFit | None:
    """Similarity fit of the neutral face to the 3D landmarks (rigid points only, their depth
    times ``depth_gain``): Kabsch rotation, then scale and residual in the image plane.

    Everything comes from one small product of the observed points (their cross-covariance
    with the centred model, their sum and their second moments); the rest is 3×3 arithmetic.
    This runs right after the networks, when the interpreter's and numpy's caches are cold,
    and there each array call costs 10–30 µs (numpy's 3×3 SVD 117 µs, OpenCV's 21 µs)."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) <= RIGID[-1]:
        return None
    obs = pts.take(RIGID, axis=0).astype(np.float64)
    a1, ata, mu_m = _rigid_model()
    n = len(obs)
    # rows x, y, z: [Σ o·a (3), Σ o, Σ o·o (3)] in one product; NaN from a degenerate crop is
    # caught below, without numpy's warning in the user's terminal
    with np.errstate(invalid="ignore", over="ignore"):
        moments = (obs.T @ np.concatenate((a1, obs), axis=1)).tolist()
    sxy = moments[0][4] + moments[1][5]
    g = depth_gain
    moments[2] = [v * g for v in moments[2]]
    cov = [row[:3] for row in moments]
    mu_o = [row[3] / n for row in moments]
    if not (math.isfinite(sxy) and all(math.isfinite(v) for v in mu_o) and all(math.isfinite(v) for row in cov for v in row)):
        return None
    r = kabsch_rotation(cov)
    if g != 1.0:
        r = _depth_bias(g) @ r
    rl = r.tolist()
    # scale and residual from the image plane alone: the stretched depth does not match the
    # model's by design, and the face's size in the image is what gives its distance
    bm = sum(rl[k][j] * cov[k][j] for k in (0, 1) for j in range(3))
    mm = sum(rl[k][i] * ata[i][j] * rl[k][j] for k in (0, 1) for i in range(3) for j in range(3))
    if not (mm > 0.0 and math.isfinite(bm)):
        return None
    s = bm / mm
    if not (math.isfinite(s) and s > 1e-6):
        return None
    bb = sxy - n * (mu_o[0] ** 2 + mu_o[1] ** 2)
    rmse = math.sqrt(max(0.0, bb - s * bm) / n) / s
    return FaceFit(r, s, np.array(mu_o) - s * (r @ mu_m), rmse)


def solve_rigid(fit: FaceFit, camera: Camera) -> HeadPose:
    """Head pose from the rigid fit. The network sees the face through its crop, i.e. from
    the direction of the face's ray: rotating the optical axis onto that ray turns the
    fit's view-relative rotation into camera space. Distance from the apparent size."""
    cx, cy, _ = fit.centre.tolist()
    rx, ry = (cx - camera.cx) / camera.fx, (cy - camera.cy) / camera.fy
    z = camera.fx / fit.scale
    return HeadPose.from_image_rotation(_view_rotation(rx, ry) @ fit.rotation, np.array([rx * z, ry * z, z]))


def _view_rotation(rx: float, ry: float) -> np.ndarray:
    """The smallest rotation taking the optical axis onto the ray (rx, ry, 1), written out
    (Rodrigues about the axis (−ry, rx, 0)): one array instead of a dozen small operations."""
    n = math.sqrt(rx * rx + ry * ry + 1.0)
    v0, v1, c = -ry / n, rx / n, 1.0 / n
    k = 1.0 / (1.0 + c)
    return np.array([[1.0 - v1 * v1 * k, v0 * v1 * k, v1],
                     [v0 * v1 * k, 1.0 - v0 * v0 * k, -v0],
                     [-v1, v0, 1.0 - (v0 * v0 + v1 * v1) * k]])


def solve_pnp(points: np.ndarray, camera: Camera, previous: HeadPose | None = None) -> HeadPose | None:
    """``cv2.solvePnP`` of the 2D landmarks against the metric neutral face."""
    img = np.ascontiguousarray(np.asarray(points, dtype=np.float64)[RIGID, :2])
    if not np.isfinite(img).all():
        return None
    obj = np.ascontiguousarray(neutral_face()[RIGID] @ FLIP)   # camera axes: x right, y down, z ahead
    k = camera.matrix()
    if previous is not None:
        rvec, _ = cv2.Rodrigues(FLIP @ previous.rotation @ FLIP)
        tvec = previous.translation.reshape(3, 1).astype(np.float64).copy()
        ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
    else:
        ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok or not np.isfinite(tvec).all() or tvec[2, 0] <= 0:
        return None
    r_img, _ = cv2.Rodrigues(rvec)
    return HeadPose.from_image_rotation(r_img, tvec.ravel().copy())

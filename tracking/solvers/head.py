"""Head pose from the 468 landmarks: rotation (person frame), angles, translation.

Two estimators, both against the neutral face of ``face_model``:

* ``solve_rigid`` (the default): a weighted similarity fit (Umeyama/Kabsch) of the
  network's own 3D output to the neutral face on the rigid points, corrected for the
  viewing direction (a face off the optical axis is seen from the side). One 3×3 SVD.
* ``solve_pnp``: OpenCV ``solvePnP`` of the 2D points against the metric model with the
  camera intrinsics, the previous pose as initial guess.

Both were measured on the synthetic head sweep (``TrackerOptions.head_method``); the rigid
fit was as accurate and cheaper, so it is the default.

The landmark network under-reads how far the points move in depth when the head turns
(its output regresses towards a frontal face), so the rigid fit stretches the observed
depth by ``depth_gain`` first (measured: ``tests/tools/fit_response.py`` picks it on a
training sweep; 2.0 took the head sweep's yaw error from 5.2° to 2.8° with no per-angle
gains, which couple the angles when applied to Euler angles).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .face_model import RIGID, neutral_face
from .geometry import FLIP, FLIP_DIAG, quat_from_matrix, rotation_between, ypr_from_matrix


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
        r_person = FLIP @ r_img @ FLIP
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
    depth_gain: float = 1.0

    def to_model(self, points: np.ndarray) -> np.ndarray:
        """Observed (N, 3) image-pixel landmarks → person-frame metres with the head's rotation
        removed, so the eye, mouth and brow solvers measure a frontal face at any pose."""
        p = np.asarray(points, dtype=np.float64) * (1.0, 1.0, self.depth_gain)
        return (p - self.centre) @ (self.rotation * (FLIP_DIAG / self.scale))


@lru_cache(maxsize=1)
def _rigid_model() -> tuple[np.ndarray, np.ndarray]:
    """The rigid points in the image frame's axes, centred, and their centroid (fixed:
    computed once, so the per-frame fit is one 3×3 SVD)."""
    model = neutral_face()[RIGID] @ FLIP
    mu = model.mean(axis=0)
    a = np.ascontiguousarray(model - mu)
    return a, mu


def _det3(m: np.ndarray) -> float:
    (a, b, c), (d, e, f), (g, h, i) = m.tolist()
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def fit_face(points: np.ndarray, depth_gain: float = 1.0) -> FaceFit | None:
    """Similarity fit of the neutral face to the 3D landmarks (rigid points only, their depth
    times ``depth_gain``): Kabsch rotation with the model's side precomputed; scale and
    residual in the image plane."""
    obs = np.asarray(points, dtype=np.float64)[RIGID]
    if obs.shape != (len(RIGID), 3) or not np.isfinite(obs).all():
        return None
    if depth_gain != 1.0:
        obs = obs * (1.0, 1.0, depth_gain)
    a, mu_m = _rigid_model()
    mu_o = obs.mean(axis=0)
    b = obs - mu_o
    cov = b.T @ a
    u, sig, vt = np.linalg.svd(cov)
    d = 1.0 if _det3(cov) >= 0 else -1.0
    if d < 0:
        u[:, 2] *= -1.0
    r = u @ vt
    # scale and residual from the image plane alone: the stretched depth does not match the
    # model's by design, and the face's size in the image is what gives its distance
    m_xy = a @ r[:2].T
    s = float(np.einsum("ij,ij->", b[:, :2], m_xy)) / float(np.einsum("ij,ij->", m_xy, m_xy))
    if not (math.isfinite(s) and s > 1e-6):
        return None
    d_xy = b[:, :2] - s * m_xy
    rmse = math.sqrt(float(np.einsum("ij,ij->", d_xy, d_xy)) / len(obs)) / s
    return FaceFit(r, s, mu_o - s * (r @ mu_m), rmse, depth_gain)


def solve_rigid(fit: FaceFit, camera: Camera) -> HeadPose:
    """Head pose from the rigid fit. The network sees the face through its crop, i.e. from
    the direction of the face's ray: rotating the optical axis onto that ray turns the
    fit's view-relative rotation into camera space. Distance from the apparent size."""
    ray = np.array([(fit.centre[0] - camera.cx) / camera.fx, (fit.centre[1] - camera.cy) / camera.fy, 1.0])
    view = rotation_between(np.array([0.0, 0.0, 1.0]), ray)
    z = camera.fx / fit.scale
    return HeadPose.from_image_rotation(view @ fit.rotation, np.array([ray[0] * z, ray[1] * z, z]))


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

"""Head pose from the 468 landmarks: rotation (person frame), angles, translation.

Two estimators, both against the neutral face of ``face_model``:

* ``RigidFit`` (the default): a weighted similarity fit (Kabsch rotation, image-plane scale)
  of the network's own 3D output to the neutral face, corrected for the viewing direction (a
  face off the optical axis is seen from the side). One 3×3 SVD.
* ``solve_pnp``: OpenCV ``solvePnP`` of the 2D points against the metric model with the
  camera intrinsics, the previous pose as initial guess.

The rigid fit's constants come from real faces (``response.HeadResponse``, fitted by
``tests/tools/fit_head.py`` on the AFLW2000-3D dev set): which points count and how much,
where the neutral face puts zero pitch, how much the network's depth is scaled (0.79: on
real faces it reads deeper than the neutral face), and how much yaw past a knee is scaled up (the network's mesh turns less than a head in profile).
On real photos PnP of the network's 2D points was the less accurate of the two.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .face_model import RIGID, neutral_face
from .geometry import FLIP, FLIP_DIAG, kabsch_rotation, quat_from_matrix, rot_x, rot_y, ypr_from_matrix
from .response import HeadResponse, network_response


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
    def from_rotation(cls, r_person: np.ndarray, translation: np.ndarray) -> "HeadPose":
        yaw, pitch, roll = ypr_from_matrix(r_person)
        return cls(r_person, yaw, pitch, roll, translation)

    @classmethod
    def from_image_rotation(cls, r_img: np.ndarray, translation: np.ndarray) -> "HeadPose":
        return cls.from_rotation(r_img * _FLIP_BOTH, translation)          # FLIP @ r_img @ FLIP


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

        The points keep the network's own depth: the depth gain is for the rigid fit only
        (rescaled lids and lips would read as closing or smiling when the head turns)."""
        return (np.asarray(points, dtype=np.float64) - self.centre) @ (self.rotation * (FLIP_DIAG / self.scale))


class RigidFit:
    """The weighted similarity fit of the neutral face to the network's 3D landmarks.

    Everything per frame comes from one small product of the observed points (their weighted
    cross-covariance with the centred model, their sum and their second moments); the rest is
    3×3 arithmetic. This runs right after the networks, when the interpreter's and numpy's
    caches are cold, and there each array call costs 10–30 µs (numpy's 3×3 SVD 117 µs,
    OpenCV's 21 µs). The model side is computed once, here."""

    def __init__(self, response: HeadResponse | None = None):
        r = response or HeadResponse()
        self.response = r
        # the neutral face as real faces hold it at zero pitch, in the person frame
        self.model = neutral_face() @ rot_x(math.radians(r.model_pitch)).T
        w = np.ones(len(self.model)) if r.weights is None else np.asarray(r.weights, dtype=np.float64)
        self._idx = np.flatnonzero(w > 0.0)
        w = w[self._idx]
        model = self.model[self._idx] @ FLIP            # the image frame's axes
        mu = w @ model / w.sum()
        a = model - mu
        self._w, self._wsum, self._mu = w[:, None], float(w.sum()), mu
        # columns [w·a (3), w]: one product with the observed points gives Σ w·o·aᵀ and Σ w·o
        self._a1 = np.ascontiguousarray(np.hstack([a * self._w, self._w]))
        self._ata = ((a.T * w) @ a).tolist()
        self._gain = r.depth_gain
        # the inverse of the rotation the depth-scaled fit reads on the neutral face itself (the
        # face is not symmetric in depth, so scaling its depth tilts the fit): taken off
        # every fit, a frontal face reads frontal whether or not the user has calibrated
        self._bias = kabsch_rotation((((a * (1.0, 1.0, self._gain)).T * w) @ a).tolist()).T
        self._knee, self._yaw_gain = r.yaw_knee, r.yaw_gain

    @classmethod
    def measured(cls) -> "RigidFit":
        """The fit with the constants measured on real faces."""
        return cls(network_response().head)

    def fit(self, points: np.ndarray) -> FaceFit | None:
        """``points``: (468, 3) image-frame landmarks; None when degenerate (NaN, collapsed)."""
        pts = np.asarray(points)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) != len(self.model):
            return None
        obs = pts.take(self._idx, axis=0).astype(np.float64)
        # rows x, y, z: [Σ w·o·a (3), Σ w·o, Σ w·o·o (3)] in one product; NaN from a degenerate
        # crop is caught below, without numpy's warning in the user's terminal
        with np.errstate(invalid="ignore", over="ignore"):
            moments = (obs.T @ np.concatenate((self._a1, obs * self._w), axis=1)).tolist()
        sxy = moments[0][4] + moments[1][5]
        g, n = self._gain, self._wsum
        moments[2] = [v * g for v in moments[2]]
        cov = [row[:3] for row in moments]
        mu_o = [row[3] / n for row in moments]
        if not (math.isfinite(sxy) and all(math.isfinite(v) for v in mu_o) and all(math.isfinite(v) for row in cov for v in row)):
            return None
        r = self._bias @ kabsch_rotation(cov)
        rl, ata = r.tolist(), self._ata
        # scale and residual from the image plane alone: the scaled depth does not match the
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
        return FaceFit(r, s, np.array(mu_o) - s * (r @ self._mu), rmse)

    def solve(self, fit: FaceFit, camera: Camera, view: bool = True) -> HeadPose:
        """Head pose from the fit. The network sees the face through its crop, i.e. from the
        direction of the face's ray: with ``view``, rotating the optical axis onto that ray
        turns the fit's view-relative rotation into camera space (right for a camera whose
        frame is the whole picture). Without, the rotation is relative to the image plane, as
        photo labels are: a photo is often a crop whose optical axis is unknown (on the AFLW2000
        dev set the view correction costs 0.5° of yaw). Distance from the apparent size. Yaw
        past the knee is scaled up (a turn about the vertical, applied on the camera side as
        yaw is, so pitch and roll keep their values)."""
        cx, cy, _ = fit.centre.tolist()
        rx, ry = (cx - camera.cx) / camera.fx, (cy - camera.cy) / camera.fy
        z = camera.fx / fit.scale
        r_img = _view_rotation(rx, ry) @ fit.rotation if view else fit.rotation
        pose = HeadPose.from_image_rotation(r_img, np.array([rx * z, ry * z, z]))
        extra = max(0.0, abs(pose.yaw) - self._knee) * self._yaw_gain
        if extra > 0.0:
            pose = HeadPose.from_rotation(rot_y(math.radians(math.copysign(extra, pose.yaw))) @ pose.rotation,
                                          pose.translation)
        return pose


def _view_rotation(rx: float, ry: float) -> np.ndarray:
    """The smallest rotation taking the optical axis onto the ray (rx, ry, 1), written out
    (Rodrigues about the axis (−ry, rx, 0)): one array instead of a dozen small operations."""
    n = math.sqrt(rx * rx + ry * ry + 1.0)
    v0, v1, c = -ry / n, rx / n, 1.0 / n
    k = 1.0 / (1.0 + c)
    return np.array([[1.0 - v1 * v1 * k, v0 * v1 * k, v1],
                     [v0 * v1 * k, 1.0 - v0 * v0 * k, -v0],
                     [-v1, v0, 1.0 - (v0 * v0 + v1 * v1) * k]])


def solve_pnp(points: np.ndarray, camera: Camera, previous: HeadPose | None = None,
              model: np.ndarray | None = None) -> HeadPose | None:
    """``cv2.solvePnP`` of the 2D landmarks against the metric neutral face (``model``: a
    person-frame copy of it, e.g. ``RigidFit.model``)."""
    img = np.ascontiguousarray(np.asarray(points, dtype=np.float64)[RIGID, :2])
    if not np.isfinite(img).all():
        return None
    model = neutral_face() if model is None else model
    obj = np.ascontiguousarray(model[RIGID] @ FLIP)   # camera axes: x right, y down, z ahead
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

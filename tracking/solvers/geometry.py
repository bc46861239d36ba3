"""Rotations and frames shared by the solvers.

Frames: the *image* frame of the landmarks (x right, y down, z away from the camera, in
pixels) and the *person* frame (X the person's own left, Y up, Z out of the face),
related by ``to_person = diag(1, −1, −1)`` when the person faces the camera.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

FLIP_DIAG = np.array([1.0, -1.0, -1.0])
FLIP = np.diag(FLIP_DIAG)   # image ↔ person frame (its own inverse)


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def matrix_from_ypr(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Person-frame rotation for angles in degrees (DESIGN.md signs): Ry(yaw)·Rx(−pitch)·Rz(−roll)."""
    return rot_y(math.radians(yaw)) @ rot_x(-math.radians(pitch)) @ rot_z(-math.radians(roll))


def ypr_from_matrix(r: np.ndarray) -> tuple[float, float, float]:
    """Inverse of ``matrix_from_ypr``: (yaw, pitch, roll) in degrees."""
    (_, _, r02), (r10, r11, r12), (_, _, r22) = r.tolist()
    b = math.asin(max(-1.0, min(1.0, -r12)))
    a = math.atan2(r02, r22)
    c = math.atan2(r10, r11)
    return math.degrees(a), -math.degrees(b), -math.degrees(c)


def quat_from_matrix(r: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) unit quaternion with w ≥ 0."""
    tr = r[0, 0] + r[1, 1] + r[2, 2]
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        w, x, y, z = 0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        w, x, y, z = (r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s
    elif r[1, 1] > r[2, 2]:
        s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        w, x, y, z = (r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s
    else:
        s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        w, x, y, z = (r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q /= math.sqrt(float(q @ q))
    if q[3] < 0:
        q = -q
    return tuple(float(v) for v in q)


def matrix_from_quat(q: tuple[float, float, float, float] | np.ndarray) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _det3(m: list[list[float]]) -> float:
    (a, b, c), (d, e, f), (g, h, i) = m
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def kabsch_rotation(cov: list[list[float]]) -> np.ndarray:
    """The rotation R maximising trace(Rᵀ·cov), reflections excluded (Kabsch). OpenCV's 3×3
    SVD: on the tracker's per-frame path, right after the networks, numpy's costs 117 µs
    against OpenCV's 21 µs."""
    _, u, vt = cv2.SVDecomp(np.array(cov, dtype=np.float64))
    if _det3(cov) < 0:
        u[:, 2] *= -1.0
    return u @ vt


def kabsch(model: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Similarity fit ``observed ≈ s · R @ model + t`` (Umeyama, equal weights). Returns (R, s, t)."""
    mu_m = model.mean(axis=0)
    mu_o = observed.mean(axis=0)
    a = model - mu_m
    b = observed - mu_o
    cov = b.T @ a
    r = kabsch_rotation(cov.tolist())
    var_m = float(np.einsum("ij,ij->", a, a))
    s = float((r * cov).sum()) / var_m if var_m > 0 else 1.0      # trace(Rᵀ·cov) / Σ|a|²
    return r, s, mu_o - s * (r @ mu_m)


def quat_from_ypr(yaw: float, pitch: float, roll: float) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w) of ``matrix_from_ypr`` without building the matrix."""
    hy, hp, hr = math.radians(yaw) / 2, -math.radians(pitch) / 2, -math.radians(roll) / 2
    cy, sy, cp, sp, cr, sr = math.cos(hy), math.sin(hy), math.cos(hp), math.sin(hp), math.cos(hr), math.sin(hr)
    # q = qy(yaw) · qx(−pitch) · qz(−roll), multiplied out
    x, y, z, w = sp * cy, sy * cp, -sy * sp, cy * cp          # qy · qx
    x, y, z, w = x * cr + y * sr, y * cr - x * sr, w * sr + z * cr, w * cr - z * sr   # · qz
    if w < 0:
        x, y, z, w = -x, -y, -z, -w
    return (x, y, z, w)

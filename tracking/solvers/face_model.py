"""The neutral 3D face the head-pose fit aligns to.

``face_model.npz`` holds 468 points in the person frame (metres, X the person's left,
Y up, Z out of the face; origin at the centroid of the rigid points). It is the
generalised-Procrustes mean of our own landmark network's 3D output on frontal real
photos shipped in packages, each also mirrored (so the model is left/right symmetric),
scaled so the outer eye corners are 90 mm apart, and oriented like the average
photographed face looking at the camera. ``tests/tools/make_face_model.py`` rebuilds it.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_FILE = Path(__file__).with_name("face_model.npz")
OUTER_EYE_DISTANCE_M = 0.090

# Points that move little with expressions: forehead and upper face outline, nose,
# eye corners, cheekbones. Lips, lids, brows and the jaw are left out of the fit.
RIGID = np.array(sorted({
    10, 338, 297, 332, 284, 251, 389, 356, 454, 109, 67, 103, 54, 21, 162, 127, 234,
    1, 2, 4, 5, 6, 168, 197, 195, 3, 248, 98, 327, 64, 294, 45, 275, 51, 281, 19, 94,
    33, 133, 362, 263, 116, 345, 123, 352, 50, 280, 101, 330, 36, 266, 205, 425,
    139, 368, 71, 301, 8, 9, 151, 337, 108,
}), dtype=np.int64)


@lru_cache(maxsize=1)
def neutral_face() -> np.ndarray:
    """(468, 3) float64 person-frame points in metres."""
    with np.load(MODEL_FILE) as data:
        return np.asarray(data["points"], dtype=np.float64)


@lru_cache(maxsize=1)
def mirror_index() -> np.ndarray:
    """(468,) the mesh's left/right permutation: point ``mirror[k]`` is point ``k``'s mirror
    image (midline points map to themselves). Read off the neutral face, which is symmetric
    by construction: each point's reflection lands on its twin."""
    pts = neutral_face()
    d = (((pts * (-1.0, 1.0, 1.0))[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2)
    mirror = d.argmin(axis=1)
    if not np.array_equal(mirror[mirror], np.arange(len(pts))):
        raise RuntimeError(f"{MODEL_FILE.name} is not left/right symmetric: rebuild it with tests/tools/make_face_model.py")
    return mirror


@lru_cache(maxsize=1)
def rest_values() -> dict[str, np.ndarray]:
    """The photographed faces' rest measurements (eye ratio, iris offsets, mouth, brows):
    the uncalibrated defaults."""
    with np.load(MODEL_FILE) as data:
        return {k: np.asarray(data[k], dtype=np.float64) for k in data.files if k != "points"}

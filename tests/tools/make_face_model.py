"""Rebuild ``tracking/solvers/face_model.npz``, the neutral face of the head-pose fit.

Run from the repo root with the project venv: ``.venv/bin/python tests/tools/make_face_model.py``.
Uses frontal real photos that ship with packages (committed in tests/data/reference):
the astronaut, Grace Hopper and four LFW faces, each also mirrored, so the mean face is
symmetric and no single person's shape dominates. The head fit's constants are fitted against
this model: after rebuilding it, run ``fit_head.py`` and then ``fit_eyes.py`` again.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from openvtuber.tracking.pipeline import FacePipeline
from openvtuber.tracking.solvers.face_model import MODEL_FILE, OUTER_EYE_DISTANCE_M, RIGID
from openvtuber.tracking.solvers.geometry import FLIP, kabsch, matrix_from_quat, quat_from_matrix, rot_x

PHOTOS = ["astro_native.jpg", "hopper_native.jpg", "lfw_001_x8.jpg", "lfw_018_x8.jpg",
          "lfw_026_x8.jpg", "lfw_036_x8.jpg"]
REF = Path(__file__).resolve().parents[1] / "data" / "reference"


def observations() -> list:
    pipe = FacePipeline(tracking=False)
    found = []
    for name in PHOTOS:
        img = cv2.imread(str(REF / name))
        for im in (img, np.ascontiguousarray(img[:, ::-1])):
            obs = pipe.process(im)
            assert obs.found, name
            found.append(obs)
    return found


def rest_statistics(found: list) -> dict[str, np.ndarray]:
    """Eye, iris, mouth and brow rest values of the photographed faces, on the new model."""
    from openvtuber.tracking.solvers import eyes, mouth
    from openvtuber.tracking.solvers.face_model import neutral_face
    from openvtuber.tracking.solvers.head import RigidFit

    neutral_face.cache_clear()
    fitter = RigidFit.measured()          # the frame the tracker measures the rest face in
    stats: dict[str, list] = {k: [] for k in ("gaze_offset_right", "gaze_offset_left", "eye_ratio_open",
                                               "mouth_gap", "mouth_width", "mouth_lift", "brow_right", "brow_left")}
    for obs in found:
        fit = fitter.fit(obs.landmarks)
        m = fit.to_model(obs.landmarks)
        for side, eye in (("right", obs.right_eye), ("left", obs.left_eye)):
            stats[f"gaze_offset_{side}"].append(eyes.iris_offset(eye.contour, eye.iris[0], side == "right"))
            stats["eye_ratio_open"].append(eyes.eye_ratio(fit.to_model(eye.contour[:16])))
        mm, bm = mouth.measure_mouth(m), mouth.measure_brows(m)
        stats["mouth_gap"].append(mm.gap)
        stats["mouth_width"].append(mm.width)
        stats["mouth_lift"].append(mm.corner_lift)
        stats["brow_right"].append(bm.right)
        stats["brow_left"].append(bm.left)
    out = {k: np.mean(v, axis=0) for k, v in stats.items()}
    out["brow_right"] = out["brow_left"] = (out["brow_right"] + out["brow_left"]) / 2
    return out


def mean_rotation(rs: list[np.ndarray]) -> np.ndarray:
    qs = np.array([quat_from_matrix(r) for r in rs])
    qs[qs @ qs[0] < 0] *= -1
    m = qs.mean(axis=0)
    return matrix_from_quat(m / np.linalg.norm(m))


def main() -> None:
    found = observations()
    shapes = [obs.landmarks.astype(np.float64) @ FLIP for obs in found]
    normed = []
    for s in shapes:
        c = s - s[RIGID].mean(axis=0)
        normed.append(c / np.sqrt((c[RIGID] ** 2).sum(axis=1).mean()))
    mean = normed[0]
    for _ in range(10):                      # generalised Procrustes
        aligned = []
        for s in normed:
            r, k, t = kabsch(s[RIGID], mean[RIGID])
            aligned.append(k * s @ r.T + t)
        mean = np.mean(aligned, axis=0)
        mean -= mean[RIGID].mean(axis=0)
        mean /= np.sqrt((mean[RIGID] ** 2).sum(axis=1).mean())
    # orient like the average photographed face: mirrored copies cancel yaw and roll
    rots = [kabsch(mean[RIGID], s[RIGID])[0] for s in shapes]
    mean = mean @ mean_rotation(rots).T
    # zero pitch: forehead (10) and chin (152) at the same depth, as in MediaPipe's canonical
    # face; the photos' own pitch depends on where each camera stood
    d = mean[10] - mean[152]
    mean = mean @ rot_x(-math.atan2(d[2], d[1])).T
    mean *= OUTER_EYE_DISTANCE_M / np.linalg.norm(mean[33] - mean[263])
    mean -= mean[RIGID].mean(axis=0)
    np.savez_compressed(MODEL_FILE, points=mean.astype(np.float32))
    rest = rest_statistics(found)
    np.savez_compressed(MODEL_FILE, points=mean.astype(np.float32),
                        **{k: np.asarray(v, dtype=np.float32) for k, v in rest.items()})
    print("rest values: " + ", ".join(f"{k}={np.round(v, 4)}" for k, v in rest.items()))
    print(f"wrote {MODEL_FILE}: eye corners x {mean[33, 0]:+.4f} / {mean[263, 0]:+.4f} m, "
          f"nose tip z {mean[1, 2]:+.4f} m, chin y {mean[152, 1]:+.4f} m")


if __name__ == "__main__":
    main()

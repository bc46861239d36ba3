"""Measure how our networks respond on the synthetic head and write
``tracking/solvers/response.json`` (the tracker's uncalibrated defaults).

Run from the repo root: ``.venv/bin/python tests/tools/fit_response.py``.

The landmark and iris networks do not report angles one to one: on the synthetic head
they read large head turns about 15% short and the iris moves less in its eye than the
eyeball geometry says. This script renders a *training* set of random poses (its own
seed; the accuracy clips in ``tracking/sources/clips.py`` are different motions) and fits
  * head yaw/pitch gains (true ≈ gain × measured, through the neutral reading),
  * the gaze gains: iris offset in eye widths per unit sine of the gaze angle, and the
    parallax of the cornea: offset per unit sine of the (measured) head angle,
  * the lid ratio of a closed eye as a fraction of the open one (upper quartile).
A user's calibration replaces the neutral values; the gains stay unless they set them.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from openvtuber.tracking.calibration import Calibration
from openvtuber.tracking.pipeline import FacePipeline
from openvtuber.tracking.solvers.eyes import near_eye_weight
from openvtuber.tracking.solvers.geometry import ypr_from_matrix
from openvtuber.tracking.sources.synthetic import FacePose, SyntheticFace
from openvtuber.tracking.tracker import FaceTracker

OUT = Path(__file__).resolve().parents[2] / "tracking" / "solvers" / "response.json"


def measure(tracker: FaceTracker, face: SyntheticFace, pose: FacePose):
    for _ in range(3):                       # let the tracking crop settle on the pose
        image, _ = face.render(pose)
        obs = tracker.pipeline.process(image)
    return tracker.measure(obs)


def main() -> None:
    rng = np.random.default_rng(2024)
    face = SyntheticFace(seed=11)
    # raw measurements only: no defaults from the response file this script writes
    tracker = FaceTracker(pipeline=FacePipeline(tracking=True), calibration=Calibration())
    neutral = measure(tracker, face, FacePose())
    n_inv = neutral.pose.rotation.T

    def relative(raw) -> tuple[float, float, float]:
        """The turn from neutral as the tracker computes it (neutral head's own axes)."""
        return ypr_from_matrix(n_inv @ raw.pose.rotation)

    head, gaze_x, gaze_y, closed = [], [], [], []
    for _ in range(160):
        p = FacePose(yaw=rng.uniform(-40, 40), pitch=rng.uniform(-25, 25), roll=rng.uniform(-25, 25))
        g = (rng.uniform(-25, 25), rng.uniform(-18, 18))
        p.gaze_left_yaw = p.gaze_right_yaw = g[0]
        p.gaze_left_pitch = p.gaze_right_pitch = g[1]
        raw = measure(tracker, face, p)
        if raw is None:
            continue
        r_yaw, r_pitch, _ = relative(raw)
        head.append((p.yaw, p.pitch, r_yaw, r_pitch))
        w = near_eye_weight(r_yaw)
        ox = w * (raw.right.offset[0] - neutral.right.offset[0]) + (1 - w) * (raw.left.offset[0] - neutral.left.offset[0])
        oy = w * (raw.right.offset[1] - neutral.right.offset[1]) + (1 - w) * (raw.left.offset[1] - neutral.left.offset[1])
        gaze_x.append((math.sin(math.radians(g[0])), math.sin(math.radians(r_yaw)), ox))
        gaze_y.append((math.sin(math.radians(g[1])), math.sin(math.radians(r_pitch)), oy))
    for _ in range(20):
        p = FacePose(yaw=rng.uniform(-30, 30), pitch=rng.uniform(-20, 20))
        open_raw = measure(tracker, face, p)
        p.eye_close_left = p.eye_close_right = 1.0
        shut_raw = measure(tracker, face, p)
        if open_raw is not None and shut_raw is not None:
            closed.append(shut_raw.right.ratio / open_raw.right.ratio)
            closed.append(shut_raw.left.ratio / open_raw.left.ratio)
    h = np.array(head)
    fit = lambda x, y: float((x * y).sum() / (x * x).sum())  # noqa: E731  least squares through 0
    gx, gy = np.array(gaze_x), np.array(gaze_y)
    head_gain = [fit(h[:, 2], h[:, 0]), fit(h[:, 3], h[:, 1])]
    # offset = gain · sin(gaze) + parallax · sin(head angle): the cornea stands in front of the
    # eye corners, so turning the head moves the iris in the eye's image even at fixed gaze
    (ax, bx), _, _, _ = np.linalg.lstsq(gx[:, :2], gx[:, 2], rcond=None)
    (ay, by), _, _, _ = np.linalg.lstsq(gy[:, :2], gy[:, 2], rcond=None)
    result = {
        "head_gain": [round(v, 4) for v in head_gain],
        "gaze_gain": [round(float(ax), 4), round(float(ay), 4)],
        "gaze_parallax": [round(float(bx), 4), round(float(by), 4)],
        # upper quartile: a shut eye should read shut at most poses, not just at the median one
        "eye_closed_fraction": round(float(np.percentile(closed, 75)), 4),
        "eye_closed_fraction_spread": [round(float(v), 4) for v in np.percentile(closed, [10, 50, 90])],
        "samples": {"head": len(h), "closed": len(closed)},
        "source": "tests/tools/fit_response.py on the synthetic head (training poses, seed 2024)",
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

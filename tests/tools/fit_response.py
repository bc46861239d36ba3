"""Measure how our networks respond on the synthetic head and write
``tracking/solvers/response.json`` (the tracker's uncalibrated defaults).

Run from the repo root: ``.venv/bin/python tests/tools/fit_response.py``.

The landmark and iris networks do not report angles one to one: on the synthetic head
the landmarks move too little in depth when the head turns (turns read short) and the
iris moves less in its eye than the eyeball geometry says. This script renders *training*
motions (its own seed and periods; the accuracy clips in ``tracking/sources/clips.py``
are different motions) and fits
  * the head's depth gain: the stretch of the landmarks' depth before the rigid fit that
    gives the smallest mean angle error over a continuous training sweep (a grid; one
    number, applied to the points, so no coupling of Euler angles),
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
from openvtuber.tracking.sources.clips import _sin
from openvtuber.tracking.sources.synthetic import FacePose, SyntheticFace
from openvtuber.tracking.tracker import FaceTracker

OUT = Path(__file__).resolve().parents[2] / "tracking" / "solvers" / "response.json"


def measure(tracker: FaceTracker, face: SyntheticFace, pose: FacePose):
    for _ in range(3):                       # let the tracking crop settle on the pose
        image, _ = face.render(pose)
        obs = tracker.pipeline.process(image)
    return tracker.measure(obs)


def _sweep_pose(i: int) -> FacePose:
    """The training sweep: a little wider than the accuracy clip, other periods and phases."""
    t = i / 30.0
    return FacePose(yaw=48 * _sin(t, 5.3, 0.4), pitch=32 * _sin(t, 3.7, 1.0), roll=32 * _sin(t, 6.1, 2.0),
                    x=0.05 * _sin(t, 8.3, 0.3), y=0.04 * _sin(t, 6.9, 1.3), z=0.62 + 0.1 * _sin(t, 9.7, 0.5))


def _gaze_training_pose(i: int) -> tuple[FacePose, tuple[float, float]]:
    """Eyes ±25° yaw, ±18° pitch with the head turning ±35°, pitching ±20°, rolling ±15°:
    periods and phases unlike the accuracy clip's gaze sweep."""
    t = i / 30.0
    g = (25.0 * _sin(t, 2.7, 0.2), 18.0 * _sin(t, 3.3, 1.9))
    p = FacePose(yaw=35.0 * _sin(t, 6.3, 0.9), pitch=20.0 * _sin(t, 5.1, 0.1), roll=15.0 * _sin(t, 7.3, 1.4),
                 gaze_left_yaw=g[0], gaze_right_yaw=g[0], gaze_left_pitch=g[1], gaze_right_pitch=g[1])
    return p, g


def fit_depth_gain(face: SyntheticFace, frames: int = 1200) -> tuple[float, dict[float, float]]:
    """Track the training sweep once, then score each candidate gain on the same landmarks."""
    pipeline = FacePipeline(tracking=True)
    image, _ = face.render(FacePose())
    neutral = [pipeline.process(image) for _ in range(10)][-1]
    poses = [_sweep_pose(i) for i in range(frames)]
    seen = []
    for p in poses:
        obs = pipeline.process(face.render(p)[0])
        if obs.found:
            seen.append((p, obs))
    scores = {}
    for gain in np.round(np.arange(1.0, 3.01, 0.25), 2):
        tracker = FaceTracker(pipeline=pipeline, calibration=Calibration(head_depth_gain=float(gain)))
        n_inv = tracker.measure(neutral).pose.rotation.T
        err = []
        for p, obs in seen:
            raw = tracker.measure(obs)
            if raw is not None:
                got = ypr_from_matrix(n_inv @ raw.pose.rotation)
                err.append(np.abs(np.subtract(got, (p.yaw, p.pitch, p.roll))))
        scores[float(gain)] = float(np.mean(err))
    return min(scores, key=scores.get), scores


def main() -> None:
    rng = np.random.default_rng(2024)
    face = SyntheticFace(seed=11)
    depth_gain, depth_scores = fit_depth_gain(face)
    # raw measurements only: no defaults from the response file this script writes
    tracker = FaceTracker(pipeline=FacePipeline(tracking=True), calibration=Calibration(head_depth_gain=depth_gain))
    neutral = measure(tracker, face, FacePose())
    n_inv = neutral.pose.rotation.T

    def relative(raw) -> tuple[float, float, float]:
        """The turn from neutral as the tracker computes it (neutral head's own axes)."""
        return ypr_from_matrix(n_inv @ raw.pose.rotation)

    head, gaze_x, gaze_y, closed = [], [], [], []
    # a continuous training motion, tracked frame to frame as in use (settled stills read
    # the iris differently from moving eyes in a moving crop)
    for i in range(600):
        p, g = _gaze_training_pose(i)
        obs = tracker.pipeline.process(face.render(p)[0])
        raw = tracker.measure(obs)
        if raw is None:
            continue
        r_yaw, r_pitch, _ = relative(raw)
        head.append((p.yaw, p.pitch, r_yaw, r_pitch))
        w = near_eye_weight(r_yaw)
        ox = w * (raw.right.offset[0] - neutral.right.offset[0]) + (1 - w) * (raw.left.offset[0] - neutral.left.offset[0])
        oy = w * (raw.right.offset[1] - neutral.right.offset[1]) + (1 - w) * (raw.left.offset[1] - neutral.left.offset[1])
        gaze_x.append((math.sin(math.radians(g[0])), math.sin(math.radians(r_yaw)), ox))
        gaze_y.append((math.sin(math.radians(g[1])), math.sin(math.radians(r_pitch)),
                       math.sin(math.radians(r_yaw)) ** 2, oy))
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
    head_gain = [fit(h[:, 2], h[:, 0]), fit(h[:, 3], h[:, 1])]     # reported: what is left after the depth gain
    # offset = gain · sin(gaze) + parallax · sin(head angle): the cornea stands in front of the
    # eye corners, so turning the head moves the iris in the eye's image even at fixed gaze
    (ax, bx), _, _, _ = np.linalg.lstsq(gx[:, :2], gx[:, 2], rcond=None)
    # and vertically: a turned head tilts the corner line, so the iris reads higher either way
    (ay, by, cy), _, _, _ = np.linalg.lstsq(gy[:, :3], gy[:, 3], rcond=None)
    result = {
        "head_depth_gain": depth_gain,
        "head_depth_gain_scores": {str(k): round(v, 3) for k, v in depth_scores.items()},
        "head_gain_left": [round(v, 4) for v in head_gain],
        "gaze_gain": [round(float(ax), 4), round(float(ay), 4)],
        "gaze_parallax": [round(float(bx), 4), round(float(by), 4)],
        "gaze_yaw_rise": round(float(cy), 4),
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

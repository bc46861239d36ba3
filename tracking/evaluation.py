"""The tracker on synthetic clips with known answers: signs, timing and relations.

Used by ``tests/test_accuracy.py`` and by ``openvtuber accuracy`` (the report). Every figure
compares ``FaceState`` with the renderer's commanded pose. The synthetic head's mesh is the
landmark network's own output on one photo, so on it the network mostly agrees with itself:
these clips check shape (signs, how each output follows its input, blinks, timing), never
accuracy, and no constant is fitted on them. Accuracy is measured on real faces
(``real_faces``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .calibration import Calibration
from .sources.clips import blink_clip, gaze_sweep, head_sweep, leave_and_return, static_clip
from .sources.synthetic import FacePose, SyntheticFace
from .state import FaceState
from .tracker import FaceTracker, TrackerOptions


def run_clip(poses: list[FacePose], tracker: FaceTracker | None = None, fps: float = 30.0,
             noise: float = 0.0, seed: int = 0) -> tuple[list[FaceState], list[float]]:
    """Render and track a clip. Returns the states and the solver+filter ms per frame."""
    tracker = tracker or FaceTracker()
    face = SyntheticFace(noise=noise, seed=seed)
    states, solver_ms = [], []
    for i, pose in enumerate(poses):
        image, _ = face.render(pose)
        obs = tracker.pipeline.process(image)
        t0 = time.perf_counter()
        states.append(tracker.update(obs, i / fps, i))
        solver_ms.append((time.perf_counter() - t0) * 1e3)
    return states, solver_ms


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b)))


@dataclass
class HeadReport:
    mae: dict[str, float]
    sign_errors: dict[str, int]
    found: float
    translation_corr: dict[str, float]
    corr: dict[str, float]             # each angle against its commanded value
    slope: dict[str, float]            # the read angle per commanded degree


def head_accuracy(tracker: FaceTracker | None = None, frames: int = 600) -> HeadReport:
    poses = head_sweep(frames)
    states, _ = run_clip(poses, tracker)
    ok = [i for i, s in enumerate(states) if s.found]
    mae, signs, corr, angle_corr, slope = {}, {}, {}, {}, {}
    for k in ("yaw", "pitch", "roll"):
        truth = np.array([getattr(poses[i], k) for i in ok])
        got = np.array([getattr(states[i], k) for i in ok])
        mae[k] = _mae(truth, got)
        big = np.abs(truth) > 5.0
        signs[k] = int(np.sum(np.sign(truth[big]) != np.sign(got[big])))
        angle_corr[k] = float(np.corrcoef(truth, got)[0, 1])
        slope[k] = float(np.polyfit(truth, got, 1)[0])
    for k, idx in (("x", 0), ("y", 1), ("z", 2)):
        truth = np.array([getattr(poses[i], k) for i in ok])
        got = np.array([states[i].translation[idx] for i in ok])
        corr[k] = float(np.corrcoef(truth, got)[0, 1])
    return HeadReport(mae, signs, len(ok) / len(states), corr, angle_corr, slope)


@dataclass
class GazeReport:
    mae: dict[str, float]
    sign_errors: dict[str, int]
    corr: dict[str, float]


def gaze_accuracy(tracker: FaceTracker | None = None, frames: int = 450) -> GazeReport:
    poses = gaze_sweep(frames)
    states, _ = run_clip(poses, tracker)
    mae, signs, corr = {}, {}, {}
    for side in ("left", "right"):
        for ax in ("yaw", "pitch"):
            k = f"gaze_{side}_{ax}"
            truth = np.array([getattr(p, k) for p in poses])
            got = np.array([getattr(s, k) for s in states])
            mae[k] = _mae(truth, got)
            big = np.abs(truth) > 5.0
            signs[k] = int(np.sum(np.sign(truth[big]) != np.sign(got[big])))
            corr[k] = float(np.corrcoef(truth, got)[0, 1])
    return GazeReport(mae, signs, corr)


@dataclass
class BlinkReport:
    accuracy: float
    blink_minima: list[float]          # the closing eye's lowest openness in each event
    wrong_eye_winks: int               # winks where the open eye dipped below 0.5
    false_in_look_down: int            # frames of the look-down read as closed
    frames: int


def blink_accuracy(tracker: FaceTracker | None = None) -> BlinkReport:
    clip = blink_clip()
    states, _ = run_clip(clip.poses, tracker)
    correct = total = 0
    for p, s in zip(clip.poses, states):
        for truth, got in ((p.eye_close_right, s.eye_open_right), (p.eye_close_left, s.eye_open_left)):
            correct += (truth >= 0.5) == (got < 0.5)
            total += 1
    minima, wrong = [], 0
    for start, end, kind in clip.blinks:
        window = states[start:end + 2]
        if kind in ("both", "right"):
            minima.append(min(s.eye_open_right for s in window))
        if kind in ("both", "left"):
            minima.append(min(s.eye_open_left for s in window))
        if kind == "left":
            wrong += any(s.eye_open_right < 0.5 for s in window)
        if kind == "right":
            wrong += any(s.eye_open_left < 0.5 for s in window)
    a, b = clip.look_down
    false = sum(1 for s in states[a:b] if min(s.eye_open_left, s.eye_open_right) < 0.5)
    return BlinkReport(correct / total, minima, wrong, false, len(states))


@dataclass
class JitterReport:
    angle_std: dict[str, float]
    openness_std: dict[str, float]


def static_jitter(tracker: FaceTracker | None = None, noise: float = 2.0, frames: int = 150) -> JitterReport:
    states, _ = run_clip(static_clip(frames), tracker, noise=noise, seed=3)
    settled = states[30:]                       # after the filters settle
    return JitterReport({k: float(np.std([getattr(s, k) for s in settled])) for k in ("yaw", "pitch", "roll")},
                        {k: float(np.std([getattr(s, k) for s in settled]))
                         for k in ("eye_open_left", "eye_open_right")})


@dataclass
class LossReport:
    max_step: float            # largest frame-to-frame change of any head angle (degrees)
    refound_after: int         # frames after reappearing until found
    neutral_at_end_of_loss: float   # largest |angle| on the last frame out of view


def loss_and_return(tracker: FaceTracker | None = None) -> LossReport:
    poses, (first, last) = leave_and_return()
    states, _ = run_clip(poses, tracker)
    ang = np.array([[s.yaw, s.pitch, s.roll] for s in states])
    steps = np.abs(np.diff(ang, axis=0)).max()
    back = next((i for i in range(last + 1, len(states)) if states[i].found), len(states)) - (last + 1)
    return LossReport(float(steps), back, float(np.abs(ang[last]).max()))


def default_tracker(calibration: Calibration | None = None) -> FaceTracker:
    return FaceTracker(calibration=calibration, options=TrackerOptions())


def calibrated_tracker(frames: int = 30) -> FaceTracker:
    """A tracker calibrated as a user would: ~1 s of a neutral face looking at the camera."""
    tracker = default_tracker()
    tracker.calibrate(frames)
    run_clip([FacePose()] * (frames + 5), tracker)
    assert tracker.calibration.calibrated
    tracker.filter.reset()
    tracker._last_out = None
    return tracker

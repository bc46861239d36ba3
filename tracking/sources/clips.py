"""Scripted synthetic clips with known answers, for accuracy tests and reports.

Each function returns the commanded ``FacePose`` per frame (30 fps unless said), built
from smooth curves with incommensurate periods so poses combine, deterministic from a
seed. Rendering them with ``SyntheticFace`` gives frames whose ground truth is the pose.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .synthetic import FacePose

FPS = 30.0


def _sin(t: float, period: float, phase: float = 0.0) -> float:
    return math.sin(2.0 * math.pi * t / period + phase)


def head_sweep(frames: int = 600, fps: float = FPS) -> list[FacePose]:
    """Yaw ±45°, pitch ±30°, roll ±30° in combination, with a drift of the head; starts
    neutral (the tracker first meets the face looking at the camera, as a user sits down)."""
    out = []
    for i in range(frames):
        t = i / fps
        out.append(FacePose(yaw=45.0 * _sin(t, 6.7), pitch=30.0 * _sin(t, 4.3),
                            roll=30.0 * _sin(t, 5.3), x=0.06 * _sin(t, 9.1),
                            y=0.03 * _sin(t, 7.7), z=0.6 + 0.08 * _sin(t, 8.3)))
    return out


def gaze_sweep(frames: int = 450, fps: float = FPS) -> list[FacePose]:
    """Gaze ±20° yaw, ±15° pitch (both eyes together, as eyes move), head turned up to ±25°."""
    out = []
    for i in range(frames):
        t = i / fps
        gy, gp = 20.0 * _sin(t, 3.1), 15.0 * _sin(t, 2.3, 0.7)
        out.append(FacePose(yaw=25.0 * _sin(t, 7.9, 0.3), pitch=15.0 * _sin(t, 6.1, 1.1),
                            roll=10.0 * _sin(t, 8.9), gaze_left_yaw=gy, gaze_right_yaw=gy,
                            gaze_left_pitch=gp, gaze_right_pitch=gp))
    return out


@dataclass
class BlinkClip:
    poses: list[FacePose]
    blinks: list[tuple[int, int, str]] = field(default_factory=list)   # (first, last frame, "both"/"left"/"right")
    look_down: tuple[int, int] = (0, 0)                                  # frames of the 25° look-down


def blink_clip(seed: int = 0, fps: float = FPS) -> BlinkClip:
    """20 blinks of 100–200 ms, 6 winks per side, and a 25° look-down with open eyes; the
    head moves gently throughout. A blink closes over ~40% of its length, stays shut
    briefly, then opens, as measured blinks do."""
    rng = np.random.default_rng(seed)
    kinds = ["both"] * 20 + ["left"] * 6 + ["right"] * 6
    rng.shuffle(kinds)
    events = []
    frame = 20
    for kind in kinds:
        length = int(round(rng.uniform(0.100, 0.200) * fps)) + 1
        events.append((frame, frame + length - 1, kind))
        frame += length + int(rng.integers(12, 25))
    look_start = frame + 10
    total = look_start + 60 + 20
    closure = np.zeros((total, 2))          # (right, left)
    for start, end, kind in events:
        n = end - start + 1
        for k in range(n):
            u = (k + 0.5) / n                   # 0..1 through the blink
            c = min(1.0, 2.6 * u) if u < 0.5 else min(1.0, 2.6 * (1.0 - u))
            if kind in ("both", "right"):
                closure[start + k, 0] = c
            if kind in ("both", "left"):
                closure[start + k, 1] = c
    poses = []
    for i in range(total):
        t = i / fps
        down = 0.0
        if look_start <= i < look_start + 60:
            u = (i - look_start) / 60
            down = -25.0 * min(1.0, 4 * u, 4 * (1 - u)) if u < 1 else 0.0
        poses.append(FacePose(yaw=8.0 * _sin(t, 5.0), pitch=down + 4.0 * _sin(t, 4.1), roll=3.0 * _sin(t, 6.3),
                              eye_close_right=float(closure[i, 0]), eye_close_left=float(closure[i, 1])))
    return BlinkClip(poses, events, (look_start, look_start + 60))


def static_clip(frames: int = 150) -> list[FacePose]:
    """A still, neutral face (add pixel noise when rendering)."""
    return [FacePose(yaw=10.0, pitch=-5.0, roll=3.0) for _ in range(frames)]


def leave_and_return(fps: float = FPS) -> tuple[list[FacePose], tuple[int, int]]:
    """A turned face that leaves the frame for 1 s and comes back. Returns the poses and the
    (first, last) frame when it is out of view."""
    poses = []
    for i in range(150):
        gone = 40 <= i < 40 + int(fps)
        poses.append(FacePose(yaw=20.0, pitch=8.0, roll=-5.0, x=0.9 if gone else 0.0))
    return poses, (40, 40 + int(fps) - 1)

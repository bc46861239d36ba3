"""``FaceState``: everything the tracker knows about the person on one frame.

Angles are degrees about the tracked person, unmirrored (DESIGN.md "Conventions"):
yaw > 0 turning to their own left, pitch > 0 looking up, roll > 0 the top of the head
tilting to their own left shoulder; gaze uses the same signs, relative to the head.
The rotation quaternion (x, y, z, w) lives in the *person frame*: X toward the person's
own left, Y up, Z out of their face toward the camera (right-handed) — the frame of an
MMD model in three.js, so it can be applied to an avatar as it is (before mirroring).
It equals Ry(yaw) · Rx(−pitch) · Rz(−roll).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

VOWELS = ("a", "i", "u", "e", "o")


@dataclass
class FaceState:
    t: float | None
    frame: int
    found: bool = False
    valid: bool = False        # the values mean something: a face now, or held/eased after a loss
    confidence: float = 0.0
    rotation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    translation: tuple[float, float, float] | None = None   # metres, camera space (x right, y down, z ahead)
    gaze_left_yaw: float = 0.0
    gaze_left_pitch: float = 0.0
    gaze_right_yaw: float = 0.0
    gaze_right_pitch: float = 0.0
    eye_open_left: float = 1.0
    eye_open_right: float = 1.0
    mouth_open: float = 0.0
    vowels: dict[str, float] = field(default_factory=lambda: dict.fromkeys(VOWELS, 0.0))
    smile: float = 0.0
    brow_left: float = 0.0
    brow_right: float = 0.0
    path: str | None = None
    landmarks: np.ndarray | None = None   # raw (478, 3) pixels, for debugging

    def record_values(self) -> dict[str, float | None]:
        """The solver values under the ``--jsonl`` keys."""
        x, y, z = self.translation if self.translation is not None else (None, None, None)
        out: dict[str, float | None] = {
            "yaw": self.yaw, "pitch": self.pitch, "roll": self.roll, "x": x, "y": y, "z": z,
            "gaze_left_yaw": self.gaze_left_yaw, "gaze_left_pitch": self.gaze_left_pitch,
            "gaze_right_yaw": self.gaze_right_yaw, "gaze_right_pitch": self.gaze_right_pitch,
            "eye_open_left": self.eye_open_left, "eye_open_right": self.eye_open_right,
            "mouth_open": self.mouth_open, "smile": self.smile,
            "brow_left": self.brow_left, "brow_right": self.brow_right,
        }
        out.update({f"vowel_{v}": w for v, w in self.vowels.items()})
        return out

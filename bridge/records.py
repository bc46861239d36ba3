"""The ``--jsonl`` tracking record: one flat JSON object per source frame.

Keys and meaning are fixed by DESIGN.md ("Tracking output"); scripts outside the
project read them, so this list only ever grows. Values the solvers do not fill yet
are ``null``.
"""
from __future__ import annotations

import json
import math
from typing import Any, TextIO

import numpy as np

from ..tracking.pipeline import FaceObservation
from ..tracking.sources.base import Frame

RECORD_KEYS = (
    "frame", "t", "path", "found", "confidence",
    "yaw", "pitch", "roll", "x", "y", "z",
    "gaze_left_yaw", "gaze_left_pitch", "gaze_right_yaw", "gaze_right_pitch",
    "eye_open_left", "eye_open_right", "mouth_open",
    "vowel_a", "vowel_i", "vowel_u", "vowel_e", "vowel_o", "smile", "brow_left", "brow_right",
)


def _num(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return round(v, 6) if math.isfinite(v) else None


def landmark_list(obs: FaceObservation) -> list[list[float]] | None:
    """468 face points, then the person's right iris (5) and left iris (5): MediaPipe's
    478-point order (468 = right iris centre, 473 = left iris centre)."""
    if not obs.found or obs.landmarks is None:
        return None
    pts = [obs.landmarks]
    for eye in (obs.right_eye, obs.left_eye):
        if eye is not None:
            pts.append(eye.iris)
    return np.round(np.concatenate(pts), 2).tolist()


def make_record(frame: Frame, obs: FaceObservation | None, landmarks: bool = False,
                values: dict[str, Any] | None = None) -> dict[str, Any]:
    """One record; ``obs`` None means the frame was dropped (bad frame). ``values`` carries
    solver outputs keyed by record key."""
    rec: dict[str, Any] = dict.fromkeys(RECORD_KEYS)
    rec["frame"] = frame.index
    rec["t"] = _num(frame.t)
    rec["path"] = frame.path
    rec["found"] = bool(obs is not None and obs.found)
    rec["confidence"] = _num(obs.confidence) if obs is not None else 0.0
    for k, v in (values or {}).items():
        if k in rec and k not in ("frame", "t", "path", "found", "confidence"):
            rec[k] = _num(v)
    if landmarks:
        rec["landmarks"] = landmark_list(obs) if obs is not None else None
    return rec


class JsonlWriter:
    def __init__(self, stream: TextIO):
        self.stream = stream
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.count += 1

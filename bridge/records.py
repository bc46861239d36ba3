"""The ``--jsonl`` tracking record: one flat JSON object per source frame.

Keys and meaning are fixed by DESIGN.md ("Tracking output"); scripts outside the
project read them, so this list only ever grows. Values are ``null`` until a face was
seen; after a loss they hold, then ease to neutral, while ``found`` is false.
"""
from __future__ import annotations

import json
import math
from typing import Any, TextIO

import numpy as np

from ..tracking.sources.base import Frame
from ..tracking.state import FaceState

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


def make_record(frame: Frame, state: FaceState, landmarks: bool = False) -> dict[str, Any]:
    """One record of the tracker's output for ``frame``. ``found``/``confidence`` are the
    tracker's (a crop the solvers reject is not a face); values are null until a face was
    seen. ``landmarks``: 468 face points, then the person's right iris (5) and left iris (5),
    MediaPipe's 478-point order (468 = right iris centre, 473 = left iris centre)."""
    rec: dict[str, Any] = dict.fromkeys(RECORD_KEYS)
    rec["frame"] = frame.index
    rec["t"] = _num(frame.t)
    rec["path"] = frame.path
    rec["found"] = bool(state.found)
    rec["confidence"] = _num(state.confidence)
    if state.valid:
        for k, v in state.record_values().items():
            rec[k] = _num(v)
    if landmarks:
        rec["landmarks"] = np.round(state.landmarks, 2).tolist() if state.landmarks is not None else None
    return rec


class JsonlWriter:
    def __init__(self, stream: TextIO):
        self.stream = stream
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.count += 1

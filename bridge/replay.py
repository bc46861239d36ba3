"""Replay a ``--jsonl`` recording as ``FaceState`` with its original timing.

Lines that are not JSON objects, or whose values are not numbers, are skipped and
counted; the file is read lazily, so a long recording starts at once.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Iterator

from ..tracking.sources.base import SourceError, SourceStats
from ..tracking.state import VOWELS, FaceState
from ..tracking.solvers.geometry import quat_from_ypr

_FLOATS = ("yaw", "pitch", "roll", "gaze_left_yaw", "gaze_left_pitch", "gaze_right_yaw", "gaze_right_pitch",
           "eye_open_left", "eye_open_right", "mouth_open", "smile", "brow_left", "brow_right")


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")        # json accepts NaN/Infinity tokens; we do not


def state_from_record(rec: dict) -> FaceState:
    """A ``FaceState`` from one record; raises ValueError on malformed values."""
    if not isinstance(rec, dict):
        raise ValueError("not a JSON object")
    frame, t = rec.get("frame"), rec.get("t")
    if not isinstance(frame, int) or isinstance(frame, bool) or \
            (t is not None and (not isinstance(t, (int, float)) or not math.isfinite(t))):
        raise ValueError("frame/t missing or not numbers")
    st = FaceState(t=None if t is None else float(t), frame=frame, found=bool(rec.get("found")),
                   confidence=float(rec.get("confidence") or 0.0), path=rec.get("path"))
    if rec.get("yaw") is None:
        return st                                  # no values: nothing seen yet
    for key in _FLOATS:
        v = rec.get(key)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{key} is not a number")
        setattr(st, key, float(v))
    st.vowels = {}
    for v in VOWELS:
        x = rec.get(f"vowel_{v}")
        if x is not None and (isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x)):
            raise ValueError(f"vowel_{v} is not a number")
        st.vowels[v] = float(x or 0.0)
    if all(isinstance(rec.get(k), (int, float)) and math.isfinite(rec[k]) for k in ("x", "y", "z")):
        st.translation = (float(rec["x"]), float(rec["y"]), float(rec["z"]))
    st.rotation = quat_from_ypr(st.yaw, st.pitch, st.roll)
    st.valid = True
    return st


class ReplaySource:
    """Iterates the recording's states; with ``realtime`` it sleeps to keep the original pace."""

    independent_frames = False

    def __init__(self, path: str | Path, realtime: bool = True, loop: bool = False):
        self.path = Path(path)
        self.name = f"replay {self.path.name}"
        self.stats = SourceStats()
        self.realtime = realtime
        self.loop = loop
        if not self.path.is_file():
            raise SourceError(f"recording {self.path} not found: record one with openvtuber track SOURCE --jsonl FILE")
        self._closed = False

    def __iter__(self) -> Iterator[FaceState]:
        index = 0
        offset = 0.0
        while not self._closed:
            start_wall, first_t, last_t, any_line = time.monotonic(), None, 0.0, False
            with self.path.open("r", encoding="utf-8", errors="replace") as f:
                for line_no, line in enumerate(f, 1):
                    if self._closed:
                        return
                    if not line.strip():
                        continue
                    try:
                        st = state_from_record(json.loads(line, parse_constant=_no_constant))
                    except (ValueError, TypeError, json.JSONDecodeError) as e:
                        self.stats.skip(f"{self.path.name}:{line_no}: skipped ({e})")
                        continue
                    any_line = True
                    t = st.t if st.t is not None else index / 30.0
                    first_t = t if first_t is None else first_t
                    if self.realtime:                       # short sleeps: close() is heard quickly
                        due = start_wall + (t - first_t)
                        while not self._closed and (wait := due - time.monotonic()) > 0:
                            time.sleep(min(wait, 0.1))
                    last_t = t - first_t
                    st.t = offset + last_t
                    st.frame = index
                    index += 1
                    yield st
            if not self.loop or not any_line:
                return
            offset += last_t + 1.0 / 30.0

    def close(self) -> None:
        self._closed = True

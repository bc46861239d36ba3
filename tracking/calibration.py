"""Calibration: the user's neutral face, so "at rest" means *their* rest.

``Calibration`` holds the neutral head rotation, each eye's open lid ratio (the closed
ratio follows as a measured fraction of it, since a neutral face shows no closed eyes),
where each iris sits when looking at the camera, and the rest mouth and brows: the user's
own values only. The networks' constants (``solvers/response.py``) are never stored here,
so an old file cannot pin old constants; keys older versions wrote are ignored on load.
Uncalibrated defaults come from the neutral face model. ``FaceTracker.calibrate`` takes the
median of ~1 s of frames; the result is saved as a small JSON file in the user config folder
and loaded by every later run.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .solvers.face_model import rest_values

FILE_NAME = "calibration.json"


def config_dir() -> Path:
    """The user config folder (``OPENVTUBER_CONFIG_DIR`` overrides, for tests and portable installs)."""
    env = os.environ.get("OPENVTUBER_CONFIG_DIR")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("openvtuber", appauthor=False))


@dataclass
class Calibration:
    neutral_rotation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    eye_open_right: float = 0.0
    eye_open_left: float = 0.0
    gaze_right: tuple[float, float] = (0.0, 0.0)     # iris offset in the eye when looking at the camera
    gaze_left: tuple[float, float] = (0.0, 0.0)
    mouth_gap: float = 0.0
    mouth_width: float = 0.0
    mouth_lift: float = 0.0
    brow_right: float = 0.0
    brow_left: float = 0.0
    calibrated: bool = False
    frames: int = 0
    extra: dict = field(default_factory=dict)

    @classmethod
    def default(cls) -> "Calibration":
        r = rest_values()
        ratio = float(r["eye_ratio_open"])
        return cls(eye_open_right=ratio, eye_open_left=ratio,
                   gaze_right=tuple(float(v) for v in r["gaze_offset_right"]),
                   gaze_left=tuple(float(v) for v in r["gaze_offset_left"]),
                   mouth_gap=float(r["mouth_gap"]), mouth_width=float(r["mouth_width"]),
                   mouth_lift=float(r["mouth_lift"]), brow_right=float(r["brow_right"]),
                   brow_left=float(r["brow_left"]))

    # ---- persistence -------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        """Validate a loaded dict: unknown keys (among them the network constants older versions
        stored) ignored, wrong types or values rejected."""
        base = cls.default()
        out = asdict(base)
        for key, default in out.items():
            if key not in data:
                continue
            v = data[key]
            if isinstance(default, tuple):
                if not (isinstance(v, list) and len(v) == len(default)
                        and all(isinstance(x, (int, float)) and math.isfinite(x) for x in v)):
                    raise ValueError(f"calibration key {key!r} must be a list of {len(default)} numbers")
                v = tuple(float(x) for x in v)
            elif isinstance(default, bool):
                v = bool(v)
            elif isinstance(default, (int, float)):
                if not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise ValueError(f"calibration key {key!r} must be a finite number")
                v = type(default)(v)
            out[key] = v
        q = np.array(out["neutral_rotation"])
        if not 0.9 < np.linalg.norm(q) < 1.1:
            raise ValueError("calibration key 'neutral_rotation' must be a unit quaternion (x, y, z, w)")
        out["neutral_rotation"] = tuple(float(v) for v in q / np.linalg.norm(q))
        return cls(**out)

    def save(self, path: Path | None = None) -> Path:
        path = path or config_dir() / FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path | None = None) -> "Calibration":
        """The saved calibration, or the defaults when there is none. A damaged file raises
        ``ValueError`` naming the file."""
        path = path or config_dir() / FILE_NAME
        if not path.is_file():
            return cls.default()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return cls.from_dict(data)
        except (ValueError, OSError) as e:
            raise ValueError(f"calibration file {path} is unreadable ({e}): delete it or recalibrate") from None

"""How the landmark networks respond on real faces: constants shared by every user.

``response.json`` holds them, each written by a tool that measured it on real faces (its
``*_source`` entry says which and on what). They describe the networks, not the person, so
they are never stored in a user's calibration: a calibration saved last month must not pin
last month's constants.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

RESPONSE_FILE = Path(__file__).with_name("response.json")


@dataclass(frozen=True)
class HeadResponse:
    """The rigid head fit (``head.RigidFit``): ``weights`` per face-mesh point, the neutral
    face's pitch against real faces' zero, the depth scale, and the yaw response past the
    knee (degrees past ``yaw_knee`` scaled by 1 + ``yaw_gain``). ``tests/tools/fit_head.py``."""

    weights: tuple[float, ...] | None = None      # None: every point counts the same
    model_pitch: float = 0.0
    depth_gain: float = 1.0
    yaw_knee: float = 90.0
    yaw_gain: float = 0.0


@dataclass(frozen=True)
class EyeResponse:
    """``closed_fraction``: the lid ratio (over the open ratio) that counts as shut;
    ``gaze_gain``: the iris offset (eye widths, yaw and pitch) of a 90° eye turn;
    ``gaze_parallax``: the vertical offset per unit sine of the head's pitch as the camera sees
    it (the iris stands in front of the eye corners); ``gaze_yaw_rise``: the vertical offset per
    unit sine² of its yaw (a turned head tilts the corner line);
    ``ratio_near``/``ratio_far``: an open eye's lid ratio (over a frontal one's) at the head
    yaws ``ratio_yaw``, for the eye turned toward and away from the camera; ``lean``: the yaws
    between which the far eye's openness comes to rest on the near eye's (``eyes``).
    ``tests/tools/fit_eyes.py``."""

    closed_fraction: float = 0.4
    gaze_gain: tuple[float, float] = (0.4, 0.4)
    gaze_parallax: float = 0.0
    gaze_yaw_rise: float = 0.0
    ratio_yaw: tuple[float, ...] = (0.0, 90.0)
    ratio_near: tuple[float, ...] = (1.0, 1.0)
    ratio_far: tuple[float, ...] = (1.0, 1.0)
    lean: tuple[float, float] = (30.0, 45.0)


@dataclass(frozen=True)
class Response:
    head: HeadResponse
    eyes: EyeResponse


def read_entries() -> dict:
    """``response.json`` as it is on disk (for the tools that measure and rewrite it)."""
    return json.loads(RESPONSE_FILE.read_text(encoding="utf-8"))


def write_entries(entries: dict) -> None:
    """Rewrite ``response.json``, the 468 head weights on one line at the end."""
    entries = dict(entries)
    weights = json.dumps(entries.pop("head_weights"))
    RESPONSE_FILE.write_text(json.dumps(entries, indent=1)[:-2] + f',\n "head_weights": {weights}\n}}\n',
                             encoding="utf-8")


@lru_cache(maxsize=1)
def network_response() -> Response:
    """The measured constants (read once)."""
    d = read_entries()
    head = HeadResponse(tuple(float(v) for v in d["head_weights"]), float(d["head_model_pitch"]),
                        float(d["head_depth_gain"]), float(d["head_yaw_knee"]), float(d["head_yaw_gain"]))
    floats = lambda key: tuple(float(v) for v in d[key])  # noqa: E731
    eyes = EyeResponse(float(d["eye_closed_fraction"]), floats("gaze_gain"), float(d["gaze_parallax"]),
                       float(d["gaze_yaw_rise"]), floats("eye_ratio_yaw"),
                       floats("eye_ratio_near"), floats("eye_ratio_far"), floats("eye_lean"))
    return Response(head, eyes)

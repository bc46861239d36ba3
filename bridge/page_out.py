"""The page output: each ``AvatarPose`` as one compact JSON text for the page's WebSocket.

Message (DESIGN.md: MMD bone targets in three.js space as MMDLoader builds the model)::

    {"type": "pose", "t": 1.23333, "frame": 37, "found": true,
     "bones": {"頭": [x, y, z, w], ...}, "morphs": {"まばたき": 0.0, ...}}

Floats are rounded to 5 decimals (1e-5 rad ≈ 0.0006°, far below what a page shows);
non-finite numbers never reach the wire (the page would reject the whole message).
"""
from __future__ import annotations

import json
import math

from ..protocols.pose import AvatarPose


def _num(v: float, default: float = 0.0) -> float:
    v = float(v)
    return round(v, 5) if math.isfinite(v) else default


def _quat(q) -> list[float]:
    x, y, z, w = (float(c) for c in q)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(n) or n < 1e-9:
        return [0.0, 0.0, 0.0, 1.0]
    return [round(x / n, 5), round(y / n, 5), round(z / n, 5), round(w / n, 5)]


def encode_pose(pose: AvatarPose) -> str:
    msg = {"type": "pose", "t": _num(pose.t), "frame": int(pose.frame), "found": bool(pose.found),
           "bones": {str(name): _quat(q) for name, q in pose.bones.items()},
           "morphs": {str(name): min(1.0, max(0.0, _num(w))) for name, w in pose.morphs.items()}}
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class PageServerError(ValueError):
    """The page server cannot start (port taken, model or three.js missing); one line says why.

    Defined here, not in ``server.py``, so the CLI can catch it without importing aiohttp."""


class PageOutput:
    """An ``Output`` (see ``outputs.py``) that hands each pose to the page server's broadcast."""

    name = "page"

    def __init__(self, server):
        self.server = server
        self.frames = 0

    def send(self, pose: AvatarPose) -> None:
        if not self.server.clients:           # nobody watching: no JSON, no wake-ups
            return
        self.server.broadcast(encode_pose(pose))
        self.frames += 1

    def status(self) -> str:
        return self.server.status()

    def close(self) -> None:
        self.server.close()

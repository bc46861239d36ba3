"""Mouth and brows from the de-rotated face (head frame, metres).

Every value is measured against the rest face (the neutral model's, or the user's
calibration), so a naturally wide mouth or high brows do not read as an expression.
Vowels come from two numbers, as the mouth shapes them: how open (jaw) and how wide
(spread lips for I/E, rounded narrow lips for O/U).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

UPPER_INNER, LOWER_INNER = 13, 14
CORNER_RIGHT, CORNER_LEFT = 61, 291
UPPER_OUTER, LOWER_OUTER = 0, 17
BROW_RIGHT = [70, 63, 105, 66, 107, 46, 53, 52, 65, 55]
BROW_LEFT = [300, 293, 334, 296, 336, 276, 283, 282, 295, 285]
EYE_RIGHT = [33, 133, 159, 145]
EYE_LEFT = [263, 362, 386, 374]
# every face point the mouth and brow measures read (the rest need not be de-rotated)
FACE_POINTS_READ = sorted({UPPER_INNER, LOWER_INNER, CORNER_RIGHT, CORNER_LEFT, UPPER_OUTER, LOWER_OUTER,
                           *BROW_RIGHT, *BROW_LEFT, *EYE_RIGHT, *EYE_LEFT})

MOUTH_FULL_OPEN = 0.030     # inner-lip gap (m) that counts as fully open
SMILE_RAISE = 0.006         # corner lift (m) of a full smile
SMILE_WIDEN = 0.12          # relative widening of a full smile
BROW_RANGE = 0.008          # brow travel (m) that counts as fully raised or lowered
SPREAD_RANGE = 0.12         # relative width change of a full I/E spread or O/U rounding


@dataclass
class MouthMeasure:
    """Raw geometry: inner-lip gap, corner-to-corner width, corner lift over the lip centre."""

    gap: float
    width: float
    corner_lift: float


@dataclass
class BrowMeasure:
    """Brow height above its eye, per side (metres)."""

    right: float
    left: float


def measure_mouth(m: np.ndarray) -> MouthMeasure:
    gap = float(m[UPPER_INNER, 1] - m[LOWER_INNER, 1])
    width = math.hypot(m[CORNER_LEFT, 0] - m[CORNER_RIGHT, 0], m[CORNER_LEFT, 1] - m[CORNER_RIGHT, 1])
    centre_y = (m[UPPER_OUTER, 1] + m[LOWER_OUTER, 1]) / 2.0
    lift = float((m[CORNER_LEFT, 1] + m[CORNER_RIGHT, 1]) / 2.0 - centre_y)
    return MouthMeasure(max(0.0, gap), width, lift)


def _brow_weights() -> np.ndarray:
    """(468, 2) weights: brow mean minus eye mean per side, as one matrix product."""
    w = np.zeros((468, 2))
    for col, (brow, eye) in enumerate(((BROW_RIGHT, EYE_RIGHT), (BROW_LEFT, EYE_LEFT))):
        w[brow, col] += 1.0 / len(brow)
        w[eye, col] -= 1.0 / len(eye)
    return w


_BROW_W = _brow_weights()


def measure_brows(m: np.ndarray) -> BrowMeasure:
    right, left = (m[:468, 1] @ _BROW_W).tolist()
    return BrowMeasure(right, left)


def _clip(v: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return float(min(hi, max(lo, v)))


@dataclass
class MouthShape:
    open: float
    vowels: dict[str, float]
    smile: float


def mouth_shape(cur: MouthMeasure, rest: MouthMeasure) -> MouthShape:
    """Openness, vowel weights A I U E O and smile, all 0..1, relative to the rest mouth."""
    opening = _clip((cur.gap - rest.gap) / MOUTH_FULL_OPEN)
    rel_width = cur.width / rest.width if rest.width > 1e-9 else 1.0
    spread = _clip((rel_width - 1.0) / SPREAD_RANGE)
    narrow = _clip((1.0 - rel_width) / SPREAD_RANGE)
    half = _clip(2.0 * opening)
    vowels = {
        "a": opening * (1.0 - spread) * (1.0 - narrow),
        "i": spread * (1.0 - half),
        "u": narrow * (1.0 - half),
        "e": spread * half * (1.0 - opening),
        "o": narrow * half,
    }
    lift = (cur.corner_lift - rest.corner_lift) / SMILE_RAISE
    smile = _clip(0.6 * _clip(lift) + 0.4 * spread * (1.0 - opening))
    return MouthShape(opening, {k: _clip(v) for k, v in vowels.items()}, smile)


def brow_raise(cur: BrowMeasure, rest: BrowMeasure) -> tuple[float, float]:
    """(right, left) in −1 (lowered) … 1 (raised)."""
    return (_clip((cur.right - rest.right) / BROW_RANGE, -1.0, 1.0),
            _clip((cur.left - rest.left) / BROW_RANGE, -1.0, 1.0))

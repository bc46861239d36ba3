"""Eye openness and gaze, per eye.

Openness: the lid gap (three upper/lower point pairs of the iris network's eye contour)
over the eye's corner-to-corner width, measured on the de-rotated face (head frame), so a
head pitched down does not foreshorten the gap into a "blink". Mapped to 0..1 between a
closed and an open ratio (calibration sets them).

On a turned head the far eye is foreshortened and partly hidden behind the nose, and the
network reads its lids as closing: on the AFLW2000 dev set, past 40° of yaw, its ratio falls
to 0.75–0.8 of a frontal eye's while the near eye's rises to 1.2–1.4. Each eye's ratio is first
divided by what an open eye reads at that yaw (``visible_ratio``, measured on the dev set),
and past ``lean[0]`` the far eye's openness leans on the near eye's, wholly by ``lean[1]``
(``far_eye_lean``): a frontal wink still shows, a look aside does not wink.

Gaze: where the iris centre sits in its eye, in the eye's own frame (along the corner
line and across it), as a fraction of the eye's width. That is local to each eye, so an
error in the head pose does not leak into the gaze. Eyes move together, so the two eyes'
offsets are merged with weights that favour the eye turned toward the camera (the far eye
is foreshortened and its iris read is poor; past ``lean[0]`` only the near eye counts)
and ignore a closing eye; what the viewing direction alone shifts is taken off
(``view_shift``); a measured gain turns the offset into degrees, limited softly to what eyes
can do (``gaze_angles``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .response import EyeResponse

# Iris-network contour indices (same order as face-mesh points 33,7,163,144,145,153,154,155,
# 133,246,161,160,159,158,157,173 for the right eye; mirrored for the left).
OUTER, INNER = 0, 8
LOWER = [3, 4, 5]
UPPER = [11, 12, 13]


@dataclass
class EyeMeasure:
    """Raw per-eye measurement: ``ratio`` lid gap / eye width; ``offset`` the iris position in
    the eye (eye widths, toward the person's left and up), before any neutral offset."""

    ratio: float
    offset: tuple[float, float]


def eye_ratio(contour_model: np.ndarray) -> float:
    """Lid gap over eye width on a de-rotated (head-frame) contour."""
    c = contour_model[:, :2].tolist()         # plain floats: a handful of points, no array calls
    width = math.hypot(c[OUTER][0] - c[INNER][0], c[OUTER][1] - c[INNER][1])
    if width <= 1e-9:
        return 0.0
    gap = sum(c[u][1] - c[lo][1] for u, lo in zip(UPPER, LOWER)) / len(UPPER)
    return max(0.0, gap / width)


def iris_offset(contour_px: np.ndarray, iris_px: np.ndarray, right_eye: bool) -> tuple[float, float]:
    """Iris centre relative to the eye-corner midpoint, in eye widths: (toward the person's
    own left, up), in the eye's own rotated image frame."""
    (ox, oy), (ix, iy) = contour_px[OUTER, :2].tolist(), contour_px[INNER, :2].tolist()
    ux, uy = (ix - ox, iy - oy) if right_eye else (ox - ix, oy - iy)     # toward the person's left
    width = math.hypot(ux, uy)
    if width <= 1e-9:
        return 0.0, 0.0
    ux, uy = ux / width, uy / width
    px, py = iris_px[:2].tolist()
    dx, dy = px - (ox + ix) * 0.5, py - (oy + iy) * 0.5
    # "up" is u turned a quarter toward −y (image y points down)
    return (dx * ux + dy * uy) / width, (dx * uy - dy * ux) / width


def measure_eye(contour_model: np.ndarray, contour_px: np.ndarray, iris_px: np.ndarray,
                right_eye: bool) -> EyeMeasure:
    """``contour_model``: the first 16 contour points in the head frame (for the lid ratio);
    ``contour_px``/``iris_px``: the same in image pixels (for the iris offset)."""
    return EyeMeasure(eye_ratio(contour_model), iris_offset(contour_px, iris_px, right_eye))


# What eyes can do relative to the head (degrees of yaw, pitch): the comfortable range of eye
# rotation is about ±35° sideways and ±25° up and down; gaze is limited softly to it.
GAZE_LIMIT = (35.0, 25.0)
GAZE_KNEE = (25.0, 18.0)          # below these the reading passes unchanged


def visible_ratio(ratio: float, view_yaw: float, right_eye: bool, eyes: EyeResponse) -> float:
    """The lid ratio as a frontal eye would read it: divided by what an open eye reads at this
    yaw on its side (the near eye's grows, the far eye's shrinks). ``view_yaw``: the head's
    yaw as the camera sees it; yaw > 0 brings the right eye near."""
    near = (view_yaw >= 0.0) == right_eye
    table = eyes.ratio_near if near else eyes.ratio_far
    return ratio / max(0.05, _interp(abs(view_yaw), eyes.ratio_yaw, table))


def far_eye_lean(view_yaw: float, eyes: EyeResponse) -> float:
    """How much of the far eye's openness comes from the near eye: 0 up to ``lean[0]``, 1 from
    ``lean[1]`` on."""
    a, b = eyes.lean
    return min(1.0, max(0.0, (abs(view_yaw) - a) / (b - a)))


def near_eye_weight(view_yaw: float, eyes: EyeResponse) -> float:
    """Weight of the right eye's iris reading: turning to one's own left (yaw > 0) brings the
    right eye toward the camera; from ``lean[0]`` on only the near eye counts."""
    return min(1.0, max(0.0, 0.5 + 0.5 * view_yaw / eyes.lean[0]))


def view_shift(view_yaw: float, view_pitch: float, eyes: EyeResponse) -> float:
    """How far the iris seems to rise in its eye (eye widths) from the viewing direction alone:
    it stands in front of the eye corners, so seen from below or above it shifts (parallax), and
    a turned head tilts the corner line, which reads as the iris rising whichever way it turns.
    Taken off both the live offset and the calibrated neutral one, so only the eye's own turn
    is left, whatever pose the user calibrated in."""
    return (eyes.gaze_parallax * math.sin(math.radians(view_pitch))
            + eyes.gaze_yaw_rise * math.sin(math.radians(view_yaw)) ** 2)


def gaze_angles(offset: tuple[float, float], gain: tuple[float, float]) -> tuple[float, float]:
    """Offset (eye widths, neutral removed) → (yaw, pitch) degrees; ``gain`` is the offset of a
    90° turn (the iris moves with the sine of the eye's rotation). Beyond the knee the angle
    bends smoothly toward ``GAZE_LIMIT``: never more than an eye can turn, never a hard 90°."""
    out = []
    for o, g, knee, limit in zip(offset, gain, GAZE_KNEE, GAZE_LIMIT):
        a = math.degrees(math.asin(max(-1.0, min(1.0, o / g))))
        if abs(a) > knee:
            a = math.copysign(knee + (limit - knee) * math.tanh((abs(a) - knee) / (limit - knee)), a)
        out.append(a)
    return out[0], out[1]


def _interp(x: float, xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    """Piecewise-linear, held flat beyond the ends (a handful of points: plain floats)."""
    if x <= xs[0]:
        return ys[0]
    for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def openness(ratio: float, closed: float, opened: float) -> float:
    """0 closed … 1 open (as calibrated), clamped."""
    span = opened - closed
    if span <= 1e-9:
        return 1.0
    return float(min(1.0, max(0.0, (ratio - closed) / span)))

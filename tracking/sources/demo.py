"""The ``demo`` source: the synthetic head performing a scripted, looping clip.

``openvtuber run`` falls back to it when no camera is present, so a new user sees the
avatar move at once, and tests get an endless stream whose answer is known: the
performance is the pure function ``demo_pose(t)`` (talking, turning within ±35°, blinks of
120–200 ms every few seconds, gaze shifts), periodic with ``PERIOD`` seconds, smooth
everywhere including across the loop.

The source never sleeps unless asked (``realtime=True``): pacing is the consumer's job,
and tests must not wait for a wall clock.

Drawing the head costs ~7 ms a frame, a quarter of a core at 30 fps and far more than a
webcam's frame costs to decode (~0.6 ms). The clip repeats frame for frame, so a looping
source keeps each frame of its first pass as a JPEG (what a webcam's MJPEG stream
carries; ~11 MB for the 24 s at 640×480) and later passes decode it instead of drawing.
Measured with ``bench --capture``: the bridge's CPU went from 59 % to 33 % of a core and
the page, which gets that core, drew 26 frames a second instead of 22.
"""
from __future__ import annotations

import math
import time
from typing import Iterator

import cv2
import numpy as np

from .base import Frame, SourceStats
from .synthetic import FacePose, SyntheticFace

PERIOD = 24.0        # seconds; every component below repeats with this period
# (start s, duration s) of each blink: 120–200 ms, every 2–4 s
BLINKS = ((1.2, 0.15), (4.0, 0.13), (6.9, 0.18), (9.1, 0.12), (12.6, 0.16), (15.3, 0.20),
          (17.0, 0.14), (20.2, 0.17), (22.8, 0.15))
# (time s, gaze yaw °, gaze pitch °): saccade targets, each reached in ~60 ms
GAZE = ((0.0, 0.0, 0.0), (2.5, 18.0, -4.0), (5.0, 0.0, 0.0), (8.0, -20.0, 6.0),
        (10.5, 0.0, -8.0), (14.0, 15.0, 10.0), (16.5, 0.0, 0.0), (19.0, -12.0, -10.0),
        (21.5, 0.0, 0.0))
SACCADE = 0.06
JPEG_QUALITY = 90
# (start s, end s) of talking
TALK = ((0.5, 3.5), (5.5, 9.5), (11.0, 14.5), (16.0, 19.5), (20.5, 23.0))


def _smooth(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _wave(t: float, cycles: int, phase: float = 0.0) -> float:
    return math.sin(2 * math.pi * cycles * t / PERIOD + phase)


def _blink(t: float) -> float:
    """Closure 0..1: lids fall in 40 % of the blink, rise in the rest (as real blinks do)."""
    for start, dur in BLINKS:
        tau = (t - start) / dur
        if 0.0 <= tau <= 1.0:
            return _smooth(tau / 0.4) if tau < 0.4 else _smooth(1 - (tau - 0.4) / 0.6)
    return 0.0


def _gaze(t: float) -> tuple[float, float]:
    """Hold the latest target; a saccade eases in from the previous one (wraps at 0)."""
    i = max(k for k, target in enumerate(GAZE) if target[0] <= t)
    (t0, y1, p1), (_, y0, p0) = GAZE[i], GAZE[i - 1]
    k = _smooth((t - t0) / SACCADE)
    return y0 + k * (y1 - y0), p0 + k * (p1 - p0)


def _mouth(t: float) -> float:
    for start, end in TALK:
        if start <= t <= end:
            env = _smooth((t - start) / 0.15) * _smooth((end - t) / 0.15)
            syllables = 0.5 + 0.5 * math.sin(2 * math.pi * 4.5 * (t - start) - math.pi / 2)
            accent = 0.65 + 0.35 * math.sin(2 * math.pi * 1.3 * (t - start))
            return env * syllables * accent
    return 0.0


def demo_pose(t: float) -> FacePose:
    """The demo performance at source time ``t`` seconds (periodic, ``PERIOD`` s)."""
    t = t % PERIOD
    yaw = 28.0 * _wave(t, 2) + 6.0 * _wave(t, 5, 0.7)
    pitch = 12.0 * _wave(t, 3, 1.1) + 4.0 * _wave(t, 7)
    roll = 10.0 * _wave(t, 2, 2.0) + 3.0 * _wave(t, 9)
    gy, gp = _gaze(t)
    # eyes counter-rotate a little against the head, as when keeping the screen in view
    gy, gp = gy - 0.25 * yaw, gp - 0.25 * pitch
    close = _blink(t)
    return FacePose(yaw=yaw, pitch=pitch, roll=roll,
                    x=0.03 * _wave(t, 1, 0.3), y=0.015 * _wave(t, 3),
                    z=0.6 + 0.05 * _wave(t, 2, 1.3),
                    eye_close_left=close, eye_close_right=close,
                    gaze_left_yaw=gy, gaze_left_pitch=gp, gaze_right_yaw=gy, gaze_right_pitch=gp,
                    mouth_open=_mouth(t))


class DemoSource:
    """FrameSource playing ``demo_pose`` at ``fps``; ``frames=None`` and ``loop=True`` play
    forever, ``loop=False`` stops after one ``PERIOD``. Frames carry their ``GroundTruth``.
    ``cache``: a source that will loop replays its first pass from JPEGs (module docstring)."""

    name = "demo"
    independent_frames = False

    def __init__(self, fps: float = 30.0, frames: int | None = None, loop: bool = True,
                 width: int = 640, height: int = 480, seed: int = 0, realtime: bool = False,
                 noise: float = 0.0, background: object = "plain", cache: bool = True):
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        self.fps, self.frames, self.loop, self.realtime = float(fps), frames, loop, realtime
        self.width, self.height = width, height
        self._renderer_args = dict(width=width, height=height, seed=seed, noise=noise,
                                   background=background)
        self.stats = SourceStats()
        self._closed = False
        self.loop_frames = self._repeat_length() if cache else None
        self._jpegs: dict[int, np.ndarray] = {}

    def _repeat_length(self) -> int | None:
        """Frames after which the clip repeats pixel for pixel; None when it never does
        (a period that is not a whole number of frames, per-frame noise) or when this
        source will not play that far."""
        n = PERIOD * self.fps
        if self._renderer_args["noise"] or abs(n - round(n)) > 1e-6 or not self.loop:
            return None
        if self.frames is not None and self.frames <= round(n):
            return None
        return int(round(n))

    @property
    def cached(self) -> int:
        """Frames of the loop kept so far (``loop_frames`` once the first pass is done)."""
        return len(self._jpegs)

    def _frame(self, face: SyntheticFace, index: int, pose: FacePose):
        period = self.loop_frames
        if period is None:
            return face.render(pose)
        jpeg = self._jpegs.get(index % period)
        if jpeg is not None:
            return cv2.imdecode(jpeg, cv2.IMREAD_COLOR), face.truth(pose)
        image, truth = face.render(pose)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if ok:
            self._jpegs[index % period] = jpeg
        return image, truth

    def __iter__(self) -> Iterator[Frame]:
        face = SyntheticFace(**self._renderer_args)
        limit = self.frames
        if not self.loop:
            one = int(round(PERIOD * self.fps))
            limit = one if limit is None else min(limit, one)
        start = time.perf_counter()
        index = 0
        while not self._closed and (limit is None or index < limit):
            t = index / self.fps
            image, truth = self._frame(face, index, demo_pose(t))
            if self.realtime:
                delay = start + t - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            yield Frame(index, t, image, None, truth)
            index += 1

    def close(self) -> None:
        self._closed = True

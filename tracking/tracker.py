"""``FaceTracker``: frames in, clean ``FaceState`` out.

pipeline → raw measurements → calibration → blink-aware gaze → One Euro filters →
loss handling. When the face is lost the output holds for ``hold_s`` then eases to
neutral over ``ease_s``; when it returns, the output eases from where it was to the live
values over ``return_s`` instead of jumping. Unrelated stills (image folders) skip all of
that state: each image gets its unfiltered solver output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .calibration import Calibration
from .filters import OneEuroFilter, OneEuroParams
from .frames import BadFrame
from .pipeline import FaceObservation, FacePipeline
from .solvers.face import RawFace, measure_face
from .solvers.geometry import matrix_from_quat, quat_from_ypr, ypr_from_matrix
from .solvers.eyes import far_eye_lean, gaze_angles, near_eye_weight, openness, view_shift, visible_ratio
from .solvers.head import Camera, HeadPose, RigidFit
from .solvers.response import network_response
from .solvers.mouth import BrowMeasure, MouthMeasure, brow_raise, mouth_shape
from .state import VOWELS, FaceState

CHANNELS = ("yaw", "pitch", "roll", "x", "y", "z",
            "gaze_right_yaw", "gaze_right_pitch", "gaze_left_yaw", "gaze_left_pitch",
            "eye_open_right", "eye_open_left", "mouth_open",
            "vowel_a", "vowel_i", "vowel_u", "vowel_e", "vowel_o", "smile", "brow_right", "brow_left")
IDX = {c: i for i, c in enumerate(CHANNELS)}
NEUTRAL = np.array([0, 0, 0, np.nan, np.nan, np.nan, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=np.float64)

# Chosen by measurement on the synthetic clips (``openvtuber accuracy``): static jitter, blink
# depth and lag of fast turns; tests/test_filters.py and tests/test_accuracy.py hold them.
DEFAULT_FILTERS = {
    "angle": OneEuroParams(min_cutoff=1.0, beta=0.2, d_cutoff=1.0),
    "position": OneEuroParams(min_cutoff=0.5, beta=2.0, d_cutoff=1.0),
    "gaze": OneEuroParams(min_cutoff=1.0, beta=0.05, d_cutoff=1.0),
    "eye": OneEuroParams(min_cutoff=8.0, beta=10.0, d_cutoff=1.0),
    "mouth": OneEuroParams(min_cutoff=2.0, beta=2.0, d_cutoff=1.0),
}


def _group(channel: str) -> str:
    if channel in ("yaw", "pitch", "roll"):
        return "angle"
    if channel in ("x", "y", "z"):
        return "position"
    if channel.startswith("gaze"):
        return "gaze"
    if channel.startswith("eye_open"):
        return "eye"
    return "mouth"


@dataclass
class TrackerOptions:
    hfov_deg: float = 60.0
    head_method: str = "rigid"          # or "pnp"
    hold_s: float = 0.5
    ease_s: float = 0.5
    return_s: float = 0.5
    blink_threshold: float = 0.5
    filters: dict[str, OneEuroParams] = field(default_factory=lambda: dict(DEFAULT_FILTERS))


def _smoothstep(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3.0 - 2.0 * u)


class FaceTracker:
    """Stateful chain from frames to ``FaceState``; ``calibrate()`` starts a calibration."""

    def __init__(self, pipeline: FacePipeline | None = None, calibration: Calibration | None = None,
                 options: TrackerOptions | None = None, runtime: str = "auto", threads: int = 1):
        self.pipeline = pipeline or FacePipeline(runtime, threads)
        self.calibration = calibration or Calibration.default()
        self.options = options or TrackerOptions()
        self.response = network_response()
        self.fitter = RigidFit(self.response.head)
        self.filter = OneEuroFilter([self.options.filters[_group(c)] for c in CHANNELS])
        self._camera: Camera | None = None
        self._camera_size: tuple[int, int] | None = None
        self._last_pose: HeadPose | None = None
        self._last_out: np.ndarray | None = None      # last emitted channel vector
        self._lost_since: float | None = None
        self._lost_from: np.ndarray | None = None     # output when the loss began
        self._return_from: np.ndarray | None = None
        self._return_t: float | None = None
        self._held_gaze: tuple[float, float] = (0.0, 0.0)
        self.on_calibrated = None           # callable(Calibration), e.g. to save it
        self._neutral_q: tuple | None = None
        self._neutral_inv = np.eye(3)
        self._calib_samples: list[RawFace] | None = None
        self._calib_target = 0
        self.last_raw: RawFace | None = None
        self.dropped = 0

    # ---- calibration -------------------------------------------------------------
    def calibrate(self, frames: int = 30) -> None:
        """Collect the next ``frames`` found faces as the neutral face (≈ 1 s at 30 fps)."""
        self._calib_target = max(1, frames)
        self._calib_samples = []          # published last: update() keys off this

    @property
    def calibrating(self) -> bool:
        return self._calib_samples is not None

    def _finish_calibration(self) -> None:
        samples = self._calib_samples or []
        self._calib_samples = None
        qs = np.array([s.pose.quaternion for s in samples])
        qs[qs @ qs[0] < 0] *= -1
        q = np.median(qs, axis=0)
        med = lambda f: float(np.median([f(s) for s in samples]))  # noqa: E731
        self.calibration = Calibration(
            neutral_rotation=tuple(float(v) for v in q / np.linalg.norm(q)),
            eye_open_right=med(lambda s: self._visible_ratios(s)[0]),
            eye_open_left=med(lambda s: self._visible_ratios(s)[1]),
            gaze_right=(med(lambda s: s.right.offset[0]), med(lambda s: s.right.offset[1] - self._view_shift(s))),
            gaze_left=(med(lambda s: s.left.offset[0]), med(lambda s: s.left.offset[1] - self._view_shift(s))),
            mouth_gap=med(lambda s: s.mouth.gap), mouth_width=med(lambda s: s.mouth.width),
            mouth_lift=med(lambda s: s.mouth.corner_lift),
            brow_right=med(lambda s: s.brows.right), brow_left=med(lambda s: s.brows.left),
            calibrated=True, frames=len(samples))
        self.filter.reset()
        if self.on_calibrated is not None:
            self.on_calibrated(self.calibration)

    # ---- per frame ---------------------------------------------------------------
    def camera_for(self, width: int, height: int) -> Camera:
        if self._camera_size != (width, height):
            self._camera = Camera.from_frame(width, height, self.options.hfov_deg)
            self._camera_size = (width, height)
        return self._camera

    def measure(self, obs: FaceObservation, still: bool = False) -> RawFace | None:
        """Raw measurements of one observation. ``still``: an unrelated photo, whose head pose
        is taken relative to its image plane (``RigidFit.solve``)."""
        if not obs.found:
            return None
        cam = self.camera_for(*obs.image_size)
        return measure_face(obs.landmarks, (obs.right_eye.contour, obs.right_eye.iris),
                            (obs.left_eye.contour, obs.left_eye.iris), cam, self.fitter,
                            self.options.head_method, self._last_pose, view=not still)

    def values(self, raw: RawFace, stateful: bool = True) -> np.ndarray:
        """Calibrated channel vector of one raw measurement (before filtering)."""
        cal = self.calibration
        v = np.empty(len(CHANNELS))
        # the turn from neutral in the neutral head's own axes: a camera beside or above the
        # screen is a fixed left factor of every pose, which this removes exactly
        yaw, pitch, roll = ypr_from_matrix(self._neutral_inverse() @ raw.pose.rotation)
        v[0:3] = yaw, pitch, roll
        v[3:6] = raw.pose.translation
        open_r, open_l = self._openness(raw)
        v[6:10] = self._gaze(raw, open_r, open_l, stateful) * 2
        v[10], v[11] = open_r, open_l
        shape = mouth_shape(raw.mouth, MouthMeasure(cal.mouth_gap, cal.mouth_width, cal.mouth_lift))
        v[12] = shape.open
        v[13:18] = [shape.vowels[k] for k in VOWELS]
        v[18] = shape.smile
        v[19:21] = brow_raise(raw.brows, BrowMeasure(cal.brow_right, cal.brow_left))
        return v

    def _neutral_inverse(self) -> np.ndarray:
        q = self.calibration.neutral_rotation
        if self._neutral_q != q:
            self._neutral_q, self._neutral_inv = q, matrix_from_quat(q).T
        return self._neutral_inv

    def _openness(self, raw: RawFace) -> tuple[float, float]:
        """Each eye's openness as a frontal eye would read, the far eye leaning on the near
        one on a turned head (``solvers.eyes``)."""
        cal, eyes, vy = self.calibration, self.response.eyes, raw.view_yaw
        closed = eyes.closed_fraction
        ratio_r, ratio_l = self._visible_ratios(raw)
        open_r = openness(ratio_r, closed * cal.eye_open_right, cal.eye_open_right)
        open_l = openness(ratio_l, closed * cal.eye_open_left, cal.eye_open_left)
        lean = far_eye_lean(vy, eyes)
        if lean > 0.0:
            if vy > 0.0:                     # the right eye is the near one
                open_l += lean * (open_r - open_l)
            else:
                open_r += lean * (open_l - open_r)
        return open_r, open_l

    def _visible_ratios(self, raw: RawFace) -> tuple[float, float]:
        """(right, left) lid ratios as a frontal eye would read them."""
        vy, eyes = raw.view_yaw, self.response.eyes
        return visible_ratio(raw.right.ratio, vy, True, eyes), visible_ratio(raw.left.ratio, vy, False, eyes)

    def _view_shift(self, raw: RawFace) -> float:
        return view_shift(raw.view_yaw, raw.view_pitch, self.response.eyes)

    def _gaze(self, raw: RawFace, open_r: float, open_l: float, stateful: bool) -> tuple[float, float]:
        """One gaze for both eyes (eyes move together): the iris offsets merged with the near
        eye favoured; a closing eye's iris is hidden, so it does not count (in a wink the
        closed eye follows the open one); with both closing, the last open gaze holds."""
        cal = self.calibration
        thr = self.options.blink_threshold
        near = near_eye_weight(raw.view_yaw, self.response.eyes)
        w_r = near * (open_r >= thr)
        w_l = (1.0 - near) * (open_l >= thr)
        if w_r + w_l <= 0.0:
            return self._held_gaze if stateful else (0.0, 0.0)
        dx = (w_r * (raw.right.offset[0] - cal.gaze_right[0]) + w_l * (raw.left.offset[0] - cal.gaze_left[0])) / (w_r + w_l)
        dy = (w_r * (raw.right.offset[1] - cal.gaze_right[1]) + w_l * (raw.left.offset[1] - cal.gaze_left[1])) / (w_r + w_l)
        dy -= self._view_shift(raw)          # the calibrated neutral has its own taken off
        gaze = gaze_angles((dx, dy), self.response.eyes.gaze_gain)
        if stateful:
            self._held_gaze = gaze
        return gaze

    def process(self, frame, independent: bool = False) -> FaceState:
        """Track one source frame (``frame.image``, ``frame.t``, ``frame.index``). With
        ``independent`` (unrelated stills) the pipeline's tracking crop is forgotten first."""
        if independent:
            self.pipeline.reset()
        try:
            obs = self.pipeline.process(frame.image)
        except BadFrame:
            self.dropped += 1
            obs = FaceObservation(False)
        return self.update(obs, frame.t, frame.index, getattr(frame, "path", None), independent)

    def update(self, obs: FaceObservation, t: float | None, index: int, path: str | None = None,
               independent: bool = False) -> FaceState:
        raw = self.measure(obs, still=independent) if obs.found else None
        self.last_raw = raw
        if raw is not None and not independent:
            self._last_pose = raw.pose
            if self._calib_samples is not None:
                self._calib_samples.append(raw)
                if len(self._calib_samples) >= self._calib_target:
                    self._finish_calibration()
        if independent or t is None:
            values = self.values(raw, stateful=False) if raw is not None else None
            return self._state(values, raw is not None, obs, raw, t, index, path)
        if raw is not None:
            live = self.filter(self.values(raw), t)
            if self._lost_since is not None:            # the face is back: ease from where we were
                self._return_from = self._last_out
                self._return_t = t
                self._lost_since = None
            out = live
            if self._return_from is not None:
                u = (t - self._return_t) / self.options.return_s
                if u >= 1.0:
                    self._return_from = None
                else:
                    out = _blend(self._return_from, live, _smoothstep(u))
            self._last_out = out
            return self._state(out, True, obs, raw, t, index, path)
        # lost
        self._last_pose = None
        if self._last_out is None:
            return self._state(None, False, obs, None, t, index, path)
        if self._lost_since is None:
            self._lost_since = t
            self._lost_from = self._last_out
            self._return_from = None
        gone = t - self._lost_since - self.options.hold_s
        out = self._lost_from if gone <= 0 else _blend(self._lost_from, NEUTRAL, _smoothstep(gone / self.options.ease_s))
        self._last_out = out
        return self._state(out, False, obs, None, t, index, path)

    def _state(self, v: np.ndarray | None, found: bool, obs: FaceObservation, raw: RawFace | None,
               t: float | None, index: int, path: str | None) -> FaceState:
        st = FaceState(t=t, frame=index, found=found, path=path,
                       confidence=float(obs.confidence) if found else 0.0)
        if found and obs.landmarks is not None:
            st.landmarks = np.concatenate([obs.landmarks, obs.right_eye.iris, obs.left_eye.iris])
        if v is None:
            return st
        st.valid = True
        st.yaw, st.pitch, st.roll = (float(a) for a in v[0:3])
        st.rotation = quat_from_ypr(st.yaw, st.pitch, st.roll)
        if not math.isnan(v[5]):
            st.translation = (float(v[3]), float(v[4]), float(v[5]))
        st.gaze_right_yaw, st.gaze_right_pitch, st.gaze_left_yaw, st.gaze_left_pitch = (float(a) for a in v[6:10])
        st.eye_open_right, st.eye_open_left, st.mouth_open = float(v[10]), float(v[11]), float(v[12])
        st.vowels = {k: float(x) for k, x in zip(VOWELS, v[13:18])}
        st.smile = float(v[18])
        st.brow_right, st.brow_left = float(v[19]), float(v[20])
        return st


def _blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """(1−w)·a + w·b per channel; channels without a neutral value (NaN: position) keep ``a``."""
    out = (1.0 - w) * a + w * np.where(np.isnan(b), a, b)
    return out

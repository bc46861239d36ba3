"""The per-frame face pipeline: detect once, then track with landmarks + irises.

A steady face costs the landmark network and two iris passes per frame: the next
frame's crop comes from this frame's landmarks, and the detector only runs again when
the landmark network's face-presence score drops below ``presence_thresh`` (MediaPipe's
tracking scheme). ``process`` accepts anything a source produces (see ``frames``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..models.detector import Detection, FaceDetector
from ..models.iris import EyeResult, IrisLandmarker
from ..models.landmarks import FaceLandmarker, roi_from_landmarks
from ..models.roi import RotatedRect
from ..models.runtime import resolve_runtime
from .frames import normalize_frame


@dataclass
class StageTimes:
    """Milliseconds spent per stage on one frame (0 when the stage did not run)."""

    detect: float = 0.0
    landmarks: float = 0.0
    iris: float = 0.0
    total: float = 0.0


@dataclass
class FaceObservation:
    """What the networks saw on one frame, in image pixels. ``found`` false: nothing else is set."""

    found: bool
    confidence: float = 0.0          # face-presence probability of the landmark network
    detected: bool = False           # the detector ran on this frame
    detection: Detection | None = None
    landmarks: np.ndarray | None = None   # (468, 3)
    right_eye: EyeResult | None = None    # the person's own right eye
    left_eye: EyeResult | None = None
    roi: RotatedRect | None = None
    image_size: tuple[int, int] = (0, 0)  # (width, height)
    times: StageTimes = field(default_factory=StageTimes)


class FacePipeline:
    """Detector → landmarks → irises with tracking state between frames.

    ``tracking=False`` forgets the previous face every frame (unrelated still images).
    """

    def __init__(self, runtime: str = "auto", threads: int = 1, presence_thresh: float = 0.5,
                 decoder: str | None = None, tracking: bool = True):
        self.runtime = resolve_runtime(runtime)
        self.detector = FaceDetector(self.runtime, threads, decoder=decoder)
        self.landmarker = FaceLandmarker(self.runtime, threads)
        self.iris = IrisLandmarker(self.runtime, threads)
        self.presence_thresh = presence_thresh
        self.tracking = tracking
        self._roi: RotatedRect | None = None
        self.frames = 0
        self.detector_runs = 0

    def reset(self) -> None:
        """Forget the tracked face: the next frame runs the detector."""
        self._roi = None

    def process(self, image: np.ndarray) -> FaceObservation:
        """Track one frame. Raises ``frames.BadFrame`` for frames that cannot be used."""
        t0 = time.perf_counter()
        image = normalize_frame(image)
        h, w = image.shape[:2]
        self.frames += 1
        times = StageTimes()
        if not self.tracking:
            self._roi = None
        obs = None
        if self._roi is not None:
            t = time.perf_counter()
            lm = self.landmarker.run(image, self._roi)
            times.landmarks = (time.perf_counter() - t) * 1e3
            if lm.presence >= self.presence_thresh:
                obs = FaceObservation(True, lm.presence, False, None, lm.points, roi=lm.roi)
        if obs is None:
            t = time.perf_counter()
            dets = self.detector.detect(image)
            self.detector_runs += 1
            times.detect = (time.perf_counter() - t) * 1e3
            if dets:
                t = time.perf_counter()
                lm = self.landmarker.run(image, dets[0].roi())
                times.landmarks += (time.perf_counter() - t) * 1e3
                if lm.presence >= self.presence_thresh:
                    obs = FaceObservation(True, lm.presence, True, dets[0], lm.points, roi=lm.roi)
        if obs is None:
            self._roi = None
            times.total = (time.perf_counter() - t0) * 1e3
            return FaceObservation(False, detected=True, image_size=(w, h), times=times)
        t = time.perf_counter()
        obs.right_eye, obs.left_eye = self.iris.run(image, obs.landmarks)
        times.iris = (time.perf_counter() - t) * 1e3
        self._roi = roi_from_landmarks(obs.landmarks) if self.tracking else None
        obs.image_size = (w, h)
        times.total = (time.perf_counter() - t0) * 1e3
        obs.times = times
        return obs

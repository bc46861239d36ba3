"""The per-frame face pipeline: detect once, then track with landmarks + irises.

A steady face costs the landmark network and two iris passes per frame: the next
frame's crop comes from this frame's landmarks, and the detector only runs again when
the landmark network's face-presence score drops below ``presence_thresh`` (MediaPipe's
tracking scheme). ``process`` accepts anything a source produces (see ``frames``).

Finding a face (a still, the first frame, or after a loss) takes second looks where the
first fails, because the networks are weakest on turned heads: the landmarks again on a
crop re-centred on their own output (what the next video frame would get), the detector's
second candidate, and the mirror image (neither network is mirror-symmetric; a profile
one misses is often found mirrored). On the AFLW2000 dev set these find 11 more of its 493
photos, all the labelled face. In video a lost face costs at most one detector run and two
landmark runs a frame: the plain and the mirrored look take turns, one candidate each.

``refine_stills`` (unrelated stills, where no time budget applies) reads each face once
more on the crop its landmarks give, as a video frame is read, and averages that with
the reading of the mirrored crop; a face neither reading accepts is not a face.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..models.detector import Detection, FaceDetector
from ..models.iris import EyeResult, IrisLandmarker
from ..models.landmarks import FaceLandmarker, LandmarkResult, roi_from_landmarks
from ..models.roi import RotatedRect
from ..models.runtime import resolve_runtime
from .frames import normalize_frame
from .solvers.face_model import mirror_index

# Detector candidates the landmark network is asked about, best first (a second face, or the
# same face boxed differently, is sometimes the one it accepts).
CANDIDATES = 2


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

    ``tracking=False`` forgets the previous face every frame (unrelated still images);
    ``refine_stills`` adds the still-image reading described in the module docstring.
    """

    def __init__(self, runtime: str = "auto", threads: int = 1, presence_thresh: float = 0.5,
                 decoder: str | None = None, tracking: bool = True, refine_stills: bool = False):
        self.runtime = resolve_runtime(runtime)
        self.detector = FaceDetector(self.runtime, threads, decoder=decoder)
        self.landmarker = FaceLandmarker(self.runtime, threads)
        self.iris = IrisLandmarker(self.runtime, threads)
        self.presence_thresh = presence_thresh
        self.tracking = tracking
        self.refine_stills = refine_stills
        self._mirror = mirror_index()
        self._roi: RotatedRect | None = None
        self._misses = 0                 # frames in a row the tracking pipeline found no face
        self.frames = 0
        self.detector_runs = 0           # frames on which the detector ran

    def reset(self) -> None:
        """Forget the tracked face: the next frame runs the detector."""
        self._roi = None

    def read_stills(self, stills: bool) -> None:
        """Set the pipeline for a source: unrelated stills (an image folder) are each read on
        their own and refined; video frames are tracked."""
        self.tracking = not stills
        self.refine_stills = stills

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
            found = self._acquire(image, times)
            self.detector_runs += 1
            if found is not None:
                lm, det = found
                obs = FaceObservation(True, lm.presence, True, det, lm.points, roi=lm.roi)
        if obs is not None and self.refine_stills and not self.tracking:
            t = time.perf_counter()
            obs = self._refine(image, obs)
            times.landmarks += (time.perf_counter() - t) * 1e3
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

    def _look(self, image: np.ndarray, roi: RotatedRect, mirrored: bool) -> LandmarkResult | None:
        """The landmarks in ``roi`` if the network calls them a face, else once more on the crop
        their own points give (a detector box sits lower and looser than a tracking crop)."""
        mirror = self._mirror if mirrored else None
        lm = self.landmarker.run(image, roi, mirror)
        if lm.presence < self.presence_thresh:
            lm = self.landmarker.run(image, roi_from_landmarks(lm.points), mirror)
        return lm if lm.presence >= self.presence_thresh else None

    def _acquire(self, image: np.ndarray, times: StageTimes) -> tuple[LandmarkResult, Detection] | None:
        """Detector, then landmarks on its best candidates; then the same on the mirrored frame
        (its detections mapped back, the landmarks read from the mirrored crop). Tracking, one
        of the two per frame, in turns."""
        if self.tracking:
            passes, candidates = ((self._misses % 2 == 1),), 1
        else:
            passes, candidates = (False, True), CANDIDATES
        found = None
        for mirrored in passes:
            found = self._acquire_pass(image, mirrored, candidates, times)
            if found is not None:
                break
        self._misses = 0 if found is not None else self._misses + 1
        return found

    def _acquire_pass(self, image: np.ndarray, mirrored: bool, candidates: int,
                      times: StageTimes) -> tuple[LandmarkResult, Detection] | None:
        t = time.perf_counter()
        frame = np.ascontiguousarray(image[:, ::-1]) if mirrored else image
        dets = self.detector.detect(frame)[:candidates]
        t1 = time.perf_counter()
        times.detect += (t1 - t) * 1e3
        found = None
        for det in dets:
            det = det.mirrored(image.shape[1]) if mirrored else det
            lm = self._look(image, det.roi(), mirrored)
            if lm is not None:
                found = lm, det
                break
        times.landmarks += (time.perf_counter() - t1) * 1e3
        return found

    def _refine(self, image: np.ndarray, obs: FaceObservation) -> FaceObservation | None:
        """A still's face read on its own landmarks' crop, plain and mirrored, and averaged;
        ``None`` when neither reading is a face."""
        roi = roi_from_landmarks(obs.landmarks)
        reads = [lm for lm in (self.landmarker.run(image, roi), self.landmarker.run(image, roi, self._mirror))
                 if lm.presence >= self.presence_thresh]
        if not reads:
            return None
        obs.landmarks = reads[0].points if len(reads) == 1 else (reads[0].points + reads[1].points) * np.float32(0.5)
        obs.confidence = max(lm.presence for lm in reads)
        obs.roi = roi
        return obs

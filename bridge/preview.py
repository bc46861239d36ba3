"""``--preview``: an OpenCV window with the landmarks drawn, only where a display exists."""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from ..tracking.pipeline import FaceObservation
from ..tracking.solvers.geometry import FLIP
from ..tracking.solvers.head import Camera, HeadPose
from ..tracking.state import FaceState
from ..tracking.tracker import FaceTracker


class PreviewUnavailable(RuntimeError):
    pass


def _display_present() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def head_axes(pose: HeadPose, camera: Camera, length: float = 0.06) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Image segments of the head's axes (person's left, up, forward) from its origin."""
    r_img = FLIP @ pose.rotation @ FLIP                   # person frame → camera axes
    origin = np.asarray(pose.translation, dtype=np.float64)
    pts = [origin] + [origin + r_img @ (FLIP @ axis) * length for axis in np.eye(3)]
    uv = [(int(camera.fx * p[0] / p[2] + camera.cx), int(camera.fy * p[1] / p[2] + camera.cy)) for p in pts]
    return [(uv[0], uv[k]) for k in (1, 2, 3)]


def draw(image: np.ndarray, obs: FaceObservation | None, text: str = "",
         state: FaceState | None = None, axes: list | None = None) -> np.ndarray:
    """A copy of ``image`` with landmarks (green), irises (red), head axes (red X to the
    person's left, green up, blue forward), the solver numbers and ``text``."""
    vis = image.copy()
    if obs is not None and obs.found and obs.landmarks is not None:
        for x, y in obs.landmarks[:, :2].astype(np.int32):
            cv2.circle(vis, (int(x), int(y)), 1, (0, 220, 0), -1, cv2.LINE_AA)
        for eye in (obs.right_eye, obs.left_eye):
            if eye is not None:
                centre = eye.iris[0, :2]
                radius = float(np.linalg.norm(eye.iris[1:, :2] - centre, axis=1).mean())
                cv2.circle(vis, (int(centre[0]), int(centre[1])), max(1, int(radius)), (0, 0, 255), 1, cv2.LINE_AA)
    for (a, b), colour in zip(axes or [], ((0, 0, 255), (0, 200, 0), (255, 80, 0))):
        cv2.line(vis, a, b, colour, 2, cv2.LINE_AA)
    lines = [text] if text else []
    if state is not None and state.valid:
        lines += [f"yaw {state.yaw:+6.1f}  pitch {state.pitch:+6.1f}  roll {state.roll:+6.1f}",
                  f"gaze R {state.gaze_right_yaw:+5.1f} {state.gaze_right_pitch:+5.1f}  "
                  f"L {state.gaze_left_yaw:+5.1f} {state.gaze_left_pitch:+5.1f}",
                  f"eyes R {state.eye_open_right:.2f} L {state.eye_open_left:.2f}  mouth {state.mouth_open:.2f}  "
                  f"smile {state.smile:.2f}",
                  "vowels " + " ".join(f"{k.upper()} {v:.2f}" for k, v in state.vowels.items()),
                  f"brows R {state.brow_right:+.2f} L {state.brow_left:+.2f}"]
    for i, line in enumerate(lines):
        cv2.putText(vis, line, (8, 20 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(vis, line, (8, 20 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return vis


class Preview:
    WINDOW = "OpenVtuber preview"

    def __init__(self) -> None:
        if not _display_present():
            raise PreviewUnavailable("--preview needs a display (none found): running without the window")
        try:
            cv2.namedWindow(self.WINDOW, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise PreviewUnavailable("--preview needs OpenCV with GUI support "
                                     "(pip install opencv-python in the venv): running without the window") from None

    def show(self, image: np.ndarray, obs: FaceObservation | None, state: FaceState | None = None,
             tracker: FaceTracker | None = None, text: str = "") -> bool:
        """Draw one frame; False once the user pressed q/Esc or closed the window."""
        axes = None
        if tracker is not None and tracker.last_raw is not None and obs is not None and obs.found:
            axes = head_axes(tracker.last_raw.pose, tracker.camera_for(*obs.image_size))
        cv2.imshow(self.WINDOW, draw(image, obs, text, state, axes))
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        return cv2.getWindowProperty(self.WINDOW, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        cv2.destroyWindow(self.WINDOW)

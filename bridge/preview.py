"""``--preview``: an OpenCV window with the landmarks drawn, only where a display exists."""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from ..tracking.pipeline import FaceObservation


class PreviewUnavailable(RuntimeError):
    pass


def _display_present() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def draw(image: np.ndarray, obs: FaceObservation | None, text: str = "") -> np.ndarray:
    """A copy of ``image`` with landmarks (green), irises (red) and ``text``."""
    vis = image.copy()
    if obs is not None and obs.found and obs.landmarks is not None:
        for x, y in obs.landmarks[:, :2].astype(np.int32):
            cv2.circle(vis, (int(x), int(y)), 1, (0, 220, 0), -1, cv2.LINE_AA)
        for eye in (obs.right_eye, obs.left_eye):
            if eye is not None:
                centre = eye.iris[0, :2]
                radius = float(np.linalg.norm(eye.iris[1:, :2] - centre, axis=1).mean())
                cv2.circle(vis, (int(centre[0]), int(centre[1])), max(1, int(radius)), (0, 0, 255), 1, cv2.LINE_AA)
    if text:
        cv2.putText(vis, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
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

    def show(self, image: np.ndarray, obs: FaceObservation | None, text: str = "") -> bool:
        """Draw one frame; False once the user pressed q/Esc or closed the window."""
        cv2.imshow(self.WINDOW, draw(image, obs, text))
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        return cv2.getWindowProperty(self.WINDOW, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        cv2.destroyWindow(self.WINDOW)

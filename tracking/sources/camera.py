"""Live cameras (index or device path) with reconnection.

A camera that cannot be opened is a one-line ``SourceError``. A camera that stops
delivering (unplugged, taken by another app) is released and re-opened every
``retry_s`` until it comes back or the source is closed; ``on_status`` hears
"camera lost, retrying" and "camera back" so the status line can say so.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Iterator

import cv2

from .base import Frame, SourceError, SourceStats

CaptureFactory = Callable[[int | str], "cv2.VideoCapture"]


def _default_capture(device: int | str) -> cv2.VideoCapture:
    if isinstance(device, int) and sys.platform == "win32":
        return cv2.VideoCapture(device, cv2.CAP_DSHOW)   # MSMF opens slowly and drops settings
    return cv2.VideoCapture(device)


def parse_device(spec: str) -> int | str:
    """``"0"`` → 0, ``"/dev/video2"`` stays a path."""
    return int(spec) if spec.isdigit() else spec


class CameraSource:
    independent_frames = False

    def __init__(self, device: int | str = 0, width: int | None = 640, height: int | None = 480,
                 fps: float | None = 30.0, retry_s: float = 1.0, lost_after: int = 5,
                 capture_factory: CaptureFactory = _default_capture,
                 on_status: Callable[[str], None] | None = None):
        self.device = device
        self.name = f"camera {device}"
        self.stats = SourceStats()
        self.retry_s = retry_s
        self.lost_after = lost_after
        self._factory = capture_factory
        self._settings = (width, height, fps)
        self._on_status = on_status or (lambda msg: None)
        self._closed = False
        self._io = threading.Lock()            # one thread at a time inside OpenCV's capture
        self._cap = self._open()
        if self._cap is None:
            raise SourceError(f"camera {device} not found or busy: check the index/path, "
                              "or use the source 'demo' to run without a camera")

    def _open(self) -> cv2.VideoCapture | None:
        try:
            cap = self._factory(self.device)
        except Exception:
            return None
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return None
        width, height, fps = self._settings
        if width and height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # latest frame, not a queue of stale ones
        return cap

    def _reconnect(self) -> bool:
        """Release and re-open until it works or the source is closed."""
        self._on_status("camera lost, retrying")
        with self._io:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
        while not self._closed:
            time.sleep(self.retry_s)
            with self._io:
                if self._closed:
                    return False
                self._cap = self._open()
            if self._cap is not None:
                self.stats.reconnects += 1
                self._on_status("camera back")
                return True
        return False

    def __iter__(self) -> Iterator[Frame]:
        start = time.monotonic()
        index, failures = 0, 0
        while not self._closed:
            with self._io:
                if self._closed:
                    return
                ok, image = self._cap.read() if self._cap is not None else (False, None)
            if not ok or image is None or image.size == 0:
                failures += 1
                if failures >= self.lost_after and not self._reconnect():
                    return
                if failures >= self.lost_after:
                    failures = 0
                continue
            failures = 0
            yield Frame(index, time.monotonic() - start, image)
            index += 1

    def close(self) -> None:
        """Safe from any thread: waits (at most a second) for a read in flight, since OpenCV
        must not release a capture another thread is reading."""
        self._closed = True
        if self._io.acquire(timeout=1.0):
            try:
                if self._cap is not None:
                    self._cap.release()
                    self._cap = None
            finally:
                self._io.release()

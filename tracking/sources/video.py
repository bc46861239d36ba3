"""Video files: frames with the file's own timestamps, optional looping.

Corrupt or truncated files never raise mid-stream: a file that yields no frame at all
is a ``SourceError`` at open time; one that breaks off ends the stream (counted).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator

import cv2

from ...models.runtime import quiet_native_stderr
from .base import Frame, SourceError, SourceStats


class VideoSource:
    independent_frames = False

    def __init__(self, path: str | os.PathLike, loop: bool = False):
        self.path = Path(path)
        self.name = f"video {self.path.name}"
        self.loop = loop
        self.stats = SourceStats()
        if not self.path.exists():
            raise SourceError(f"video file {self.path} does not exist")
        if not self.path.is_file():
            raise SourceError(f"{self.path} is not a file")
        self._cap = self._open()
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise SourceError(f"no frame could be decoded from {self.path}: not a video, unsupported codec or corrupt")
        self._first = first
        self.fps = self._cap.get(cv2.CAP_PROP_FPS) or 0.0
        if not 1.0 <= self.fps <= 1000.0:
            self.fps = 30.0
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._closed = False
        self._io = threading.Lock()

    def _open(self) -> cv2.VideoCapture:
        with quiet_native_stderr():  # demuxers print parse errors of broken files to fd 2
            cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"cannot open {self.path} as a video: not a video file or unsupported codec")
        return cap

    def _timestamp(self, n_in_pass: int, last: float) -> float:
        """The decoder's timestamp of the frame just read, or n/fps when the container has none."""
        ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        t = ms / 1000.0 if ms and ms > 0 else n_in_pass / self.fps
        if n_in_pass > 0 and t <= last:  # broken or missing timestamps: keep time moving
            t = last + 1.0 / self.fps
        return t

    def __iter__(self) -> Iterator[Frame]:
        index, offset, pass_len = 0, 0.0, 0.0
        image, n, last = self._first, 0, 0.0
        while not self._closed:
            if image is None:
                with self._io:                   # close() from another thread waits for this read
                    if self._closed:
                        return
                    ok, image = self._cap.read()
                if not ok or image is None:
                    if n == 0 or not self.loop:
                        if self.frame_count and n < self.frame_count - 1 and not self.loop:
                            self.stats.skip(f"{self.path.name}: decoding stopped after {n} of {self.frame_count} frames")
                        return
                    offset += last + 1.0 / self.fps      # loop: time keeps increasing
                    with self._io:
                        if self._closed:
                            return
                        self._cap.release()
                        self._cap = self._open()
                    n, last, image = 0, 0.0, None
                    continue
            t = self._timestamp(n, last) if n else 0.0
            yield Frame(index, offset + t, image)
            last, n, index, image = t, n + 1, index + 1, None

    def close(self) -> None:
        """Safe from any thread: OpenCV must not release a capture another thread is reading,
        so this waits (briefly) for the read in flight."""
        self._closed = True
        if self._io.acquire(timeout=1.0):
            try:
                self._cap.release()
            finally:
                self._io.release()

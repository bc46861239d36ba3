"""A folder of still images: unrelated photos, each processed on its own.

Files are taken in name order (non-recursive); anything that does not decode as an
image is skipped and counted, never fatal. A single image file works too.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .base import Frame, SourceError, SourceStats

MAX_FILE_BYTES = 200 * 1024 * 1024


class ImageFolderSource:
    independent_frames = True

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.stats = SourceStats()
        if not self.path.exists():
            raise SourceError(f"image folder {self.path} does not exist")
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.iterdir() if p.is_file() and not p.name.startswith("."))
            if not self.files:
                raise SourceError(f"image folder {self.path} holds no files")
        else:
            self.files = [self.path]
        self.name = f"images {self.path.name}"
        self._closed = False

    @staticmethod
    def read(path: Path) -> np.ndarray | None:
        """Decode one file (any format OpenCV reads, alpha dropped, gray expanded) or None."""
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                return None
            data = np.fromfile(path, dtype=np.uint8)   # fromfile + imdecode: non-ASCII paths work on Windows
        except OSError:
            return None
        if data.size == 0:
            return None
        return cv2.imdecode(data, cv2.IMREAD_COLOR)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for path in self.files:
            if self._closed:
                return
            image = self.read(path)
            if image is None:
                self.stats.skip(f"{path.name}: not a readable image, skipped")
                continue
            yield Frame(index, None, image, path=path.name)
            index += 1

    def close(self) -> None:
        self._closed = True

"""Frame sources: camera, video file, image folder, and the synthetic ``demo``.

``open_source`` turns the user's SOURCE argument into a source:
``demo`` → the synthetic face; ``auto`` → the first camera, else ``demo``;
a number or ``/dev/video*`` → a camera; a folder or image file → stills; another file →
a video. Errors are ``SourceError`` with one line the user can act on.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .base import Frame, FrameSource, SourceError, SourceStats

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}

__all__ = ["Frame", "FrameSource", "SourceError", "SourceStats", "open_source"]


def open_source(spec: str, loop: bool = False, realtime: bool | None = None,
                on_status: Callable[[str], None] | None = None) -> FrameSource:
    """Open SOURCE as the CLI understands it. ``realtime`` paces the demo (default on)."""
    from .camera import CameraSource, parse_device

    spec = str(spec).strip()
    if spec == "demo":
        from .demo import DemoSource

        return DemoSource(loop=True, realtime=True if realtime is None else realtime)
    if spec == "auto":
        try:
            return CameraSource(0, on_status=on_status)
        except SourceError:
            if on_status:
                on_status("no camera found: playing the demo face instead")
            return open_source("demo", loop, realtime, on_status)
    if spec.isdigit() or spec.startswith("/dev/video"):
        return CameraSource(parse_device(spec), on_status=on_status)
    path = Path(os.path.expanduser(spec))
    if not path.exists():
        raise SourceError(f"source {spec!r} not found: give a camera index, a video file, an image folder or 'demo'")
    from .images import ImageFolderSource
    from .video import VideoSource

    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderSource(path)
    return VideoSource(path, loop=loop)

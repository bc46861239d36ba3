"""What every frame source yields, and the errors a source may raise.

A source is an iterator of ``Frame``. Time is the source's own clock (file timestamps,
capture time, or the synthetic clip's frame time), never processing wall-clock.
Sources count what they skip (unreadable files, bad frames) instead of raising.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol

import numpy as np


class SourceError(RuntimeError):
    """A source cannot be opened or read; the message is one line the user can act on."""


@dataclass
class Frame:
    """One decoded frame: 0-based ``index`` over every decoded frame, ``t`` in source seconds."""

    index: int
    t: float | None                  # None for unrelated stills
    image: np.ndarray
    path: str | None = None          # image folders: the file name
    truth: object | None = None      # synthetic sources: the ground truth of this frame


@dataclass
class SourceStats:
    """Counters a source keeps about what it could not deliver."""

    skipped: int = 0
    reconnects: int = 0
    messages: list[str] = field(default_factory=list)

    def skip(self, message: str) -> None:
        self.skipped += 1
        if len(self.messages) < 100:
            self.messages.append(message)


class FrameSource(Protocol):
    name: str
    stats: SourceStats
    independent_frames: bool   # True: frames are unrelated stills (no tracking state carries)

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...

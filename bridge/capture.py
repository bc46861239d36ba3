"""Frames of the off-screen page, as the page's ``capture.js`` sends them to ``/capture``.

One binary WebSocket message per frame: a 16-byte little-endian header (magic ``OVTF``,
the pose frame shown as uint32 — 0xFFFFFFFF before the first pose — width and height as
uint16, flags uint32 = 1) and the frame as I420 (BT.601 limited range, top-down; the
page packs it on the GPU: 1.5 bytes a pixel, what virtual cameras take unconverted).
Anything else (wrong magic, flags, size or shape) is dropped and counted.

``FrameSink`` keeps only the newest frame: the virtual camera takes what is there when
its clock ticks, so a page faster than the camera costs nothing and a slower one is
repeated, never queued.
"""
from __future__ import annotations

import ctypes
import json
import math
import struct
import sys
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

HEADER = struct.Struct("<IIHHI")
MAGIC = 0x4654564F                # b"OVTF" read as a little-endian uint32
NO_POSE = 0xFFFFFFFF
FLAG_I420 = 1
# the page's once-a-second text report: key → type (anything else is dropped)
PAGE_STATS = {"fps": float, "drawMs": float, "packMs": float, "sent": int, "skipped": int, "outline": bool,
              "gl": str}


FRAME_HEAP_MMAP_THRESHOLD = 32 << 20     # frames (1.4 MB at 720p, 3.1 MB at 1080p) stay below
FRAME_HEAP_TRIM_THRESHOLD = 64 << 20
HEAP_TRIM_PERIOD_S = 30.0


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None   # glibc, not musl


def reuse_large_buffers() -> bool:
    """glibc: serve frame-sized allocations from the heap and keep them there, from the start.

    Each frame is a few fresh 1.4 MB buffers (the WebSocket reader's, the message's), 30 a
    second, allocated on the server's thread and freed on the camera's. Left to glibc's
    defaults the first few come from mmap, then it raises its thresholds as it sees them
    freed and the heap grows over minutes (~15 MB after a few, bench --capture). Served
    from mmap every time instead, each buffer is an mmap/munmap pair and ~350 page faults:
    measured with ``bench --capture``, that cost the bridge 8 % of a core (38 → 31 %) and
    frame → VMC p99 1.1 ms, as the server thread pre-empts the tracker. Fixed thresholds
    above a frame's size give the reuse from the first frame. What the heap then keeps
    free in holes between live blocks, ``HeapTrimmer`` hands back. No effect (False) off glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(libc.mallopt(-3, FRAME_HEAP_MMAP_THRESHOLD)       # M_MMAP_THRESHOLD
                and libc.mallopt(-1, FRAME_HEAP_TRIM_THRESHOLD))  # M_TRIM_THRESHOLD


class HeapTrimmer:
    """Every ``period`` seconds, glibc's ``malloc_trim(0)``: the free pages inside the heap
    go back to the system.

    Why: the heap keeps what it freed. In-use memory is flat over a run (mallinfo2 in a
    7-minute ``bench --capture``: 63–65 MB), but frames of different lifetimes on three
    threads leave holes, and the free memory kept grew 24.6 → 31.4 MB, the bridge's RSS
    +8 MB (+13 MB in a 10-minute run) before it settled. Trimmed every 30 s, RSS stayed
    within 186–190 MB over those 7 minutes, and a 10-minute run grew +2.9 MB; each trim took
    0.5–3 ms on a thread of its own, and the pages a later frame reuses fault back in once.
    Does nothing off glibc."""

    def __init__(self, period: float = HEAP_TRIM_PERIOD_S):
        self.period = float(period)
        self.trims = 0
        self.longest_ms = 0.0
        self._libc = _glibc()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "HeapTrimmer":
        if self._libc is not None and self._thread is None:
            self._libc.malloc_trim.argtypes = [ctypes.c_size_t]
            self._thread = threading.Thread(target=self._run, name="heap-trim", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            t0 = time.perf_counter()
            self._libc.malloc_trim(0)
            self.longest_ms = max(self.longest_ms, (time.perf_counter() - t0) * 1e3)
            self.trims += 1

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)


def check_size(width: int, height: int) -> None:
    """Sizes the page's I420 packing carries whole: width divisible by 8, height by 4."""
    if not (16 <= width <= 4096 and 16 <= height <= 4096) or width % 8 or height % 4:
        raise ValueError(f"{width}x{height}: the virtual camera's size needs a width divisible by 8 "
                         "and a height divisible by 4, each 16..4096 (e.g. 1280x720)")


@dataclass(frozen=True)
class CapturedFrame:
    seq: int                     # 1, 2, … in arrival order
    pose_frame: int | None       # the tracker frame whose pose the page had applied
    received: float              # time.monotonic() on arrival
    width: int
    height: int
    data: bytes                  # the whole message (header included: no copy was made)

    def i420(self) -> np.ndarray:
        """The I420 bytes, flat (a view: nothing is copied)."""
        return np.frombuffer(self.data, np.uint8, offset=HEADER.size)

    def rgb(self, out: np.ndarray | None = None) -> np.ndarray:
        """RGB (h, w, 3) for backends that want it, written into ``out`` when given."""
        planes = self.i420().reshape(self.height * 3 // 2, self.width)
        return cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420, dst=out)


class FrameSink:
    """The newest frame from the page; ``offer`` runs on the server's loop, ``latest`` anywhere."""

    def __init__(self, width: int, height: int):
        check_size(width, height)
        self.width, self.height = width, height
        self.message_size = HEADER.size + width * height * 3 // 2
        self.received = 0
        self.rejected = 0
        self.last_time = 0.0                 # monotonic time of the newest frame (0: none yet)
        self.page_stats: dict[str, object] = {}   # the page's own timings (its text reports)
        self._latest: CapturedFrame | None = None
        self._lock = threading.Lock()

    def offer(self, message: bytes) -> bool:
        """Keep ``message`` as the newest frame if it is a well-formed one; else count it."""
        if len(message) != self.message_size:
            self.rejected += 1
            return False
        magic, pose, w, h, flags = HEADER.unpack_from(message)
        if magic != MAGIC or flags != FLAG_I420 or (w, h) != (self.width, self.height):
            self.rejected += 1
            return False
        now = time.monotonic()
        with self._lock:
            self.received += 1
            self._latest = CapturedFrame(self.received, None if pose == NO_POSE else pose, now, w, h, message)
            self.last_time = now
        return True

    def note_stats(self, text: str) -> bool:
        """Keep the page's timing report (small JSON text); anything malformed is counted."""
        try:
            msg = json.loads(text) if len(text) < 2048 else None
        except (ValueError, RecursionError):
            msg = None
        if not isinstance(msg, dict) or msg.get("type") != "stats":
            self.rejected += 1
            return False
        stats = {}
        for key, kind in PAGE_STATS.items():
            v = msg.get(key)
            if kind is float and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                stats[key] = round(float(v), 3)
            elif kind is int and isinstance(v, int) and not isinstance(v, bool):
                stats[key] = v
            elif kind is bool and isinstance(v, bool):
                stats[key] = v
            elif kind is str and isinstance(v, str):
                stats[key] = v[:120]
        self.page_stats = stats
        return True

    def latest(self) -> CapturedFrame | None:
        with self._lock:
            return self._latest

"""The virtual camera: the newest frame of the off-screen page, published with pyvirtualcam.

The publisher thread keeps the camera's own clock (``sleep_until_next_frame``): on each
tick it sends the newest captured frame, or the previous one again when the page has
not drawn a new one (a slow or restarting browser shows as a still image, never as a
camera that stops). Before the first frame it sends the background colour. Frames are
I420, which v4l2loopback and OBS take without conversion; a backend that refuses I420
gets RGB converted here.

Opening the camera is the first step of the whole capture path: with no device there is
no browser to start, and one line tells the user how to get a device.
"""
from __future__ import annotations

import collections
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from .capture import FrameSink

V4L2LOOPBACK_FIX = "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=OpenVtuber"
OBS_FIX = "install OBS and start its virtual camera once"


def device_hint() -> str:
    """How to get a virtual camera device on this system (one clause)."""
    if sys.platform.startswith("linux"):
        return f"create one with `{V4L2LOOPBACK_FIX}`"
    return OBS_FIX


class VcamUnavailable(RuntimeError):
    """No virtual camera can be opened; ``str()`` is the one line for the user."""


@dataclass(frozen=True)
class Published:
    """One frame handed to the camera: which capture (``seq``, 0 = background) and pose."""
    n: int
    t: float                     # time.monotonic() when sent
    seq: int
    pose_frame: int | None


def solid_i420(width: int, height: int, rgb: tuple[int, int, int]) -> np.ndarray:
    """A flat I420 frame of one colour (BT.601 limited range, as the page packs them)."""
    r, g, b = (c / 255.0 for c in rgb)
    y = 16 + 219 * (0.299 * r + 0.587 * g + 0.114 * b)
    u = 128 + 224 * (-0.168736 * r - 0.331264 * g + 0.5 * b)
    v = 128 + 224 * (0.5 * r - 0.418688 * g - 0.081312 * b)
    n = width * height
    out = np.empty(n * 3 // 2, np.uint8)
    out[:n], out[n:n + n // 4], out[n + n // 4:] = round(y), round(u), round(v)
    return out


def parse_colour(text: str) -> tuple[int, int, int]:
    """``#rrggbb`` (or ``rrggbb``) → (r, g, b); ValueError names the expected form."""
    s = text.strip().lstrip("#")
    if len(s) != 6 or any(c not in "0123456789abcdefABCDEF" for c in s):
        raise ValueError(f"{text!r}: expected a colour as #rrggbb, e.g. #00b140")
    return int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16)


class VirtualCamera:
    """Owns the ``pyvirtualcam.Camera`` and the thread that feeds it from ``sink``."""

    def __init__(self, sink: FrameSink, fps: float = 30.0, background: tuple[int, int, int] = (0, 177, 64),
                 backend: str | None = None, device: str | None = None, history: int = 4096):
        self.sink = sink
        self.fps = fps
        self.backend = backend
        self.device = device
        self.background = solid_i420(sink.width, sink.height, background)
        self.camera = None
        self.fmt = "I420"
        self.sent = 0
        self.fresh = 0                   # sends that carried a frame not sent before
        self.errors = 0
        self.history: collections.deque[Published] = collections.deque(maxlen=history)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rgb: np.ndarray | None = None
        self._rate = (time.monotonic(), 0, 0)
        self.rate = 0.0
        self.fresh_rate = 0.0

    def open(self) -> "VirtualCamera":
        """Open the device (I420, else RGB); ``VcamUnavailable`` with the user's line if none."""
        try:
            import pyvirtualcam
        except ImportError:
            raise VcamUnavailable("virtual camera off: pyvirtualcam is not installed (pip install pyvirtualcam)") \
                from None
        w, h = self.sink.width, self.sink.height
        if self.backend and self.backend not in pyvirtualcam.camera.BACKENDS:
            # checked here, not left to Camera(): its half-built object prints a traceback when collected
            raise VcamUnavailable(f"virtual camera off: no backend {self.backend!r} "
                                  f"(this system has {', '.join(pyvirtualcam.camera.BACKENDS) or 'none'})")
        errors = []
        for fmt in (pyvirtualcam.PixelFormat.I420, pyvirtualcam.PixelFormat.RGB):
            try:
                self.camera = pyvirtualcam.Camera(w, h, self.fps, fmt=fmt, backend=self.backend, device=self.device)
                self.fmt = fmt.name
                return self
            except Exception as e:  # noqa: BLE001 - every backend has its own exception types
                errors.append(" ".join(str(e).split()))
        why = errors[-1] if errors else "no backend"
        if "format" in errors[0].lower() and "format" in why.lower():
            raise VcamUnavailable(f"virtual camera off: the device refuses {w}x{h} I420 and RGB ({why})")
        raise VcamUnavailable(f"virtual camera off: no device ({why.split('. ')[0].rstrip('.')}); "
                              f"{device_hint()}. VMC and the page keep running")

    @property
    def name(self) -> str:
        return self.camera.device if self.camera is not None else "none"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="virtual-camera", daemon=True)
        self._thread.start()

    def _frame(self, captured) -> np.ndarray:
        if self.fmt == "I420":
            return captured.i420() if captured is not None else self.background
        if self._rgb is None:
            self._rgb = np.empty((self.sink.height, self.sink.width, 3), np.uint8)
        if captured is None:
            import cv2

            planes = self.background.reshape(self.sink.height * 3 // 2, self.sink.width)
            return cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420, dst=self._rgb)
        return captured.rgb(self._rgb)

    def _loop(self) -> None:
        cam = self.camera
        last_seq = -1
        while not self._stop.is_set():
            captured = self.sink.latest()
            try:
                cam.send(self._frame(captured))
            except Exception:  # noqa: BLE001 - a device that hiccups must not end the camera
                self.errors += 1
                time.sleep(1.0 / self.fps)
                continue
            seq = captured.seq if captured is not None else 0
            self.sent += 1
            if seq != last_seq and captured is not None:
                self.fresh += 1
            last_seq = seq
            now = time.monotonic()
            self.history.append(Published(self.sent, now, seq, captured.pose_frame if captured else None))
            t0, n0, f0 = self._rate
            if now - t0 >= 1.0:
                self.rate, self.fresh_rate = (self.sent - n0) / (now - t0), (self.fresh - f0) / (now - t0)
                self._rate = (now, self.sent, self.fresh)
            cam.sleep_until_next_frame()

    def status(self) -> str:
        return f"vcam {self.rate:4.1f} fps ({self.fresh_rate:4.1f} new)"

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if self.camera is not None:
            try:
                self.camera.close()
            except Exception:  # noqa: BLE001
                pass
            self.camera = None


"""Small textures for the bundled avatar, drawn by code and written as PNG.

The PNG encoder uses zlib level 0 (stored blocks), so the bytes do not depend on
the zlib build: the same pixels always give the same file.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np


def png_bytes(img: np.ndarray) -> bytes:
    """Encode an (H, W, 3|4) uint8 array as PNG (RGB or RGBA), deterministically."""
    h, w, ch = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6 if ch == 4 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b""))


def _mix(a, b, t):
    t = np.clip(t, 0, 1)[..., None]
    return np.asarray(a, float) * (1 - t) + np.asarray(b, float) * t


def face_atlas(size: int = 64) -> np.ndarray:
    """128×64 RGB: left half the iris, right half the mouth interior.

    UV (three.js/MMD convention, v = 0 at the top row): iris u ∈ [0, .5],
    mouth u ∈ [.5, 1]."""
    img = np.zeros((size, 2 * size, 3))
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    x = (xx + 0.5) / size * 2 - 1          # -1..1, +x right
    y = 1 - (yy + 0.5) / size * 2          # -1..1, +y up
    r = np.hypot(x, y)
    # Iris: deep teal at the top to bright aqua at the bottom, dark rim, pupil,
    # two highlights (upper left big, lower right small).
    top, bottom = (24, 60, 92), (86, 196, 204)
    iris = _mix(top, bottom, (0.55 - y) / 1.3)
    iris = _mix(iris, (14, 30, 52), (r - 0.78) / 0.2)                 # rim
    iris = _mix(iris, (10, 20, 36), 1 - (np.hypot(x, (y - 0.05) * 0.9) - 0.34) / 0.06)  # pupil
    iris = _mix(iris, (150, 230, 230), (0.3 - np.hypot(x, (y + 0.55) * 1.8)) / 0.25 * 0.6)  # glow
    iris = _mix(iris, (255, 255, 255), 1 - (np.hypot(x + 0.36, y - 0.42) - 0.2) / 0.05)
    iris = _mix(iris, (255, 255, 255), 1 - (np.hypot(x - 0.34, y + 0.34) - 0.08) / 0.04)
    img[:, :size] = iris
    # Mouth: dark red interior, a tongue at the bottom.
    mouth = _mix((120, 30, 42), (70, 14, 24), (0.6 - y) / 1.2)
    mouth = _mix(mouth, (232, 120, 128), 1 - (np.hypot(x * 0.8, (y + 1.05)) - 0.55) / 0.08)
    img[:, size:] = mouth
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def blush(size: int = 32) -> np.ndarray:
    """RGBA soft pink ellipse, alpha fading to zero at the border."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    x = (xx + 0.5) / size * 2 - 1
    y = (yy + 0.5) / size * 2 - 1
    r = np.hypot(x, y)
    a = np.clip(1 - r, 0, 1) ** 1.2 * 0.55
    # Three soft diagonal hatch strokes, the classic anime blush.
    for k in (-0.4, 0.0, 0.4):
        d = np.abs((x - k) + 0.45 * y)
        a = np.maximum(a, np.clip(1 - d / 0.06, 0, 1) * (np.abs(y) < 0.45) * 0.75 * (r < 0.8))
    img = np.zeros((size, size, 4))
    img[..., 0], img[..., 1], img[..., 2] = 244, 118, 138
    img[..., 3] = a * 255
    return np.clip(np.round(img), 0, 255).astype(np.uint8)

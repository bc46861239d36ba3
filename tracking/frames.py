"""Frame hygiene: whatever a source hands over becomes a BGR uint8 image, or is refused.

Cameras and files produce grayscale, BGRA, 16-bit, empty or absurd frames; the pipeline
must never crash on them. ``normalize_frame`` converts what it can and raises
``BadFrame`` (one line, counted by the caller) for what it cannot.
"""
from __future__ import annotations

import numpy as np

MIN_SIDE = 32          # smaller than this cannot hold a detectable face
MAX_PIXELS = 8192 * 8192


class BadFrame(ValueError):
    """A frame that cannot be tracked; the message says why in one line."""


def normalize_frame(image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise BadFrame(f"frame is {type(image).__name__}, not an image array")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise BadFrame(f"frame has shape {image.shape}: expected H×W, H×W×3 or H×W×4")
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise BadFrame(f"frame is {w}×{h}: too small to hold a face (minimum {MIN_SIDE} px)")
    if h * w > MAX_PIXELS:
        raise BadFrame(f"frame is {w}×{h}: larger than 8192×8192")
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        elif np.issubdtype(image.dtype, np.floating):
            image = np.clip(np.nan_to_num(image) * 255.0, 0, 255).astype(np.uint8)
        else:
            raise BadFrame(f"frame has pixel type {image.dtype}: expected 8-bit")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return image

"""SSD anchors of BlazeFace short range (MediaPipe's SsdAnchorsCalculator options)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

INPUT_SIZE = 128
STRIDES = (8, 16, 16, 16)


@lru_cache(maxsize=1)
def blazeface_anchors() -> np.ndarray:
    """(896, 2) anchor centres in 0..1. ``fixed_anchor_size`` makes every anchor 1×1.

    Layers with the same stride are merged into one grid with two anchors per cell
    (aspect ratio 1 plus the interpolated scale), as the calculator does.
    """
    centres = []
    layer = 0
    while layer < len(STRIDES):
        stride = STRIDES[layer]
        per_cell = 0
        while layer < len(STRIDES) and STRIDES[layer] == stride:
            per_cell += 2
            layer += 1
        n = -(-INPUT_SIZE // stride)
        for y in range(n):
            for x in range(n):
                for _ in range(per_cell):
                    centres.append(((x + 0.5) / n, (y + 0.5) / n))
    return np.asarray(centres, dtype=np.float64)

"""Pure-numpy BlazeFace decode + weighted NMS: the reference and the fallback.

Same arithmetic, in the same order and in float64, as the Cython kernel in
``_decode.pyx``, so both return identical detections (a test holds them to that).
"""
from __future__ import annotations

import math

import numpy as np

NUM_COORDS = 16  # box (4) + 6 keypoints × (x, y)


def logit_threshold(score_thresh: float) -> float:
    """The logit at which the sigmoid reaches ``score_thresh``: the cut is made before squashing."""
    return math.log(score_thresh / (1.0 - score_thresh))


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, input_size: float,
           score_thresh: float, iou_thresh: float) -> np.ndarray:
    """Return (K, 17) rows ``[score, xmin, ymin, xmax, ymax, kx0, ky0, … kx5, ky5]`` in 0..1.

    ``raw_boxes`` (N, 16) and ``raw_scores`` (N,) are the network's outputs; scores are
    logits clipped to ±100 then squashed, boxes offsets in input pixels from the anchors.
    """
    logits = np.clip(raw_scores.astype(np.float64), -100.0, 100.0)
    keep = np.nonzero(logits >= logit_threshold(score_thresh))[0]
    if keep.size == 0:
        return np.zeros((0, 1 + NUM_COORDS), dtype=np.float64)
    # libm's exp (as in the C kernel), not numpy's SIMD exp, which differs in the last bit
    scores = np.array([1.0 / (1.0 + math.exp(-v)) for v in logits[keep]])
    raw = raw_boxes[keep].astype(np.float64) / input_size
    ax, ay = anchors[keep, 0], anchors[keep, 1]
    cx, cy = raw[:, 0] + ax, raw[:, 1] + ay
    hw, hh = raw[:, 2] / 2.0, raw[:, 3] / 2.0
    det = np.empty((keep.size, 1 + NUM_COORDS), dtype=np.float64)
    det[:, 0] = scores
    det[:, 1], det[:, 2], det[:, 3], det[:, 4] = cx - hw, cy - hh, cx + hw, cy + hh
    det[:, 5::2] = raw[:, 4::2] + ax[:, None]
    det[:, 6::2] = raw[:, 5::2] + ay[:, None]
    return weighted_nms(det, iou_thresh)


def _iou(a: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix = np.minimum(a[2], boxes[:, 2]) - np.maximum(a[0], boxes[:, 0])
    iy = np.minimum(a[3], boxes[:, 3]) - np.maximum(a[1], boxes[:, 1])
    inter = np.where((ix > 0) & (iy > 0), ix * iy, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def weighted_nms(det: np.ndarray, iou_thresh: float) -> np.ndarray:
    """MediaPipe's WEIGHTED non-max suppression: each cluster's box and keypoints are the
    score-weighted mean of its members; the cluster keeps its best score."""
    order = np.argsort(-det[:, 0], kind="stable")
    remaining = det[order]
    out = []
    while remaining.shape[0]:
        top = remaining[0]
        close = _iou(top[1:5], remaining[:, 1:5]) > iou_thresh
        close[0] = True  # a degenerate (zero-area) box still forms its own cluster
        members = remaining[close]
        merged = top.copy()
        w = members[:, 0]
        acc = np.zeros(NUM_COORDS, dtype=np.float64)
        total = 0.0
        for i in range(members.shape[0]):  # sequential sum: same order as the Cython kernel
            acc += w[i] * members[i, 1:]
            total += w[i]
        merged[1:] = acc / total
        out.append(merged)
        remaining = remaining[~close]
    return np.asarray(out, dtype=np.float64)

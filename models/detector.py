"""BlazeFace short-range face detector (MediaPipe ``face_detection_short_range``).

Pre-processing letterboxes the whole frame into 128×128 (aspect kept, zero padding,
values −1..1) in one affine warp; post-processing decodes the 896 anchors and merges
overlaps with weighted NMS (Cython, numpy fallback), then undoes the letterbox.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import decode as _decode
from .anchors import INPUT_SIZE, blazeface_anchors
from .roi import RotatedRect, fill_input, warp
from .runtime import Model, load
from .weights import model_path

OUTPUTS = ("regressors", "classificators")
MAX_DECIMATION = 8.0   # frames over 8 × 128 px on the long side are area-downscaled first
OUTPUT_SHAPES = ((1, 896, 16), (1, 896, 1))

# Keypoint order of the network (the person's own sides).
RIGHT_EYE, LEFT_EYE, NOSE_TIP, MOUTH, RIGHT_EAR, LEFT_EAR = range(6)


@dataclass(frozen=True)
class Detection:
    """One face: score, box (x0, y0, x1, y1) and 6 keypoints (6, 2), all in image pixels."""

    score: float
    box: tuple[float, float, float, float]
    keypoints: np.ndarray

    def roi(self, scale: float = 1.5) -> RotatedRect:
        """MediaPipe's detection → landmark ROI: box centre, eye-line rotation, square long side × 1.5."""
        x0, y0, x1, y1 = self.box
        re, le = self.keypoints[RIGHT_EYE], self.keypoints[LEFT_EYE]
        angle = float(np.arctan2(le[1] - re[1], le[0] - re[0]))
        side = max(x1 - x0, y1 - y0) * scale
        return RotatedRect((x0 + x1) / 2, (y0 + y1) / 2, side, side, angle)

    def mirrored(self, width: int) -> "Detection":
        """This detection of a horizontally mirrored frame, in the unmirrored frame's pixels:
        x reflected, and the person's right and left keypoints swapped back."""
        x0, y0, x1, y1 = self.box
        kp = self.keypoints[[LEFT_EYE, RIGHT_EYE, NOSE_TIP, MOUTH, LEFT_EAR, RIGHT_EAR]].copy()
        kp[:, 0] = width - kp[:, 0]
        return Detection(self.score, (width - x1, y0, width - x0, y1), kp)


class FaceDetector:
    """Finds faces in a BGR frame; ``decoder`` picks ``cython``/``numpy`` (default: the best built)."""

    def __init__(self, runtime: str = "auto", threads: int = 1, score_thresh: float = 0.5,
                 iou_thresh: float = 0.3, decoder: str | None = None):
        self.model: Model = load(model_path("face_detection_short_range"), OUTPUTS, OUTPUT_SHAPES, runtime, threads)
        self.score_thresh = score_thresh
        self.iou_thresh = iou_thresh
        self._anchors = blazeface_anchors()
        self._input = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
        self.set_decoder(decoder)

    def set_decoder(self, decoder: str | None) -> None:
        if decoder in (None, "auto"):
            self._decode, self.decoder = _decode.decode, _decode.BACKEND
        elif decoder == "numpy":
            self._decode, self.decoder = _decode.decode_numpy, "numpy"
        elif decoder == "cython":
            if _decode.decode_cython is None:
                raise RuntimeError("the Cython decoder is not built: run `make install`")
            self._decode, self.decoder = _decode.decode_cython, "cython"
        else:
            raise ValueError(f"unknown decoder {decoder!r}")

    def letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """Matrix taking 128-px input coordinates to image pixels, plus the scale and padding."""
        h, w = image.shape[:2]
        scale = max(w, h) / INPUT_SIZE
        pad_x = (max(w, h) - w) / 2
        pad_y = (max(w, h) - h) / 2
        m = np.array([[scale, 0.0, -pad_x], [0.0, scale, -pad_y]])
        return m, scale, pad_x, pad_y

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces in a BGR uint8 frame, best first."""
        m, scale, pad_x, pad_y = self.letterbox(image)
        src = image
        if scale > MAX_DECIMATION:
            # A bilinear warp samples 1 pixel in ``scale``: on huge frames that aliases the
            # face away. Area-average down first (webcam-sized frames skip this).
            f = MAX_DECIMATION / scale
            src = cv2.resize(image, (max(1, round(image.shape[1] * f)), max(1, round(image.shape[0] * f))),
                             interpolation=cv2.INTER_AREA)
            m = m * np.array([[src.shape[1] / image.shape[1]], [src.shape[0] / image.shape[0]]])
        patch = warp(src, m, INPUT_SIZE, cv2.BORDER_CONSTANT)
        fill_input(patch, self._input[0], 2.0 / 255.0, -1.0)   # RGB, −1..1
        raw_boxes, raw_scores = self.model.run(self._input)
        dets = self._decode(np.ascontiguousarray(raw_boxes[0], dtype=np.float32),
                            np.ascontiguousarray(raw_scores[0, :, 0], dtype=np.float32),
                            self._anchors, float(INPUT_SIZE), self.score_thresh, self.iou_thresh)
        side = INPUT_SIZE * scale
        out = []
        for row in dets:
            coords = row[1:] * side
            coords[0::2] -= pad_x
            coords[1::2] -= pad_y
            out.append(Detection(float(row[0]), tuple(float(v) for v in coords[:4]),
                                 coords[4:].reshape(6, 2).astype(np.float32)))
        return out

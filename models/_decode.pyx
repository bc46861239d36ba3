# cython: language_level=3
"""Cython BlazeFace decode + weighted NMS (see decode_numpy.py for the reference).

Scores first, so only anchors above threshold are decoded; NMS over a handful of
candidates with no temporary arrays. Arithmetic mirrors the numpy version exactly.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport exp, log

cnp.import_array()

DEF NC = 16


cdef inline double _iou(double[:] a, double[:] b) noexcept nogil:
    cdef double ix = min(a[3], b[3]) - max(a[1], b[1])
    cdef double iy = min(a[4], b[4]) - max(a[2], b[2])
    cdef double inter = ix * iy if (ix > 0 and iy > 0) else 0.0
    cdef double union = (a[3] - a[1]) * (a[4] - a[2]) + (b[3] - b[1]) * (b[4] - b[2]) - inter
    return inter / union if union > 0 else 0.0


def decode(const float[:, :] raw_boxes, const float[:] raw_scores, const double[:, :] anchors,
           double input_size, double score_thresh, double iou_thresh):
    cdef Py_ssize_t n = raw_scores.shape[0], i, j, k, m = 0
    cdef double logit, s, ax, ay, cx, cy, hw, hh
    cdef double cut = log(score_thresh / (1.0 - score_thresh))
    cdef cnp.ndarray[cnp.float64_t, ndim=2] det_arr = np.empty((n, 1 + NC), dtype=np.float64)
    cdef double[:, :] det = det_arr
    for i in range(n):
        logit = raw_scores[i]
        if logit < -100.0:
            logit = -100.0
        elif logit > 100.0:
            logit = 100.0
        if logit < cut:
            continue
        s = 1.0 / (1.0 + exp(-logit))
        ax = anchors[i, 0]
        ay = anchors[i, 1]
        cx = <double>raw_boxes[i, 0] / input_size + ax
        cy = <double>raw_boxes[i, 1] / input_size + ay
        hw = (<double>raw_boxes[i, 2] / input_size) / 2.0
        hh = (<double>raw_boxes[i, 3] / input_size) / 2.0
        det[m, 0] = s
        det[m, 1] = cx - hw
        det[m, 2] = cy - hh
        det[m, 3] = cx + hw
        det[m, 4] = cy + hh
        for k in range(6):
            det[m, 5 + 2 * k] = <double>raw_boxes[i, 4 + 2 * k] / input_size + ax
            det[m, 6 + 2 * k] = <double>raw_boxes[i, 5 + 2 * k] / input_size + ay
        m += 1
    if m == 0:
        return np.zeros((0, 1 + NC), dtype=np.float64)
    return _weighted_nms(det_arr[:m], iou_thresh)


cdef _weighted_nms(cnp.ndarray[cnp.float64_t, ndim=2] det_in, double iou_thresh):
    order = np.argsort(-det_in[:, 0], kind="stable")
    cdef double[:, :] det = det_in[order]
    cdef Py_ssize_t n = det.shape[0], i, j, c, top, count = 0
    cdef cnp.ndarray[cnp.uint8_t, ndim=1] used_arr = np.zeros(n, dtype=np.uint8)
    cdef unsigned char[:] used = used_arr
    cdef cnp.ndarray[cnp.float64_t, ndim=2] out_arr = np.empty((n, 1 + NC), dtype=np.float64)
    cdef double[:, :] out = out_arr
    cdef double acc[NC]
    cdef double total, w
    for top in range(n):
        if used[top]:
            continue
        for c in range(NC):
            acc[c] = 0.0
        total = 0.0
        for j in range(top, n):
            if used[j]:
                continue
            if j == top or _iou(det[top], det[j]) > iou_thresh:
                used[j] = 1
                w = det[j, 0]
                for c in range(NC):
                    acc[c] += w * det[j, 1 + c]
                total += w
        out[count, 0] = det[top, 0]
        for c in range(NC):
            out[count, 1 + c] = acc[c] / total
        count += 1
    return out_arr[:count].copy()

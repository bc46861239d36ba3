"""Triangulating the 468 MediaPipe landmarks into a face mesh with eye and mouth openings.

We have no licence-clean copy of MediaPipe's own tessellation in the repository, so the
mesh is a Delaunay triangulation of the frontal (x, y) landmark positions. Delaunay does
not know that the eyelids and lips are boundaries: across the thin gap between the inner
lips it happily connects upper to lower lip, so the gap could never open. We therefore
insert those contours as constraint edges (edge flips, Sloan's method), drop the hull
slivers outside the face oval, and label the triangles inside each eye and the mouth:
the renderer draws those as windows onto the eyeball and the mouth interior.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay

# The face-oval ring, clockwise from the forehead (MediaPipe FACEMESH_FACE_OVAL order).
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54,
             103, 67, 109]
# Eyelid margins, outer → inner corner for the person's right eye (image-left) and
# outer → inner for the left eye; upper[i] sits above lower[i].
RIGHT_EYE_UPPER = [33, 246, 161, 160, 159, 158, 157, 173, 133]
RIGHT_EYE_LOWER = [33, 7, 163, 144, 145, 153, 154, 155, 133]
LEFT_EYE_UPPER = [263, 466, 388, 387, 386, 385, 384, 398, 362]
LEFT_EYE_LOWER = [263, 249, 390, 373, 374, 380, 381, 382, 362]
# Inner and outer lip contours, image-left mouth corner → image-right corner.
LIPS_INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIPS_INNER_LOWER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
LIPS_OUTER_UPPER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LIPS_OUTER_LOWER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
NOSE_TIP, FOREHEAD, CHIN = 1, 10, 152

KIND_SKIN, KIND_RIGHT_EYE, KIND_LEFT_EYE, KIND_MOUTH = 0, 1, 2, 3


def ring(upper: list[int], lower: list[int]) -> list[int]:
    """Closed contour: along the upper margin, back along the lower one."""
    return upper + lower[-2:0:-1]


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _segments_cross(p1, p2, q1, q2) -> bool:
    """Proper intersection (touching at endpoints does not count)."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def _edge_map(tris: list[tuple[int, int, int]]) -> dict[tuple[int, int], list[int]]:
    emap: dict[tuple[int, int], list[int]] = {}
    for i, t in enumerate(tris):
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            emap.setdefault((min(a, b), max(a, b)), []).append(i)
    return emap


def insert_constraints(pts: np.ndarray, tris: np.ndarray, edges: list[tuple[int, int]]
                       ) -> np.ndarray:
    """Make every edge in ``edges`` an edge of the triangulation by flipping crossing edges."""
    tl = [tuple(int(v) for v in t) for t in tris]
    for a, b in edges:
        for _ in range(500):
            emap = _edge_map(tl)
            if (min(a, b), max(a, b)) in emap:
                break
            crossing = [e for e in emap if a not in e and b not in e
                        and _segments_cross(pts[a], pts[b], pts[e[0]], pts[e[1]])]
            for c, d in crossing:
                owners = emap[(c, d)]
                if len(owners) != 2:
                    continue
                e = next(v for v in tl[owners[0]] if v not in (c, d))
                f = next(v for v in tl[owners[1]] if v not in (c, d))
                if _segments_cross(pts[c], pts[d], pts[e], pts[f]):   # convex quad: flip
                    tl[owners[0]], tl[owners[1]] = (e, f, c), (f, e, d)
                    break
            else:
                raise RuntimeError(f"cannot insert mesh edge {a}-{b}")
        else:
            raise RuntimeError(f"cannot insert mesh edge {a}-{b}")
    return np.array(tl, dtype=np.int32)


def _inside(poly: np.ndarray, points: np.ndarray) -> np.ndarray:
    contour = poly.astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) > 0
                     for x, y in points])


def separate_lips(xy: np.ndarray, margin: float = 0.4) -> np.ndarray:
    """Move landmarks that fall inside the inner-lip gap up above the upper inner lip.

    In a smile the network squeezes the upper lip's rings together and the ring just
    above the inner lip (12, 38, 41, ...) can land a fraction of a pixel *below* it, which
    would put skin inside the mouth opening. Returns a corrected copy (x, y only moved in y).
    """
    out = xy.copy()
    contour = ring(LIPS_INNER_UPPER, LIPS_INNER_LOWER)
    up = xy[LIPS_INNER_UPPER]
    order = np.argsort(up[:, 0])
    stray = [v for v in range(len(xy)) if v not in contour]
    inside = np.array(stray)[_inside(xy[contour], xy[stray])]
    for v in inside:
        y_up = np.interp(xy[v, 0], up[order, 0], up[order, 1])
        out[v, 1] = min(xy[v, 1], y_up - margin)
    return out


def triangulate_face(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(triangles (T, 3), kind (T,)) for the frontal landmark positions ``xy`` (468, 2)."""
    tris = Delaunay(xy).simplices
    contours = [FACE_OVAL + FACE_OVAL[:1], RIGHT_EYE_UPPER, RIGHT_EYE_LOWER, LEFT_EYE_UPPER,
                LEFT_EYE_LOWER, LIPS_INNER_UPPER, LIPS_INNER_LOWER]
    edges = [(a, b) for c in contours for a, b in zip(c[:-1], c[1:])]
    tris = insert_constraints(xy, tris, edges)
    centroids = xy[tris].mean(axis=1)
    tris = tris[_inside(xy[FACE_OVAL], centroids)]
    centroids = xy[tris].mean(axis=1)
    kind = np.full(len(tris), KIND_SKIN, dtype=np.int8)
    for k, (up, lo) in ((KIND_RIGHT_EYE, (RIGHT_EYE_UPPER, RIGHT_EYE_LOWER)),
                        (KIND_LEFT_EYE, (LEFT_EYE_UPPER, LEFT_EYE_LOWER)),
                        (KIND_MOUTH, (LIPS_INNER_UPPER, LIPS_INNER_LOWER))):
        contour = ring(up, lo)
        inside = _inside(xy[contour], centroids)
        if not np.isin(tris[inside], contour).all():
            raise RuntimeError("an eye or mouth opening holds a vertex off its contour")
        kind[inside] = k
    return tris, kind

"""The synthetic head's texture atlas: the astronaut photo plus painted swatches.

One atlas means one ``cv2.remap`` per frame. Layout (atlas pixels, continuous
coordinates): the photo upsampled ×2 (bicubic) fills the left 1024×1024; to its right sit
the iris (radial colour profile measured on the photo's iris), flat swatches (sclera,
cloth, caruncle, under-jaw skin), the neck swatch and the mouth-interior strip.
Everything here also cleans the photo where the photo would lie when the head turns.
"""
from __future__ import annotations

import cv2
import numpy as np

from .synth_topology import FACE_OVAL

ATLAS_SCALE = 2
_PHOTO = 512 * ATLAS_SCALE
ATLAS_SHAPE = (512 * ATLAS_SCALE, _PHOTO + 256, 3)
IRIS_CENTRE = np.array([_PHOTO + 48.0, 48.0])
IRIS_PATCH_R = 32.0          # atlas pixels for the iris rim (the patch reaches 1.3×)
SCLERA_UV = np.array([_PHOTO + 128.0, 48.0])
CLOTH_UV = np.array([_PHOTO + 200.0, 48.0])
CARUNCLE_UV = np.array([_PHOTO + 200.0, 320.0])
JAW_UV = np.array([_PHOTO + 136.0, 320.0])
NECK_X0, NECK_Y0, NECK_SIZE = _PHOTO + 32.0, 300.0, 64.0
MOUTH_X0, MOUTH_W, MOUTH_Y0, MOUTH_H = _PHOTO + 16.0, 224.0, 112.0, 160.0
MOUTH_ROWS_PER_M = 3600.0    # mouth-strip rows per metre of lip gap
SCLERA_BGR, CLOTH_BGR, CARUNCLE_BGR = (196, 204, 220), (34, 28, 30), (128, 138, 182)


def head_mask(photo: np.ndarray, oval_xy: np.ndarray) -> np.ndarray:
    """Hair + face + ears + neck of the photo (GrabCut seeded with the face oval)."""
    mask = np.full(photo.shape[:2], cv2.GC_BGD, np.uint8)
    cx, cy = oval_xy.mean(axis=0)
    w = np.ptp(oval_xy[:, 0])
    mask[int(cy - 1.4 * w):int(cy + 1.5 * w), int(cx - 1.2 * w):int(cx + 1.2 * w)] = cv2.GC_PR_BGD
    cv2.ellipse(mask, (int(cx), int(cy - 0.1 * w)), (int(0.82 * w), int(1.05 * w)), 0, 0, 360,
                cv2.GC_PR_FGD, -1)
    cv2.fillPoly(mask, [oval_xy.astype(np.int32)], cv2.GC_FGD)
    cv2.setRNGSeed(0)   # GrabCut's k-means: keep the mesh identical run to run
    cv2.grabCut(photo, mask, None, np.zeros((1, 65)), np.zeros((1, 65)), 4, cv2.GC_INIT_WITH_MASK)
    keep = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    return cv2.erode(keep, np.ones((5, 5), np.uint8))


def reach(mask: np.ndarray, start: np.ndarray, direction: np.ndarray, limit: float = 80.0) -> float:
    """How far (px) one can walk from ``start`` along ``direction`` and stay in ``mask``."""
    h, w = mask.shape
    for t in np.arange(0.0, limit, 0.5):
        x, y = (start + direction * t).astype(int)
        if not (0 <= x < w and 0 <= y < h) or not mask[y, x]:
            return max(t - 0.5, 0.0)
    return limit


def clean_face_edge(photo: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Inpaint hair strands, ear and backdrop pixels in the rim of the face oval below the
    brows. Seen frontally the rim is a few pixels wide; turned 45° it fills a cheek, and
    stray dark pixels there become streaks that pull the landmark network off."""
    inside = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(lm[FACE_OVAL, :2]).astype(np.int32)], 1)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    lab = cv2.cvtColor(photo, cv2.COLOR_BGR2LAB).astype(np.float32)
    core = lab[dist > 12]
    med = np.median(core, axis=0)
    mad = np.maximum(np.median(np.abs(core - med), axis=0) * 1.48, 1.0)
    rows = np.arange(photo.shape[0])[:, None]
    band = (inside > 0) & (rows > lm[[105, 334, 66, 296], 1].max())
    odd = ((lab[..., 0] < med[0] - 2.2 * mad[0]) | (lab[..., 0] > med[0] + 3 * mad[0])
           | (np.abs(lab[..., 1] - med[1]) > 3 * mad[1])
           | (np.abs(lab[..., 2] - med[2]) > 3 * mad[2]))
    bad = band & (((dist < 9) & odd) | (dist < 2.5))
    bad = cv2.dilate(bad.astype(np.uint8), np.ones((3, 3), np.uint8)) & inside
    return cv2.inpaint(photo, bad, 5, cv2.INPAINT_TELEA)


def _iris_patch(atlas: np.ndarray, photo: np.ndarray, iris: np.ndarray, lids: np.ndarray) -> None:
    """Paint a round iris whose radial colour profile is the photo's (lids excluded)."""
    c, r = iris[0, :2], np.linalg.norm(iris[1:, :2] - iris[0, :2], axis=1).mean()
    lid_poly = lids.astype(np.float32).reshape(-1, 1, 2)
    prof = []
    for rho in np.linspace(0.0, 1.0, 9):
        samples = []
        for a in np.linspace(0, 2 * np.pi, 48, endpoint=False):
            x, y = c + rho * r * np.array([np.cos(a), np.sin(a)])
            if cv2.pointPolygonTest(lid_poly, (float(x), float(y)), True) > 0.7:
                samples.append(cv2.getRectSubPix(photo, (1, 1), (x - 0.5, y - 0.5))[0, 0])
        if samples:
            prof.append(np.median(samples, axis=0))
    prof = np.array(prof, dtype=np.float32)
    size = int(IRIS_PATCH_R * 1.3) + 2
    yy, xx = np.mgrid[-size:size, -size:size].astype(np.float32) + 0.5
    rho = np.hypot(xx, yy) / IRIS_PATCH_R
    theta = np.arctan2(yy, xx)
    col = np.stack([np.interp(np.minimum(rho, 1.0), np.linspace(0, 1, len(prof)), prof[:, ch])
                    for ch in range(3)], axis=-1)
    col *= (1.0 + 0.12 * np.sin(23 * theta) * np.clip(rho - 0.35, 0, 1))[..., None]   # fibres
    col *= np.clip((rho - 0.22) / 0.12, 0.15, 1.0)[..., None]                        # pupil
    col *= (1.0 - 0.45 * np.clip((rho - 0.82) / 0.18, 0, 1))[..., None]              # limbus
    blend = np.clip((rho - 1.0) / 0.15, 0, 1)[..., None]
    col = col * (1 - blend) + np.array(SCLERA_BGR, np.float32) * 0.8 * blend
    cx, cy = IRIS_CENTRE.astype(int)
    atlas[cy - size:cy + size, cx - size:cx + size] = np.clip(col, 0, 255).astype(np.uint8)


def _mouth_strip(atlas: np.ndarray, photo: np.ndarray, upper: np.ndarray, lower: np.ndarray,
                 gaps_m: np.ndarray, s: np.ndarray) -> None:
    """Mouth interior, columns along the mouth: the photo's teeth between the lips at rest,
    then a darkening red-brown; rows are proportional to the lip gap in metres, so the
    teeth keep their size as the jaw opens."""
    w, h = int(MOUTH_W), int(MOUTH_H)
    cols = (np.arange(w) + 0.5) / w
    rows = np.arange(h) + 0.5
    rest = np.interp(cols, s, gaps_m) * MOUTH_ROWS_PER_M          # teeth rows per column
    ux, uy = np.interp(cols, s, upper[:, 0]), np.interp(cols, s, upper[:, 1])
    lx, ly = np.interp(cols, s, lower[:, 0]), np.interp(cols, s, lower[:, 1])
    f = np.clip(rows[:, None] / np.maximum(rest[None, :], 1e-6), 0, 1)
    mx = (ux + f * (lx - ux)).astype(np.float32) - 0.5
    my = (uy + f * (ly - uy)).astype(np.float32) - 0.5
    teeth = cv2.remap(photo, mx, my, cv2.INTER_LINEAR).astype(np.float32)
    depth = np.clip((rows[:, None] - rest[None, :]) / 60.0, 0, 1)[..., None]
    near, deep = np.array([40, 38, 92], np.float32), np.array([16, 12, 30], np.float32)
    dark = near * (1 - depth) + deep * depth
    edge = np.clip((rows[:, None] - rest[None, :]) / 4.0, 0, 1)[..., None]
    strip = teeth * (1 - edge) + dark * edge
    y0, x0 = int(MOUTH_Y0), int(MOUTH_X0)
    atlas[y0:y0 + h, x0:x0 + w] = np.clip(strip, 0, 255).astype(np.uint8)


def build_atlas(photo: np.ndarray, lm: np.ndarray, iris: np.ndarray, lids: np.ndarray,
                lips: tuple[np.ndarray, np.ndarray], lip_gaps_m: np.ndarray,
                lip_s: np.ndarray) -> np.ndarray:
    """The atlas. ``iris`` (5, 3) and ``lids`` (16, 2): one eye of the photo; ``lips``: the
    inner upper/lower lip points (photo px) with their gaps (m) and positions 0..1 along
    the mouth."""
    atlas = np.zeros(ATLAS_SHAPE, np.uint8)
    atlas[:, :_PHOTO] = cv2.resize(clean_face_edge(photo, lm), None, fx=ATLAS_SCALE,
                                   fy=ATLAS_SCALE, interpolation=cv2.INTER_CUBIC)
    oval = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(oval, [lm[FACE_OVAL, :2].astype(np.int32)], 1)
    skin = np.median(photo[oval > 0], axis=0).astype(np.float32)
    jaw_bgr = tuple(int(c) for c in skin * 0.85)      # under the jaw: a little shadowed
    for centre, colour in ((SCLERA_UV, SCLERA_BGR), (CLOTH_UV, CLOTH_BGR),
                           (CARUNCLE_UV, CARUNCLE_BGR), (JAW_UV, jaw_bgr)):
        cx, cy = centre.astype(int)
        cv2.rectangle(atlas, (cx - 20, cy - 20), (cx + 20, cy + 20), colour, -1)
    yy = (np.mgrid[0:int(NECK_SIZE), 0:int(NECK_SIZE)][0] + 0.5) / NECK_SIZE
    neck = skin * (0.75 + 0.2 * np.clip(yy / 0.6, 0, 1))[..., None]    # shadow under the jaw
    atlas[int(NECK_Y0):int(NECK_Y0 + NECK_SIZE), int(NECK_X0):int(NECK_X0 + NECK_SIZE)] = neck
    _iris_patch(atlas, photo, iris, lids)
    _mouth_strip(atlas, photo, lips[0], lips[1], lip_gaps_m, lip_s)
    return atlas

"""The synthetic head: a textured 3D mesh built from scikit-image's astronaut photo.

Why this way: tests need faces with known answers, and a face our networks can track
must look like a real one. So the geometry is our own landmark network's 3D output on a
real public-domain photo (``skimage.data.astronaut()``), the texture is that photo, and
everything the photo cannot give (the back of the head, the neck, the eyeballs behind
the lids, the inside of the mouth) is added here:

* the 468 landmarks, re-expressed in a metric *head frame* (x → the person's left,
  y down, z away from the camera when the face looks at it; origin on the midline, at
  eye-corner height, at the depth of the face-oval points beside the ears 234/454), the
  face 14 cm wide between those points;
* a shell of rings from the face oval round the back of an ellipsoid, textured with the
  hair/ears/neck around the face (a GrabCut mask keeps the photo's backdrop out);
* a neck and collar that do not turn with the head;
* per-eye eyeball spheres (the renderer ray-casts them through the eye openings) with an
  iris texture whose colours come from the photo's iris;
* a mouth-interior strip: the photo's teeth, then a dark gradient, shown through the
  inner-lip opening as the jaw opens;
* precomputed deformations: the lids closing (skin above stretches) and the jaw
  rotating open about a hinge near the ears.

Neutral pitch: the frame puts forehead (10) and chin (152) at equal depth, as MediaPipe's
canonical face model has them (within 1°). Neutral gaze: the iris where the photo has it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import synth_texture as tx
from .synth_topology import (CHIN, FACE_OVAL, FOREHEAD, KIND_LEFT_EYE, KIND_RIGHT_EYE, KIND_SKIN,
                             LEFT_EYE_LOWER, LEFT_EYE_UPPER, LIPS_INNER_LOWER, LIPS_INNER_UPPER,
                             LIPS_OUTER_LOWER, LIPS_OUTER_UPPER, RIGHT_EYE_LOWER, RIGHT_EYE_UPPER,
                             separate_lips, triangulate_face)

FACE_WIDTH_M = 0.14          # between the face-oval points 234 and 454
EYE_RADIUS_M = 0.012
SHELL_CENTRE = np.array([0.0, -0.022, 0.012])
SHELL_AXES = np.array([0.083, 0.098, 0.100])
SHELL_RINGS = 12
JAW_HINGE = np.array([0.0, 0.012, 0.004])
JAW_MAX_DEG = 16.0
GROUP_NECK, GROUP_SHELL, GROUP_OPENING, GROUP_SKIN = 0, 1, 2, 3



@dataclass(frozen=True)
class EyeModel:
    """One eyeball: centre (head frame, m), radius, iris angular radius, lid vertices."""

    centre: np.ndarray
    radius: float
    iris_angle: float
    upper: np.ndarray
    lower: np.ndarray


@dataclass(frozen=True)
class HeadMesh:
    vertices: np.ndarray      # (V, 3) neutral, head frame (m); neck vertices in body frame
    body: np.ndarray          # (V,) bool: neck/collar vertices, which do not rotate
    normals: np.ndarray       # (V, 3) neutral vertex normals
    tris: np.ndarray          # (T, 3) outward winding
    group: np.ndarray         # (T,) drawing layer: neck < shell < openings < skin
    kind: np.ndarray          # (T,) KIND_*: which triangles are eye/mouth windows
    uv: np.ndarray            # (T, 3, 2) atlas coordinates per corner
    flat: np.ndarray          # (T,) texture is a plain swatch (no baked light): shade fully
    atlas: np.ndarray         # BGR uint8
    eyes: tuple[EyeModel, EyeModel]    # (person's right, left)
    blink: np.ndarray         # (2, V, 3) displacement at full closure (right, left)
    eye_shadow: np.ndarray    # (T, 3) per-corner shade of eye windows (upper lid shadow)
    jaw_weight: np.ndarray    # (V,) 0 = skull, 1 = moves with the jaw
    mouth_s: np.ndarray       # (V,) position along the mouth 0..1 (lip vertices)
    mouth_pair: np.ndarray    # (V,) for inner lower-lip vertices: their upper partner, else -1
    photo_to_head: np.ndarray  # (3, 4) affine: photo (x, y, z px) → head frame (m)


def _canonical_frame(lm: np.ndarray) -> np.ndarray:
    """Affine (3, 4) from photo pixels (x, y, z) to the metric head frame (see module doc)."""
    pairs = [(FACE_OVAL[36 - i], FACE_OVAL[i]) for i in range(1, 18)]
    pairs += [(33, 263), (133, 362), (61, 291), (78, 308)]
    a, b = np.array(pairs).T
    d = lm[b] - lm[a]
    x = (d / np.linalg.norm(d, axis=1, keepdims=True)).mean(axis=0)
    x /= np.linalg.norm(x)
    y = lm[CHIN] - lm[FOREHEAD]
    y -= x * (y @ x)
    y /= np.linalg.norm(y)
    rot = np.stack([x, y, np.cross(x, y)])
    origin = ((((lm[a] + lm[b]) / 2) @ x).mean() * x + (lm[[33, 133, 362, 263]] @ y).mean() * y
              + (lm[[234, 454]] @ rot[2]).mean() * rot[2])
    scale = FACE_WIDTH_M / np.linalg.norm(lm[454] - lm[234])
    return np.hstack([scale * rot, (-scale * rot @ origin)[:, None]])


def _apply(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    return p @ m[:, :3].T + m[:, 3]


def _slerp(u: np.ndarray, v: np.ndarray, t: float) -> np.ndarray:
    ang = np.arccos(np.clip(u @ v, -1.0, 1.0))
    return (np.sin((1 - t) * ang) * u + np.sin(t * ang) * v) / np.sin(ang)


def _shell(oval: np.ndarray, oval_photo: np.ndarray, mask: np.ndarray):
    """Rings from the face oval round the back of the head ellipsoid, and their texture.

    Each oval point starts a column that follows the ellipsoid's meridian to the back pole
    (its offset from the ellipsoid fading out); a second column between each pair of oval
    points keeps the crown round rather than faceted. Returns rings (K-1, 2n, 3), their
    photo uv (K-1, 2n, 2) and the pole.

    Texture: above the ears each column walks out along its oval point's outward direction
    through the photo's hair (as far as the head mask goes) by the time it is half way
    round, then walks back part of the way, so sides and back show hair rather than
    smeared pixels. Below the ears the photo shows backdrop beside the jaw, so those
    columns get NaN: the caller paints them with one jaw-skin colour.
    """
    n = len(oval)
    back = np.array([0.0, 0.0, 1.0])
    q = (oval - SHELL_CENTRE) / SHELL_AXES
    rho = np.linalg.norm(q, axis=1)
    u = q / rho[:, None]
    t = np.arange(1, SHELL_RINGS) / SHELL_RINGS
    centre_photo = oval_photo.mean(axis=0)
    walks = []
    for i in range(n):
        out = oval_photo[i] - centre_photo
        out /= np.linalg.norm(out)
        reach = min(tx.reach(mask, oval_photo[i] + out, out), 45.0)
        if oval[i, 1] > 0.035 or reach < 4.0:
            walk = np.full(len(t), np.nan)
        else:
            walk = 1.0 + reach * np.where(t < 0.5, t / 0.5, 1.0 - 1.3 * (t - 0.5))
        walks.append(oval_photo[i] + out[None, :] * walk[:, None])
    nxt = np.roll(np.arange(n), -1)
    u_mid = u + u[nxt]
    cols_u = np.stack([u, u_mid / np.linalg.norm(u_mid, axis=1, keepdims=True)], axis=1)
    cols_rho = np.stack([rho, (rho + rho[nxt]) / 2], axis=1).reshape(-1)
    cols_u = cols_u.reshape(-1, 3)
    walks = np.array(walks)                                      # (n, K-1, 2)
    cols_uv = np.stack([walks, (walks + walks[nxt]) / 2], axis=1).reshape(2 * n, len(t), 2)
    rings = np.array([[SHELL_CENTRE + SHELL_AXES * _slerp(cu, back, tk)
                       * (1.0 + (cr - 1.0) * (1.0 - tk) ** 3)
                       for cu, cr in zip(cols_u, cols_rho)] for tk in t])
    return rings, cols_uv.transpose(1, 0, 2), SHELL_CENTRE + SHELL_AXES * back


def _neck():
    """A neck that widens into a collar; texture: a skin swatch (shaded round and darker
    under the jaw; the photo's own neck is hidden in shadow and turtleneck), then cloth."""
    seg, levels = 24, [0.02, 0.06, 0.10, 0.13, 0.17, 0.24, 0.34]
    radii = [0.052, 0.052, 0.054, 0.058, 0.085, 0.15, 0.22]
    ang = np.linspace(0, 2 * np.pi, seg, endpoint=False)
    verts, cloth = [], []
    for y, r in zip(levels, radii):
        for a in ang:
            verts.append([r * np.sin(a), y, 0.015 - r * np.cos(a)])
            cloth.append(y > 0.14)
    verts = np.array(verts)
    around = np.tile(np.sin(ang), len(levels))
    down = np.clip((verts[:, 1] - levels[0]) / (levels[3] - levels[0]), 0, 1)
    uv = np.stack([tx.NECK_X0 + (0.5 + 0.45 * around) * tx.NECK_SIZE,
                   tx.NECK_Y0 + (0.05 + 0.9 * down) * tx.NECK_SIZE], axis=1)
    tris = []
    for l in range(len(levels) - 1):
        for s in range(seg):
            a, b = l * seg + s, l * seg + (s + 1) % seg
            tris += [(a, b, b + seg), (a, b + seg, a + seg)]
    tris = np.array(tris)
    tri_uv = uv[tris]
    tri_uv[np.array(cloth)[tris].any(axis=1)] = tx.CLOTH_UV    # never interpolate skin→cloth
    return verts, tri_uv, tris


def _blink_field(v: np.ndarray, upper: list[int], lower: list[int], skin: np.ndarray) -> np.ndarray:
    """Displacement at full closure: the upper lid falls to 80 % of the gap, the lower lid
    rises the rest, the closed lid bulges over the cornea; nearby skin follows, fading."""
    up, lo = np.array(upper[1:-1]), np.array(lower[1:-1])
    gap = v[lo] - v[up]
    bulge = np.zeros_like(gap)
    bulge[:, 2] = -0.0012 * np.sin(np.pi * np.arange(1, len(up) + 1) / (len(up) + 1))
    d = np.zeros_like(v)
    d[up] = 0.8 * gap + bulge
    d[lo] = -0.2 * gap + bulge
    eye = np.concatenate([up, lo])
    line_x = v[upper, 0]
    order = np.argsort(line_x)
    mid_y = (v[upper, 1] + v[lower, 1])[order] / 2
    for src, sign in ((up, -1.0), (lo, 1.0)):
        others = np.setdiff1d(np.nonzero(skin)[0], np.concatenate([eye, upper[:1], upper[-1:]]))
        side = sign * (v[others, 1] - np.interp(v[others, 0], line_x[order], mid_y)) > 0
        near = (v[others, 0] > line_x.min() - 0.004) & (v[others, 0] < line_x.max() + 0.004)
        others = others[side & near]
        dist2 = ((v[others, None, :2] - v[None, src, :2]) ** 2).sum(-1)
        w = np.exp(-dist2 / (2 * 0.003 ** 2)) + 1e-12
        fade = np.exp(-dist2.min(axis=1) / (2 * 0.0065 ** 2))
        d[others] = (w @ d[src]) / w.sum(axis=1, keepdims=True) * fade[:, None]
    return d


def _jaw_weights(v: np.ndarray) -> np.ndarray:
    up, lo = np.array(LIPS_INNER_UPPER), np.array(LIPS_INNER_LOWER)
    mid = (v[up] + v[lo]) / 2
    order = np.argsort(mid[:, 0])
    x0, x1 = mid[:, 0].min(), mid[:, 0].max()
    line = np.interp(v[:, 0], mid[order, 0], mid[order, 1])
    beyond = np.maximum(np.maximum(x0 - v[:, 0], v[:, 0] - x1), 0.0)
    lo_edge, hi_edge = -0.0005 - 0.4 * beyond, 0.0015 + 1.0 * beyond
    w = np.clip((v[:, 1] - line - lo_edge) / (hi_edge - lo_edge), 0, 1)
    w = w * w * (3 - 2 * w)
    w[LIPS_INNER_UPPER + LIPS_OUTER_UPPER] = 0.0
    w[LIPS_INNER_LOWER + LIPS_OUTER_LOWER] = 1.0
    w[[78, 308, 61, 291]] = 0.5
    return w


def _orient(v: np.ndarray, tris: np.ndarray, outward: np.ndarray) -> np.ndarray:
    """Wind each triangle so its normal points along ``outward`` (per triangle)."""
    n = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    flip = (n * outward).sum(axis=1) < 0
    out = tris.copy()
    out[flip, 1], out[flip, 2] = tris[flip, 2], tris[flip, 1]
    return out


def _vertex_normals(v: np.ndarray, tris: np.ndarray) -> np.ndarray:
    n = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    acc = np.zeros_like(v)
    for k in range(3):
        np.add.at(acc, tris[:, k], n)
    return acc / np.maximum(np.linalg.norm(acc, axis=1, keepdims=True), 1e-12)


def photo_landmarks() -> tuple[np.ndarray, np.ndarray, object]:
    """(BGR photo, 468×3 landmarks, observation) from running our pipeline on the astronaut."""
    from skimage import data

    from ..pipeline import FacePipeline
    photo = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    obs = FacePipeline(tracking=False).process(photo)
    if not obs.found:
        raise RuntimeError("the landmark network found no face in skimage's astronaut photo")
    return photo, obs.landmarks.astype(np.float64), obs


def _shell_mesh(face_v: np.ndarray, tex: np.ndarray, mask: np.ndarray):
    """Shell vertices (after the 468 face vertices), triangles, per-corner photo uv (NaN:
    jaw swatch), and per ring its vertex ids (ring 0: the face oval) and the oval points
    each column comes from (a column between two points: both)."""
    rings, ring_uv, pole = _shell(face_v[FACE_OVAL], tex[FACE_OVAL], mask)
    n = len(FACE_OVAL)
    cols = 2 * n
    base = len(face_v)
    ids = [base + k * cols + np.arange(cols) for k in range(rings.shape[0])]
    pole_id = base + rings.shape[0] * cols
    oval, oval_uv = np.array(FACE_OVAL), tex[FACE_OVAL]
    tris, uv = [], []
    for i in range(n):                     # oval → first ring: three triangles per oval edge
        j = (i + 1) % n
        near, mid, far = 2 * i, 2 * i + 1, (2 * i + 2) % cols
        a, b, m_, c = oval[i], ids[0][near], ids[0][mid], ids[0][far]
        ua, ub, um, uc = oval_uv[i], ring_uv[0][near], ring_uv[0][mid], ring_uv[0][far]
        tris += [(a, b, m_), (a, m_, oval[j]), (oval[j], m_, c)]
        uv += [(ua, ub, um), (ua, um, oval_uv[j]), (oval_uv[j], um, uc)]
    for k in range(rings.shape[0] - 1):
        for i in range(cols):
            j = (i + 1) % cols
            a, b, c, d = ids[k][i], ids[k][j], ids[k + 1][j], ids[k + 1][i]
            ua, ub, uc, ud = ring_uv[k][i], ring_uv[k][j], ring_uv[k + 1][j], ring_uv[k + 1][i]
            tris += [(a, b, c), (a, c, d)]
            uv += [(ua, ub, uc), (ua, uc, ud)]
    for i in range(cols):
        j = (i + 1) % cols
        tris.append((ids[-1][i], ids[-1][j], pole_id))
        uv.append((ring_uv[-1][i], ring_uv[-1][j], (ring_uv[-1][i] + ring_uv[-1][j]) / 2))
    verts = np.vstack([rings.reshape(-1, 3), pole[None]])
    return verts, np.array(tris), np.array(uv), ids


def _oriented(verts: np.ndarray, tris: np.ndarray, uv: np.ndarray, outward: np.ndarray):
    """``_orient`` that keeps per-corner uv with their corners."""
    out = _orient(verts, tris, outward)
    swapped = (out != tris).any(axis=1)
    uv = uv.copy()
    uv[swapped] = uv[swapped][:, [0, 2, 1]]
    return out, uv


def _eye_models(face_v: np.ndarray, m: np.ndarray, obs) -> list[EyeModel]:
    """Eyeball centre straight behind the photo's iris (so gaze 0 is the photo's gaze), the
    iris 1 mm in front of the front-most lid point, radius ``EYE_RADIUS_M``."""
    eyes = []
    for res, upper, lower in ((obs.right_eye, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER),
                              (obs.left_eye, LEFT_EYE_UPPER, LEFT_EYE_LOWER)):
        front = face_v[upper + lower, 2].min() - 0.001
        c_ph = res.iris[0, :2].astype(np.float64)
        # the photo's viewing ray through the iris centre, at head-frame depth ``front``
        p0, p1 = _apply(m, np.array([*c_ph, 0.0])), _apply(m, np.array([*c_ph, 1.0]))
        iris_3d = p0 + (p1 - p0) * (front - p0[2]) / (p1[2] - p0[2])
        r_px = np.linalg.norm(res.iris[1:, :2] - res.iris[0, :2], axis=1).mean()
        r_m = r_px * np.linalg.norm(m[0, :3])              # photo px → metres
        eyes.append(EyeModel(iris_3d + [0, 0, EYE_RADIUS_M], EYE_RADIUS_M,
                             float(np.arcsin(min(r_m / EYE_RADIUS_M, 0.9))),
                             np.array(upper), np.array(lower)))
    return eyes


@lru_cache(maxsize=1)
def head_mesh() -> HeadMesh:
    """Build (once per process) the synthetic head; runs the face networks once."""
    photo, lm, obs = photo_landmarks()
    lm[:, :2] = separate_lips(lm[:, :2])
    m = _canonical_frame(lm)
    face_v = _apply(m, lm)
    face_t, kind = triangulate_face(lm[:, :2])
    # the oval points sit on the photo's face edge, half on backdrop: sample 3 px inside
    tex = lm[:, :2].copy()
    out = tex[FACE_OVAL] - tex[FACE_OVAL].mean(axis=0)
    tex[FACE_OVAL] -= 3.0 * out / np.linalg.norm(out, axis=1, keepdims=True)

    mask = tx.head_mask(photo, lm[FACE_OVAL, :2])
    shell_v, shell_t, shell_uv, ring_ids = _shell_mesh(face_v, tex, mask)
    neck_v, neck_uv, neck_t = _neck()
    n_head = len(face_v) + len(shell_v)
    verts = np.vstack([face_v, shell_v, neck_v])
    body = np.arange(len(verts)) >= n_head
    neck_t = neck_t + n_head

    # winding: face towards -z, shell away from the ellipsoid centre, neck from its axis
    face_t = _orient(verts, face_t, np.array([[0.0, 0.0, -1.0]]))
    shell_t, shell_uv = _oriented(verts, shell_t, shell_uv,
                                  verts[shell_t].mean(axis=1) - SHELL_CENTRE)
    cen = verts[neck_t].mean(axis=1)
    neck_t, neck_uv = _oriented(verts, neck_t, neck_uv, cen * [1, 0, 1] - [0, 0, 0.015])
    shell_uv = shell_uv * tx.ATLAS_SCALE
    jaw_t = np.isnan(shell_uv).any(axis=(1, 2))
    shell_uv[jaw_t] = tx.JAW_UV     # one colour, no smears

    all_t = np.vstack([neck_t, shell_t, face_t]).astype(np.int32)
    group = np.concatenate([np.full(len(neck_t), GROUP_NECK), np.full(len(shell_t), GROUP_SHELL),
                            np.where(kind == KIND_SKIN, GROUP_SKIN, GROUP_OPENING)]).astype(np.int8)
    kinds = np.concatenate([np.zeros(len(neck_t) + len(shell_t), np.int8), kind])
    flat = np.concatenate([np.ones(len(neck_t), bool), jaw_t, np.zeros(len(face_t), bool)])
    uv = np.concatenate([neck_uv, shell_uv, tex[face_t] * tx.ATLAS_SCALE]).astype(np.float32)
    normals = _vertex_normals(verts, all_t[kinds == KIND_SKIN])

    eyes = _eye_models(face_v, m, obs)
    skin_v = np.arange(len(verts)) < len(face_v)
    blink = np.stack([_blink_field(verts, list(e.upper), list(e.lower), skin_v) for e in eyes])
    eye_shadow = np.ones((len(all_t), 3), np.float32)        # the upper lid shades the ball
    upper = np.array(RIGHT_EYE_UPPER[1:-1] + LEFT_EYE_UPPER[1:-1])
    windows = np.isin(kinds, (KIND_RIGHT_EYE, KIND_LEFT_EYE))
    eye_shadow[windows] = np.where(np.isin(all_t[windows], upper), 0.72, 1.0)

    jaw = np.zeros(len(verts))
    jaw[:len(face_v)] = _jaw_weights(face_v)
    oval_w = jaw[FACE_OVAL]
    col_w = np.stack([oval_w, (oval_w + np.roll(oval_w, -1)) / 2], axis=1).reshape(-1)
    for k, ids in enumerate(ring_ids, start=1):
        jaw[ids] = col_w * max(0.0, 1.0 - 2.0 * k / SHELL_RINGS)
    up, lo = np.array(LIPS_INNER_UPPER), np.array(LIPS_INNER_LOWER)
    s_all = np.clip((verts[:, 0] - face_v[78, 0]) / (face_v[308, 0] - face_v[78, 0]), 0, 1)
    pair = np.full(len(verts), -1)
    pair[lo[1:-1]] = up[1:-1]

    atlas = tx.build_atlas(photo, lm, obs.right_eye.iris,
                           lm[RIGHT_EYE_UPPER + RIGHT_EYE_LOWER[-2:0:-1], :2],
                           (lm[up, :2], lm[lo, :2]),
                           np.linalg.norm(face_v[lo] - face_v[up], axis=1), s_all[up])
    return HeadMesh(verts, body, normals, all_t, group, kinds, uv, flat, atlas, (eyes[0], eyes[1]),
                    blink, eye_shadow, jaw, s_all, pair, m)

"""Mesh primitives for the bundled avatar: parametric grids, tubes, solid shells,
surface projection.  Pure numpy, no randomness, so the output is deterministic.

Everything is in three.js model space (right-handed, Y up, facing +Z, +X = the
model's left).  Triangles wind counter-clockwise seen from outside.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Part:
    """One piece of the model: its vertices, triangles, material and skinning."""
    name: str
    material: str
    pos: np.ndarray
    faces: np.ndarray
    uv: np.ndarray | None = None
    nrm: np.ndarray | None = None
    bones: np.ndarray | None = None      # (N, 2) bone names resolved later as ints
    weights: np.ndarray | None = None    # (N,) weight of bones[:, 0]
    edge: float = 1.0
    tags: dict = field(default_factory=dict)   # name → vertex index arrays (for morphs)

    def __post_init__(self):
        self.pos = np.asarray(self.pos, float)
        self.faces = np.asarray(self.faces, np.int64).reshape(-1, 3)
        if self.uv is None:
            self.uv = np.zeros((len(self.pos), 2))
        if self.nrm is None:
            self.nrm = vertex_normals(self.pos, self.faces)


def vertex_normals(pos: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted smooth vertex normals."""
    n = np.zeros_like(pos)
    a, b, c = pos[faces[:, 0]], pos[faces[:, 1]], pos[faces[:, 2]]
    fn = np.cross(b - a, c - a)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    ln = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.where(ln > 1e-12, ln, 1.0)


def grid(points: np.ndarray, periodic: bool = False, cap_start: bool = False,
         cap_end: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangulate a (rows, cols, 3) grid of points.

    Rows run along v, columns along u.  ``periodic`` joins the last column to the
    first; ``cap_start``/``cap_end`` collapse the first/last row into one pole
    vertex (a fan), so spheres have no slivers at the poles.  Returns positions,
    faces and the (rows, cols) index map (poles repeated).
    """
    rows, cols, _ = points.shape
    idx = np.zeros((rows, cols), np.int64)
    verts = []
    k = 0
    for r in range(rows):
        pole = (r == 0 and cap_start) or (r == rows - 1 and cap_end)
        if pole:
            verts.append(points[r].mean(axis=0, keepdims=True))
            idx[r] = k
            k += 1
        else:
            verts.append(points[r])
            idx[r] = np.arange(k, k + cols)
            k += cols
    faces = []
    cu = cols if periodic else cols - 1
    for r in range(rows - 1):
        for c in range(cu):
            c2 = (c + 1) % cols
            a, b, cc, d = idx[r, c], idx[r, c2], idx[r + 1, c2], idx[r + 1, c]
            # Winding follows the grid's parametrisation; closed shapes are then
            # flipped outwards with orient_outward().
            if a != b:
                faces.append((a, d, b))
            if cc != d:
                faces.append((b, d, cc))
    return np.concatenate(verts), np.array(faces, np.int64), idx


def orient_outward(pos: np.ndarray, faces: np.ndarray, center) -> np.ndarray:
    """Flip all faces if most of them point towards ``center`` (for closed blobs)."""
    a, b, c = pos[faces[:, 0]], pos[faces[:, 1]], pos[faces[:, 2]]
    fn = np.cross(b - a, c - a)
    out = ((a + b + c) / 3 - np.asarray(center)) * fn
    if out.sum() < 0:
        return faces[:, ::-1].copy()
    return faces


def ellipsoid(center, radii, nu=32, nv=16, shape=None) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere scaled by ``radii``; ``shape(d)`` may deform the unit directions."""
    th = np.linspace(0, np.pi, nv + 1)            # from +Y (top) to -Y
    ph = np.linspace(0, 2 * np.pi, nu, endpoint=False)
    T, P = np.meshgrid(th, ph, indexing="ij")
    d = np.stack([np.sin(T) * np.sin(P), np.cos(T), np.sin(T) * np.cos(P)], -1)
    p = d * np.asarray(radii, float)
    if shape is not None:
        p = shape(d, p)
    p = p + np.asarray(center, float)
    pos, faces, _ = grid(p, periodic=True, cap_start=True, cap_end=True)
    return pos, orient_outward(pos, faces, center)


def lathe(profile_r, profile_y, nu=32, scale_xz=(1.0, 1.0), center=(0.0, 0.0, 0.0),
          cap_start=True, cap_end=True):
    """Revolve (r, y) around the Y axis; the cross-section is an ellipse
    (r·sx, r·sz).  The profile should start and end at r = 0 for a closed solid."""
    r = np.asarray(profile_r, float)[:, None]
    y = np.asarray(profile_y, float)[:, None]
    ph = np.linspace(0, 2 * np.pi, nu, endpoint=False)[None, :]
    p = np.stack([r * np.sin(ph) * scale_xz[0], np.broadcast_to(y, (len(y), nu)),
                  r * np.cos(ph) * scale_xz[1]], -1) + np.asarray(center, float)
    pos, faces, _ = grid(p, periodic=True, cap_start=cap_start, cap_end=cap_end)
    c = np.array([center[0], float(np.mean(profile_y)), center[2]])
    return pos, orient_outward(pos, faces, c)


def frames_along(curve: np.ndarray, up_hint) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tangents and two normals along a polyline (rotation-minimising)."""
    t = np.gradient(curve, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    n0 = np.cross(t[0], up_hint)
    if np.linalg.norm(n0) < 1e-6:
        n0 = np.cross(t[0], [1.0, 0, 0])
    n0 /= np.linalg.norm(n0)
    ns = [n0]
    for i in range(1, len(curve)):
        n = ns[-1] - t[i] * np.dot(ns[-1], t[i])
        ns.append(n / np.linalg.norm(n))
    n = np.array(ns)
    b = np.cross(t, n)
    return t, n, b


def tube(curve, r1, r2=None, nu=16, up_hint=(0.0, 0.0, 1.0), round_ends=True):
    """A closed tube along ``curve`` (K, 3) with elliptical radii r1 (along the
    frame's normal) and r2 (binormal) per point; ends closed by poles."""
    curve = np.asarray(curve, float)
    r1 = np.broadcast_to(np.asarray(r1, float), (len(curve),))
    r2 = r1 if r2 is None else np.broadcast_to(np.asarray(r2, float), (len(curve),))
    t, n, b = frames_along(curve, np.asarray(up_hint, float))
    ph = np.linspace(0, 2 * np.pi, nu, endpoint=False)
    ring = (np.cos(ph)[None, :, None] * (r1[:, None, None] * n[:, None, :])
            + np.sin(ph)[None, :, None] * (r2[:, None, None] * b[:, None, :]))
    p = curve[:, None, :] + ring
    if round_ends:
        start = curve[0] - t[0] * 0.35 * min(r1[0], r2[0])
        end = curve[-1] + t[-1] * 0.35 * min(r1[-1], r2[-1])
        p = np.concatenate([np.repeat(start[None, None], nu, 1), p,
                            np.repeat(end[None, None], nu, 1)], 0)
    pos, faces, _ = grid(p, periodic=True, cap_start=True, cap_end=True)
    a, bb, c = pos[faces[:, 0]], pos[faces[:, 1]], pos[faces[:, 2]]
    fn = np.cross(bb - a, c - a)
    # Outward test per face against the nearest curve point.
    cen = (a + bb + c) / 3
    d = np.linalg.norm(cen[:, None, :] - curve[None, :, :], axis=2).argmin(1)
    if (np.einsum("ij,ij->i", cen - curve[d], fn)).sum() < 0:
        faces = faces[:, ::-1].copy()
    return pos, faces


def project_z(xy: np.ndarray, pos: np.ndarray, faces: np.ndarray, nrm: np.ndarray):
    """Cast rays along -Z at each (x, y) onto a mesh; return the front-most hit's
    position and interpolated normal.  Raises if a ray misses."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    a, b, c = pos[faces[:, 0]], pos[faces[:, 1]], pos[faces[:, 2]]
    # Only faces that look towards +Z can be the front-most surface.
    fn = np.cross(b - a, c - a)
    keep = fn[:, 2] > 1e-9
    f, a, b, c = faces[keep], a[keep], b[keep], c[keep]
    v0, v1 = b[:, :2] - a[:, :2], c[:, :2] - a[:, :2]
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    out_p = np.zeros((len(xy), 3))
    out_n = np.zeros((len(xy), 3))
    for i, q in enumerate(xy):
        w = q[None, :] - a[:, :2]
        u = (w[:, 0] * v1[:, 1] - v1[:, 0] * w[:, 1]) / den
        v = (v0[:, 0] * w[:, 1] - w[:, 0] * v0[:, 1]) / den
        hit = (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9)
        if not hit.any():
            raise ValueError(f"ray at {q} misses the surface")
        z = a[hit, 2] + u[hit] * (b[hit, 2] - a[hit, 2]) + v[hit] * (c[hit, 2] - a[hit, 2])
        j = np.argmax(z)
        fi = f[hit][j]
        uu, vv = u[hit][j], v[hit][j]
        out_p[i] = [q[0], q[1], z[j]]
        nn = (1 - uu - vv) * nrm[fi[0]] + uu * nrm[fi[1]] + vv * nrm[fi[2]]
        out_n[i] = nn / np.linalg.norm(nn)
    return out_p, out_n


def polar_grid(n_rings: int, n_seg: int):
    """A disk: centre vertex + rings; returns (rho, theta) per vertex and faces
    (CCW seen from +Z when mapped with x = rho cos θ, y = rho sin θ)."""
    rho = [0.0]
    th = [0.0]
    for r in range(1, n_rings + 1):
        for s in range(n_seg):
            rho.append(r / n_rings)
            th.append(2 * np.pi * s / n_seg)
    faces = []
    for s in range(n_seg):
        faces.append((0, 1 + s, 1 + (s + 1) % n_seg))
    for r in range(1, n_rings):
        o0, o1 = 1 + (r - 1) * n_seg, 1 + r * n_seg
        for s in range(n_seg):
            s2 = (s + 1) % n_seg
            faces.append((o0 + s, o1 + s, o1 + s2))
            faces.append((o0 + s, o1 + s2, o0 + s2))
    return np.array(rho), np.array(th), np.array(faces, np.int64)


def strip_grid(n_u: int, n_v: int):
    """A (n_v+1)×(n_u+1) sheet in (s, t) ∈ [0,1]²; faces CCW seen from +Z when
    s runs along +x and t along +y."""
    s, t = np.meshgrid(np.linspace(0, 1, n_u + 1), np.linspace(0, 1, n_v + 1))
    faces = []
    W = n_u + 1
    for j in range(n_v):
        for i in range(n_u):
            a, b = j * W + i, j * W + i + 1
            c, d = a + W, b + W
            faces.append((a, b, d))
            faces.append((a, d, c))
    return s.ravel(), t.ravel(), np.array(faces, np.int64)


def solid_shell(outer: np.ndarray, thickness, center, periodic=True):
    """Give a (rows, cols, 3) grid surface (row 0 a pole, last row an open hem)
    thickness: an inner copy offset inwards, joined at the hem, so the result is a
    closed solid (outline shells then render cleanly).  ``thickness`` may be a
    (rows, cols) array."""
    pos_o, f_o, idx = grid(outer, periodic=periodic, cap_start=True)
    f_o = orient_outward(pos_o, f_o, center)
    n_o = vertex_normals(pos_o, f_o)
    th = np.broadcast_to(np.asarray(thickness, float), outer.shape[:2])
    # Per-vertex thickness (pole takes the row's mean).
    th_v = np.zeros(len(pos_o))
    for r in range(outer.shape[0]):
        th_v[idx[r]] = th[r] if r else th[0].mean()
    pos_i = pos_o - n_o * th_v[:, None]
    n = len(pos_o)
    f_i = f_o[:, ::-1] + n
    hem = idx[-1]
    cols = outer.shape[1]
    side = []
    cu = cols if periodic else cols - 1
    for c in range(cu):
        c2 = (c + 1) % cols
        a, b = hem[c], hem[c2]
        side.append((a, a + n, b))
        side.append((b, a + n, b + n))
    pos = np.concatenate([pos_o, pos_i])
    faces = np.concatenate([f_o, f_i, np.array(side, np.int64)])
    return pos, faces

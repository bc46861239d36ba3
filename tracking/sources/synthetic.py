"""Synthetic ground truth: render the astronaut head at a commanded pose, with the answer.

Tests and the ``demo`` source need faces whose head pose, eye closure, gaze and mouth are
known exactly, on machines without a webcam. ``SyntheticFace.render`` draws the textured
head from ``synth_mesh`` through a pinhole camera and returns the BGR frame together with
its ``GroundTruth`` (the pose and the projected landmarks).

Conventions (the project's, pinned by tests):

* yaw > 0: the person turns to their own left (nose → image right, unmirrored);
  pitch > 0: looks up; roll > 0: top of the head tilts toward their own left shoulder
  (image right). Gaze yaw/pitch use the same signs, relative to the head.
* ``head_rotation`` composes R = R_yaw · R_pitch · R_roll (roll applied first, yaw last,
  about the camera's vertical): the same order as Unity's ZXY Euler angles.
* Camera space is OpenCV's: x right, y down, z forward (metres); the head translation
  (x, y, z) is where the head-frame origin (midline, eye-corner height, ear depth) sits.
* Image coordinates are continuous pixels: the centre of pixel (0, 0) is (0.5, 0.5),
  as in ``models.roi``. "Left"/"right" eye is always the person's own.

Rendering (no GL): cull back faces, sort triangles far→near within layers (neck, back of
head, eye/mouth windows, face skin), paint triangle ids with ``cv2.fillConvexPoly``, then
per pixel interpolate atlas coordinates and shading and sample the atlas with one
``cv2.remap``. Eye-window pixels ray-cast the eyeball sphere instead, so the iris sits
behind the lids with real parallax and moves with gaze.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from . import synth_mesh as sm
from . import synth_texture as tx
from .synth_topology import KIND_LEFT_EYE, KIND_MOUTH, KIND_RIGHT_EYE

# Towards the light, camera space: from the camera, a little above (a monitor or ring light)
LIGHT_DIR = np.array([0.0, -0.3, -1.0]) / np.linalg.norm([0.0, -0.3, -1.0])
PLAIN_BGR = (150, 158, 166)
LID_FOLLOW = 0.012          # closure units per degree of gaze pitch


@dataclass
class FacePose:
    """The commanded pose; the defaults are a neutral face 0.6 m in front of the camera.

    Neutral gaze is the photo's own (the iris where the astronaut has it); the upper lids
    follow vertical gaze a little (``LID_FOLLOW``), as real lids do, before the commanded
    closure closes what is left. Values outside their ranges are clipped.
    """

    yaw: float = 0.0          # degrees
    pitch: float = 0.0
    roll: float = 0.0
    x: float = 0.0            # metres, camera space (x right, y down, z forward)
    y: float = 0.0
    z: float = 0.6
    eye_close_left: float = 0.0       # 0 open .. 1 closed, person's own sides
    eye_close_right: float = 0.0
    gaze_left_yaw: float = 0.0        # degrees relative to the head
    gaze_left_pitch: float = 0.0
    gaze_right_yaw: float = 0.0
    gaze_right_pitch: float = 0.0
    mouth_open: float = 0.0           # 0 closed .. 1 open


@dataclass
class GroundTruth:
    """What a perfect tracker would report for one rendered frame.

    ``landmarks`` are the projections of the (deformed) mesh vertices, occluded or not,
    in the pipeline's continuous pixel coordinates; the iris centres are the projected
    centres of the iris discs on the eyeballs. Angles, closure, gaze and mouth: ``pose``.
    """

    pose: FacePose
    landmarks: np.ndarray             # (468, 2) projected mesh vertices, image px
    landmarks_3d: np.ndarray          # (468, 3) camera space, metres
    iris_left: np.ndarray             # (2,) projected iris centre, image px
    iris_right: np.ndarray
    rotation: np.ndarray              # (3, 3) head frame → camera space
    translation: np.ndarray           # (3,) metres
    camera_matrix: np.ndarray         # (3, 3) pinhole intrinsics (continuous pixels)
    image_size: tuple[int, int] = (640, 480)
    visible: bool = True              # every landmark lies inside the image


def _rx(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def _ry(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def _rz(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head frame → camera rotation for the project's angle convention (degrees)."""
    return _ry(-yaw) @ _rx(-pitch) @ _rz(roll)


def gaze_rotation(yaw: float, pitch: float) -> np.ndarray:
    """Eye → head rotation; the eye looks along -z of its frame."""
    return _ry(-yaw) @ _rx(-pitch)


def _background(kind: object, width: int, height: int) -> np.ndarray:
    if isinstance(kind, np.ndarray):
        img = kind if kind.ndim == 3 else np.repeat(kind[..., None], 3, axis=2)
        return np.ascontiguousarray(cv2.resize(img[..., :3].astype(np.uint8), (width, height)))
    if isinstance(kind, tuple):
        return np.full((height, width, 3), kind, np.uint8)
    if kind == "plain":
        return np.full((height, width, 3), PLAIN_BGR, np.uint8)
    if kind == "photo":
        from skimage import data
        img = np.ascontiguousarray(data.coffee()[:, :, ::-1])    # a café table, no faces
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(img, (0, 0), max(width, height) / 160)
    raise ValueError(f"background must be 'plain', 'photo', a BGR tuple or an image, not {kind!r}")


class SyntheticFace:
    """Renders the synthetic head through a pinhole camera (``fov_deg``: horizontal).

    ``background``: "plain", "photo" (a blurred café scene from scikit-image), a BGR tuple
    or an image. ``noise``: std of Gaussian pixel noise in 8-bit levels, seeded by ``seed``
    and the render count. ``light`` (brightness gain) and ``contrast`` (gain about mid
    grey) act on the whole frame like room light; they may be changed between renders.
    Same arguments and the same poses in the same order give identical frames.
    """

    def __init__(self, width: int = 640, height: int = 480, fov_deg: float = 60.0,
                 background: object = "plain", noise: float = 0.0, light: float = 1.0,
                 contrast: float = 1.0, seed: int = 0):
        self.mesh = sm.head_mesh()
        self.width, self.height = int(width), int(height)
        self.f = (width / 2) / math.tan(math.radians(fov_deg) / 2)
        self.camera_matrix = np.array([[self.f, 0, width / 2], [0, self.f, height / 2], [0, 0, 1]])
        self.background = _background(background, self.width, self.height)
        self.noise, self.light, self.contrast, self.seed = noise, light, contrast, seed
        self.renders = 0
        self._noise_bank: np.ndarray | None = None
        m = self.mesh
        self._mouth_tris = np.nonzero(m.kind == KIND_MOUTH)[0]
        self._eye_tris = np.nonzero((m.kind == KIND_RIGHT_EYE) | (m.kind == KIND_LEFT_EYE))[0]
        self._neutral_lambert = np.clip(m.normals @ LIGHT_DIR, 0, 1)

    # -- geometry -------------------------------------------------------------------------
    def _deform(self, pose: FacePose) -> np.ndarray:
        m = self.mesh
        v = m.vertices.copy()
        for k, (amount, gaze_pitch) in enumerate(((pose.eye_close_right, pose.gaze_right_pitch),
                                                   (pose.eye_close_left, pose.gaze_left_pitch))):
            # real upper lids follow vertical gaze (wider looking up, lower looking down);
            # the commanded closure then closes what is left
            follow = float(np.clip(-LID_FOLLOW * gaze_pitch, -0.35, 0.5))
            amount = float(np.clip(amount, 0, 1))
            amount = follow + amount * (1 - follow)
            if amount:
                v += amount * m.blink[k]
        if pose.mouth_open:
            rel = v - sm.JAW_HINGE
            rot = _rx(float(np.clip(pose.mouth_open, 0, 1)) * sm.JAW_MAX_DEG)
            v += m.jaw_weight[:, None] * (rel @ rot.T - rel)
        return v

    def _project(self, pts: np.ndarray) -> np.ndarray:
        return self.f * pts[:, :2] / pts[:, 2:3] + self.camera_matrix[:2, 2]

    # -- rendering ------------------------------------------------------------------------
    def _geometry(self, pose: FacePose):
        """(rotation, translation, head-frame vertices, camera-space vertices, their
        projections, eye geometry) of ``pose``: everything but the pixels."""
        m = self.mesh
        rot = head_rotation(pose.yaw, pose.pitch, pose.roll)
        trans = np.array([pose.x, pose.y, pose.z], dtype=np.float64)
        head_v = self._deform(pose)
        cam = np.where(m.body[:, None], head_v + trans, head_v @ rot.T + trans)
        if cam[:, 2].min() < 0.05:
            raise ValueError(f"the head at z={pose.z} m reaches behind the camera")
        return rot, trans, head_v, cam, self._project(cam), self._eye_geometry(pose, rot, trans)

    def _truth(self, pose: FacePose, geometry) -> GroundTruth:
        rot, trans, _, cam, scr, eyes = geometry
        lm = scr[:468]
        return GroundTruth(
            pose=replace(pose), landmarks=lm.astype(np.float32),
            landmarks_3d=cam[:468].astype(np.float32),
            iris_right=eyes[0][3].astype(np.float32), iris_left=eyes[1][3].astype(np.float32),
            rotation=rot, translation=trans, camera_matrix=self.camera_matrix.copy(),
            image_size=(self.width, self.height),
            visible=bool((lm.min(axis=0) >= 0).all() and (lm[:, 0].max() <= self.width)
                         and (lm[:, 1].max() <= self.height)))

    def truth(self, pose: FacePose) -> GroundTruth:
        """The ground truth ``render(pose)`` would return, without drawing (~0.1 ms, not ~7)."""
        return self._truth(pose, self._geometry(pose))

    def render(self, pose: FacePose) -> tuple[np.ndarray, GroundTruth]:
        """BGR uint8 frame (height × width × 3) and its ground truth."""
        m = self.mesh
        geometry = self._geometry(pose)
        rot, _, head_v, cam, scr, eyes = geometry
        normals = np.where(m.body[:, None], m.normals, m.normals @ rot.T)
        lam = np.clip(normals @ LIGHT_DIR, 0, 1)
        # the photo already carries its own lighting: only *change* it as surfaces turn
        # (darker when turned away), never brighten past it (stretched texture would glare)
        shade_v = np.clip((0.35 + 0.65 * lam) / (0.35 + 0.65 * self._neutral_lambert), 0.6, 1.08)
        shade_flat = 0.45 + 0.6 * lam     # plain swatches (neck, jaw) carry no light of their own

        image = self.background.copy()
        self._draw(image, m, cam, scr, (shade_v, shade_flat), head_v, eyes)
        image = self._finish(image)
        self.renders += 1
        return image, self._truth(pose, geometry)

    def _eye_geometry(self, pose: FacePose, rot: np.ndarray, trans: np.ndarray):
        """Per eye: (eyeball centre, eye frame as columns, EyeModel, projected iris centre);
        centre and frame in camera space."""
        out = []
        for eye, (gy, gp) in zip(self.mesh.eyes, ((pose.gaze_right_yaw, pose.gaze_right_pitch),
                                                  (pose.gaze_left_yaw, pose.gaze_left_pitch))):
            centre = rot @ eye.centre + trans
            frame = rot @ gaze_rotation(gy, gp)
            iris = centre - frame[:, 2] * eye.radius
            out.append((centre, frame, eye, self._project(iris[None])[0]))
        return out

    def _corner_attributes(self, m, head_v: np.ndarray, shade_v) -> np.ndarray:
        """(T, 3, 3): u, v, shade per triangle corner for this frame."""
        attr = np.empty((len(m.tris), 3, 3), np.float32)
        attr[:, :, :2] = m.uv
        attr[:, :, 2] = np.where(m.flat[:, None], shade_v[1][m.tris], shade_v[0][m.tris])
        attr[self._eye_tris, :, 2] = m.eye_shadow[self._eye_tris]
        if len(self._mouth_tris):
            corners = m.tris[self._mouth_tris]
            pair = m.mouth_pair[corners]
            gap = np.where(pair >= 0, np.linalg.norm(head_v[corners] - head_v[np.maximum(pair, 0)],
                                                     axis=-1), 0.0)
            attr[self._mouth_tris, :, 0] = tx.MOUTH_X0 + m.mouth_s[corners] * tx.MOUTH_W
            attr[self._mouth_tris, :, 1] = tx.MOUTH_Y0 + np.minimum(gap * tx.MOUTH_ROWS_PER_M,
                                                                    tx.MOUTH_H - 1)
            attr[self._mouth_tris, :, 2] = 1.0
        return attr

    def _draw(self, image: np.ndarray, m, cam: np.ndarray, scr: np.ndarray,
              shade_v: tuple[np.ndarray, np.ndarray], head_v: np.ndarray, eyes) -> None:
        tri_cam = cam[m.tris]
        normal = np.cross(tri_cam[:, 1] - tri_cam[:, 0], tri_cam[:, 2] - tri_cam[:, 0])
        facing = (normal * tri_cam[:, 0]).sum(axis=1) < 0
        s = scr[m.tris]
        area2 = ((s[:, 1, 0] - s[:, 0, 0]) * (s[:, 2, 1] - s[:, 0, 1])
                 - (s[:, 1, 1] - s[:, 0, 1]) * (s[:, 2, 0] - s[:, 0, 0]))
        draw = np.nonzero(facing & (np.abs(area2) > 0.3))[0]
        if not len(draw):
            return
        depth = tri_cam[draw, :, 2].mean(axis=1)
        draw = draw[np.lexsort((-depth, m.group[draw]))]
        lo = np.floor(s[draw].reshape(-1, 2).min(axis=0)).astype(int) - 1
        hi = np.ceil(s[draw].reshape(-1, 2).max(axis=0)).astype(int) + 1
        x0, y0 = max(lo[0], 0), max(lo[1], 0)
        x1, y1 = min(hi[0], self.width), min(hi[1], self.height)
        if x1 <= x0 or y1 <= y0:
            return
        ids = np.zeros((y1 - y0, x1 - x0), np.int32)
        pts = np.round((s[draw] - 0.5 - [x0, y0]) * 16).astype(np.int32)
        for p, tid in zip(pts, (draw + 1).tolist()):
            cv2.fillConvexPoly(ids, p, tid, cv2.LINE_8, 4)

        h, w = ids.shape
        flat_ids = ids.ravel()
        idx = np.flatnonzero(flat_ids)
        tid = flat_ids[idx] - 1
        px = (idx % w + (x0 + 0.5)).astype(np.float32)
        py = (idx // w + (y0 + 0.5)).astype(np.float32)
        # barycentric coordinates: λa, λb are linear in (px, py) per triangle
        a, b, c = s[:, 0], s[:, 1], s[:, 2]
        det = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
        det = np.where(np.abs(det) < 1e-9, 1e-9, det)
        coef = np.stack([(b[:, 1] - c[:, 1]) / det, (c[:, 0] - b[:, 0]) / det,
                         (c[:, 1] - a[:, 1]) / det, (a[:, 0] - c[:, 0]) / det,
                         c[:, 0], c[:, 1]], axis=0)
        attr = self._corner_attributes(m, head_v, shade_v).reshape(len(m.tris), 9).T
        g = np.concatenate([coef, attr], axis=0).astype(np.float32)[:, tid]   # (15, N) rows
        dx, dy = px - g[4], py - g[5]
        la, lb = g[0] * dx + g[1] * dy, g[2] * dx + g[3] * dy
        lc = 1 - la - lb
        for lam in (la, lb, lc):        # pixels on an edge may fall a hair outside
            np.clip(lam, 0, 1, out=lam)
        norm = 1 / (la + lb + lc)
        la *= norm
        lb *= norm
        lc *= norm
        u = la * g[6] + lb * g[9] + lc * g[12]      # corner k's (u, v, shade) at 6 + 3k
        v = la * g[7] + lb * g[10] + lc * g[13]
        shade = la * g[8] + lb * g[11] + lc * g[14]

        kind = m.kind[tid]
        for k, (centre, frame, eye, _) in zip((KIND_RIGHT_EYE, KIND_LEFT_EYE), eyes):
            sel = np.flatnonzero(kind == k)
            if len(sel):
                u[sel], v[sel], shade[sel] = self._eyeball(px[sel], py[sel], centre, frame,
                                                           eye, shade[sel])

        mapx = np.full(h * w, -100.0, np.float32)
        mapy = np.full(h * w, -100.0, np.float32)
        shade_map = np.zeros(h * w, np.float32)
        mapx[idx] = u - 0.5
        mapy[idx] = v - 0.5
        shade_map[idx] = shade
        face = cv2.remap(m.atlas, mapx.reshape(h, w), mapy.reshape(h, w), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT)
        shade_map = shade_map.reshape(h, w)
        face = cv2.multiply(face, cv2.merge((shade_map, shade_map, shade_map)), dtype=cv2.CV_8U)
        inside = (ids > 0).astype(np.float32)
        alpha = cv2.GaussianBlur(inside, (3, 3), 0.6) * inside       # soft silhouette
        region = image[y0:y1, x0:x1]
        image[y0:y1, x0:x1] = cv2.blendLinear(face, region, alpha, 1 - alpha)

    def _eyeball(self, px, py, centre, frame, eye, lid_shade):
        """Ray-cast pixels of one eye window onto its eyeball: atlas (u, v) and shade."""
        cx, cy = self.camera_matrix[:2, 2]
        d = np.stack([(px - cx) / self.f, (py - cy) / self.f, np.ones_like(px)], axis=1)
        dd = (d * d).sum(axis=1)
        b = d @ centre
        disc = b * b - dd * (centre @ centre - eye.radius ** 2)
        t = (b - np.sqrt(np.maximum(disc, 0))) / dd
        n = t[:, None] * d - centre
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        local = n @ frame                                   # (x, y, z) in the eye's frame
        sa = math.sin(eye.iris_angle)
        rho = np.hypot(local[:, 0], local[:, 1]) / sa
        iris = (local[:, 2] < 0) & (rho < 1.28)
        miss = disc < 0                                     # beyond the ball: the eye corner
        u = np.where(iris, tx.IRIS_CENTRE[0] + local[:, 0] / sa * tx.IRIS_PATCH_R,
                     np.where(miss, tx.CARUNCLE_UV[0], tx.SCLERA_UV[0]))
        v = np.where(iris, tx.IRIS_CENTRE[1] + local[:, 1] / sa * tx.IRIS_PATCH_R,
                     np.where(miss, tx.CARUNCLE_UV[1], tx.SCLERA_UV[1]))
        towards = -(n * d).sum(axis=1) / np.sqrt(dd)        # 1 where the ball faces the camera
        sclera = 0.7 + 0.3 * np.clip(towards, 0, 1) ** 0.7
        shade = lid_shade * np.where(iris, 1.0, np.where(miss, 0.85, sclera))
        return u.astype(np.float32), v.astype(np.float32), shade.astype(np.float32)

    def _finish(self, image: np.ndarray) -> np.ndarray:
        if self.light != 1.0 or self.contrast != 1.0:
            gain = self.light * self.contrast
            image = cv2.addWeighted(image, gain, image, 0.0, 128.0 * (1 - self.contrast))
        if self.noise > 0:
            # drawing 1M normals costs ~8 ms, so each frame takes a seeded random window of
            # one seeded bank (and a random sign): cheap, reproducible, new every frame
            size = image.size
            if self._noise_bank is None:
                bank = np.random.default_rng(self.seed).standard_normal(size * 2, np.float32)
                self._noise_bank = np.round(bank * self.noise).astype(np.int16)
            rng = np.random.default_rng([self.seed, self.renders])
            start = int(rng.integers(0, size))
            window = self._noise_bank[start:start + size].reshape(image.shape)
            op = cv2.add if rng.integers(0, 2) else cv2.subtract
            image = op(image, window, dtype=cv2.CV_8U)
        return image


def write_clip(path: str | Path, poses: Iterable[FacePose], fps: float = 30.0,
               **renderer_kwargs) -> None:
    """Render ``poses`` into a video file: ``.avi`` → MJPG, anything else → mp4v."""
    path = Path(path)
    face = SyntheticFace(**renderer_kwargs)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, float(fps), (face.width, face.height))
    if not writer.isOpened():
        raise OSError(f"cannot write video {path}: OpenCV has no encoder for {path.suffix!r}")
    try:
        for pose in poses:
            writer.write(face.render(pose)[0])
    finally:
        writer.release()

"""VMD (MikuMikuDance motion) files from a stream of ``AvatarPose``. Pure: bytes out.

Layout (little-endian; names Shift-JIS as MMD on Windows writes them, code page 932,
NUL-padded, cut to the field's bytes like MMD's fixed fields):

    header   "Vocaloid Motion Data 0002" padded to 30 bytes, model name (20 bytes)
    bones    u32 count, then per key: name (15), frame u32, position 3×f32,
             rotation quaternion (x, y, z, w) 4×f32, interpolation 64 bytes
    morphs   u32 count, then per key: name (15), frame u32, weight f32
    camera, light, self-shadow, IK/show: u32 count 0 each

Frames are MMD's 30 per second; a pose's frame is round((t − t₀) × fps) with t₀ the
first pose's time, halves rounded up; when two poses land on one frame the later wins.
Positions are zero (we only rotate bones). Every bone key carries the linear
interpolation MMD itself writes: four Bézier curves (x, y, z, rotation) with control
points (20, 20) and (107, 107) out of 127, i.e. the diagonal.

Frames: AvatarPose rotations are in three.js's MMDLoader model space (right-handed, Y up,
the model facing +Z); VMD is MMD's left-handed space, the same axes with Z mirrored.
three.js r171 loads a VMD with ``parser.parseVmd(buffer, true)``
(examples/jsm/loaders/MMDLoader.js, ``MMDLoader.loadVMD``), whose ``leftToRight`` step
(examples/jsm/libs/mmdparser.module.js, ``Parser.prototype.leftToRightVmd`` →
``DataCreationHelper.leftToRightQuaternion`` / ``leftToRightVector3``) negates the
quaternion's x and y and the position's z; ``AnimationBuilder.buildSkeletalAnimation``
then uses the rotation as the bone's local quaternion at time frameNum / 30. That step
is its own inverse, so we write (−x, −y, z, w); positions are zero either way.
(three r171's vendored mmdparser.module.js is byte-identical to npm mmd-parser 1.0.4,
the independent parser the tests read our files back with.)
"""
from __future__ import annotations

import math
import numbers
import struct
from dataclasses import dataclass
from os import PathLike
from typing import BinaryIO, Iterable, Sequence

import numpy as np

from .pose import (BLINK, BOTH_EYES, BROW_DOWN, BROW_UP, HEAD, LEFT_EYE, NECK, RIGHT_EYE, SMILE, UPPER_BODY,
                   VOWEL_MORPHS, WINK_LEFT, WINK_RIGHT, AvatarPose)

MAGIC = b"Vocaloid Motion Data 0002"
ENCODING = "cp932"                      # Shift-JIS as MMD (a Windows program) writes it
HEADER_BYTES, MODEL_NAME_BYTES, BONE_NAME_BYTES, MORPH_NAME_BYTES = 30, 20, 15, 15
MMD_FPS = 30.0

# Standard names written by default, in this order, when at least one pose carries them.
DEFAULT_BONES: tuple[str, ...] = (UPPER_BODY, NECK, HEAD, BOTH_EYES, LEFT_EYE, RIGHT_EYE)
DEFAULT_MORPHS: tuple[str, ...] = (BLINK, WINK_LEFT, WINK_RIGHT, *VOWEL_MORPHS.values(), SMILE, "笑い",
                                   BROW_UP, BROW_DOWN, "困る")

_BONE_KEY = struct.Struct("<15sI3f4f64s")
_MORPH_KEY = struct.Struct("<15sIf")


def _interpolation(x1: int = 20, y1: int = 20, x2: int = 107, y2: int = 107) -> bytes:
    """The 64-byte interpolation block with the same curve on X, Y, Z and rotation.

    Four rows of 16 bytes; row k is ``[X.x1 Y.x1 Z.x1 R.x1  X.y1 … R.y1  X.x2 … R.x2
    X.y2 … R.y2]`` shifted k bytes left (tail zero), so MMD, which reads only the bytes
    at multiples of 4, finds curve k's x1, y1, x2, y2 at 16k + 0, 4, 8, 12 (babylon-mmd's
    VmdLoader reads it the same way). Bytes 2–3 are a little-endian u16 physics flag
    (0 = physics on, 3939 = off; errno-mmd/smoothvmd PR #1), so they stay 0 as MMD
    writes them. three.js r171 reads all four curves from row 0 at i, i+4, i+8, i+12
    (MMDLoader.js ``AnimationBuilder.buildSkeletalAnimation``, ``pushInterpolation``),
    so it sees rotation x1 = 0 instead of 20: a near-linear ease, at most 7 % of a
    segment's arc off linear, and only between keys more than 1.5 frames apart.
    """
    base = bytes([x1] * 4 + [y1] * 4 + [x2] * 4 + [y2] * 4)
    rows = [bytearray(base[k:] + bytes(k)) for k in range(4)]
    rows[0][2] = rows[0][3] = 0
    return b"".join(bytes(r) for r in rows)


LINEAR_INTERPOLATION = _interpolation()


@dataclass
class VmdStats:
    """What went into a file, and what was left out (DESIGN.md "Bad input": dropped and counted)."""
    poses: int = 0          # poses read
    frames: int = 0         # distinct 30 fps frames they landed on
    replaced: int = 0       # poses superseded by a later pose on the same frame
    bone_keys: int = 0      # keys written
    morph_keys: int = 0
    reduced: int = 0        # keys dropped by ``reduce``
    nonfinite: int = 0      # NaN/inf timestamps, rotations or weights, skipped
    invalid: int = 0        # other skips: malformed/zero quaternions, non-numbers, poses before the first
    bytes: int = 0          # file size

    @property
    def skipped(self) -> int:
        return self.nonfinite + self.invalid


def encode_name(name: str, size: int, what: str = "name") -> bytes:
    """Shift-JIS bytes of ``name`` cut to ``size`` bytes and NUL-padded.

    Cut bytewise like MMD's own fixed fields (a long name may end in half a double-byte
    character; MMD matches bones by these bytes). Raises a one-line ValueError when the
    name has characters Shift-JIS cannot hold.
    """
    if not isinstance(name, str):
        raise ValueError(f"VMD {what} must be text, got {type(name).__name__}")
    try:
        raw = name.encode(ENCODING)
    except UnicodeEncodeError as e:
        bad = name[e.start:e.end]
        raise ValueError(f"VMD {what} {name!r} has {bad!r}, which Shift-JIS cannot encode; rename it") from None
    return raw[:size].ljust(size, b"\0")


def to_vmd_quaternion(q: Sequence[float]) -> tuple[float, float, float, float]:
    """three.js MMDLoader model space → VMD (left-handed): (x, y, z, w) → (−x, −y, z, w)."""
    x, y, z, w = q
    return (-x, -y, z, w)


def from_vmd_quaternion(q: Sequence[float]) -> tuple[float, float, float, float]:
    """VMD → three.js MMDLoader model space; the same mirror, its own inverse."""
    return to_vmd_quaternion(q)


def frame_of(t: float, t0: float, fps: float = MMD_FPS) -> int:
    """The key frame for source time ``t``: round((t − t0) × fps), halves up.

    The tiny bias rounds up halves that float arithmetic leaves a hair under .5 (a 24 fps
    source's frame 2 is 30 fps frame 2.5 → 3, whatever its timestamp's last bit).
    """
    return math.floor((t - t0) * fps + 0.5 + 1e-9)


# ---------------------------------------------------------------------------- reduction

def _slerp(q0: np.ndarray, q1: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Shortest-path slerp from unit q0 to unit q1 at fractions ``u`` (as three.js's slerpFlat)."""
    if float(np.dot(q0, q1)) < 0.0:
        q1 = -q1
    omega = 2.0 * math.atan2(float(np.linalg.norm(q0 - q1)), float(np.linalg.norm(q0 + q1)))
    u = u[:, None]
    if omega < 1e-9:
        out = (1.0 - u) * q0 + u * q1
    else:
        s = math.sin(omega)
        out = (np.sin((1.0 - u) * omega) / s) * q0 + (np.sin(u * omega) / s) * q1
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def quat_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation angle (degrees) between unit quaternions row by row, sign-blind and exact near 0."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    sign = np.where(np.sum(a * b, axis=1) < 0.0, -1.0, 1.0)[:, None]
    return np.degrees(4.0 * np.arctan2(np.linalg.norm(a - sign * b, axis=1), np.linalg.norm(a + sign * b, axis=1)))


def _keep(frames: np.ndarray, values: np.ndarray, eps: float, rotation: bool) -> np.ndarray:
    """Mask of keys to keep so every dropped key is reproduced within ``eps`` by linear
    interpolation (slerp for rotations) between the kept keys around it. Split at the
    worst key until none exceeds eps (Ramer–Douglas–Peucker); first and last always stay."""
    n = len(frames)
    keep = np.zeros(n, bool)
    keep[[0, n - 1]] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        idx = np.arange(a + 1, b)
        u = (frames[idx] - frames[a]) / float(frames[b] - frames[a])
        if rotation:
            err = quat_angle_deg(_slerp(values[a], values[b], u), values[idx])
        else:
            err = np.abs(values[a] + u * (values[b] - values[a]) - values[idx])
        worst = int(np.argmax(err))
        if err[worst] > eps + 1e-9:             # float noise of an exactly reproduced key is not an error
            k = int(idx[worst])
            keep[k] = True
            stack += [(a, k), (k, b)]
    return keep


# ---------------------------------------------------------------------------- encoding

Reduce = float | tuple[float, float] | None


def _tolerances(reduce: Reduce) -> tuple[float | None, float | None]:
    """``reduce`` → (bone tolerance in degrees, morph tolerance in weight), None = keep all."""
    if reduce is None:
        return None, None
    pair = tuple(reduce) if isinstance(reduce, (tuple, list)) else (reduce, reduce)
    if len(pair) != 2 or not all(isinstance(e, numbers.Real) and not isinstance(e, bool) and math.isfinite(e)
                                 and e >= 0 for e in pair):
        raise ValueError(f"VMD reduce must be a tolerance ≥ 0 or a pair (degrees for bones, weight for morphs), "
                         f"got {reduce!r}")
    return float(pair[0]), float(pair[1])


def _quaternion(value, stats: VmdStats) -> np.ndarray | None:
    try:
        q = np.array(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        stats.invalid += 1
        return None
    if q.shape != (4,):
        stats.invalid += 1
        return None
    if not np.all(np.isfinite(q)):
        stats.nonfinite += 1
        return None
    norm = float(np.linalg.norm(q))
    if norm < 1e-6:
        stats.invalid += 1
        return None
    return q / norm


def _weight(value, stats: VmdStats) -> float | None:
    try:
        w = float(value)
    except (TypeError, ValueError):
        stats.invalid += 1
        return None
    if not math.isfinite(w):
        stats.nonfinite += 1
        return None
    return w


def _emit(tracks: dict, eps: float | None, rotation: bool, stats: VmdStats, pack) -> tuple[bytes, int]:  # noqa: ANN001
    """Key bytes of every track (reduced when ``eps`` is set) and how many keys they hold."""
    out = bytearray()
    count = 0
    for name, (frames, values) in tracks.items():
        if not frames:
            continue
        f = np.asarray(frames, np.int64)
        v = np.asarray(values, np.float64)
        keep = _keep(f, v, eps, rotation) if eps is not None and len(f) > 2 else np.ones(len(f), bool)
        stats.reduced += int((~keep).sum())
        for frame, value in zip(f[keep], v[keep]):
            out += pack(name, int(frame), value)
            count += 1
    return bytes(out), count


def _encode(poses: Iterable[AvatarPose], model_name: str, fps: float, bones: Sequence[str] | None,
            morphs: Sequence[str] | None, reduce: Reduce) -> tuple[bytes, VmdStats]:
    if not (isinstance(fps, numbers.Real) and not isinstance(fps, bool) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"VMD fps must be a positive number, got {fps!r}")
    eps_bone, eps_morph = _tolerances(reduce)
    header = MAGIC.ljust(HEADER_BYTES, b"\0") + encode_name(model_name, MODEL_NAME_BYTES, "model name")
    bone_names = {n: encode_name(n, BONE_NAME_BYTES, "bone name") for n in (bones or ())}
    morph_names = {n: encode_name(n, MORPH_NAME_BYTES, "morph name") for n in (morphs or ())}

    stats = VmdStats()
    by_frame: dict[int, AvatarPose] = {}
    t0: float | None = None
    for pose in poses:
        stats.poses += 1
        try:
            t = float(pose.t)
        except (TypeError, ValueError):
            stats.invalid += 1
            continue
        if not math.isfinite(t):
            stats.nonfinite += 1
            continue
        if t0 is None:
            t0 = t
        frame = frame_of(t, t0, fps)
        if not 0 <= frame <= 0xFFFFFFFF:
            stats.invalid += 1
            continue
        if frame in by_frame:
            stats.replaced += 1
        by_frame[frame] = pose
    stats.frames = len(by_frame)

    # Tracks: name → ([frames], [values]) in frame order.
    if bones is None:
        seen = {n for p in by_frame.values() for n in (getattr(p, "bones", None) or {})}
        bone_names = {n: encode_name(n, BONE_NAME_BYTES, "bone name") for n in DEFAULT_BONES if n in seen}
    if morphs is None:
        seen = {n for p in by_frame.values() for n in (getattr(p, "morphs", None) or {})}
        morph_names = {n: encode_name(n, MORPH_NAME_BYTES, "morph name") for n in DEFAULT_MORPHS if n in seen}
    bone_tracks: dict[str, tuple[list[int], list[np.ndarray]]] = {n: ([], []) for n in bone_names}
    morph_tracks: dict[str, tuple[list[int], list[float]]] = {n: ([], []) for n in morph_names}
    for frame in sorted(by_frame):
        pose = by_frame[frame]
        pose_bones = getattr(pose, "bones", None) or {}
        for name, (frames, values) in bone_tracks.items():
            if name in pose_bones:
                q = _quaternion(pose_bones[name], stats)
                if q is not None:
                    if values and float(np.dot(values[-1], q)) < 0.0:
                        q = -q          # stay in one hemisphere: every reader then takes the short way
                    frames.append(frame)
                    values.append(q)
        pose_morphs = getattr(pose, "morphs", None) or {}
        for name, (frames, weights) in morph_tracks.items():
            if name in pose_morphs:
                w = _weight(pose_morphs[name], stats)
                if w is not None:
                    frames.append(frame)
                    weights.append(w)

    bone_out, stats.bone_keys = _emit(
        bone_tracks, eps_bone, True, stats,
        lambda name, frame, q: _BONE_KEY.pack(bone_names[name], frame, 0.0, 0.0, 0.0,
                                              *to_vmd_quaternion(q.tolist()), LINEAR_INTERPOLATION))
    morph_out, stats.morph_keys = _emit(
        morph_tracks, eps_morph, False, stats,
        lambda name, frame, w: _MORPH_KEY.pack(morph_names[name], frame, float(w)))

    data = b"".join([header, struct.pack("<I", stats.bone_keys), bytes(bone_out),
                     struct.pack("<I", stats.morph_keys), bytes(morph_out),
                     struct.pack("<4I", 0, 0, 0, 0)])      # camera, light, self-shadow, IK/show
    stats.bytes = len(data)
    return data, stats


def encode_vmd(poses: Iterable[AvatarPose], model_name: str = "OpenVtuber", fps: float = MMD_FPS,
               bones: Sequence[str] | None = None, morphs: Sequence[str] | None = None,
               reduce: Reduce = None) -> bytes:
    """The VMD file for ``poses`` as bytes (see ``write_vmd``)."""
    return _encode(poses, model_name, fps, bones, morphs, reduce)[0]


def write_vmd(path_or_file: str | PathLike | BinaryIO, poses: Iterable[AvatarPose], model_name: str = "OpenVtuber",
              fps: float = MMD_FPS, bones: Sequence[str] | None = None, morphs: Sequence[str] | None = None,
              reduce: Reduce = None) -> VmdStats:
    """Write ``poses`` as a VMD motion to a path or a binary file object.

    ``bones``/``morphs``: names to key (default: the standard ones, ``DEFAULT_BONES`` and
    ``DEFAULT_MORPHS``, that at least one pose carries); a pose without a name simply has
    no key for it there. ``fps``: key frames per second of source time (MMD plays 30).
    ``reduce``: drop keys that linear interpolation between the kept ones reproduces
    within this many degrees (bones) or this much weight (morphs); first and last stay.
    A pair ``(degrees, weight)`` sets the two apart (one number suits one of them only:
    0.5° is fine for a head, a 0.5 weight is half a blink).
    Poses are written as given, found or not: the rig decides what a lost face looks like.
    Raises ValueError (one line) for a name Shift-JIS cannot encode or a bad fps/reduce.
    """
    data, stats = _encode(poses, model_name, fps, bones, morphs, reduce)
    if hasattr(path_or_file, "write"):
        path_or_file.write(data)
    else:
        with open(path_or_file, "wb") as f:
            f.write(data)
    return stats

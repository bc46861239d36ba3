"""A small PMX 2.0 writer: enough for a skinned toon model with vertex morphs.

Models are *built* in three.js model space — right-handed, Y up, the model faces
+Z, +X is the model's own left — because that is where the renderer and the rig
work (see DESIGN.md, "Conventions").  PMX stores MMD's left-handed space, and
mmd-parser's ``leftToRightModel`` (what three.js ``MMDLoader`` runs) converts back
by negating z of positions, normals, bone positions and vertex-morph offsets and
reversing each face's index order.  ``write_pmx`` applies exactly the inverse, so
a model built here loads in three.js as it was built.

Layout follows the PMX 2.0 specification (PmxEditor's "PMX仕様.txt"): text is
UTF-16LE (encoding flag 0, the only encoding three.js' parser reads), no extra
UVs, index sizes chosen from the counts (vertex indices unsigned for 1/2 bytes,
all other indices signed, -1 = none).  Rigid bodies and joints: none.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

# Material flags (PMX 2.0).
DOUBLE_SIDED = 0x01
GROUND_SHADOW = 0x02
SELF_SHADOW_MAP = 0x04
SELF_SHADOW = 0x08
DRAW_EDGE = 0x10

# Bone flags (PMX 2.0).
TAIL_IS_BONE = 0x0001
ROTATABLE = 0x0002
TRANSLATABLE = 0x0004
VISIBLE = 0x0008
OPERABLE = 0x0010
INHERIT_ROTATION = 0x0100

# Morph panels (PMX 2.0).
PANEL_BROW, PANEL_EYE, PANEL_MOUTH, PANEL_OTHER = 1, 2, 3, 4


@dataclass
class Material:
    name: str
    name_en: str
    diffuse: tuple[float, float, float, float]
    specular: tuple[float, float, float] = (0.0, 0.0, 0.0)
    shininess: float = 5.0
    ambient: tuple[float, float, float] = (0.5, 0.5, 0.5)
    flags: int = GROUND_SHADOW | SELF_SHADOW_MAP | SELF_SHADOW | DRAW_EDGE
    edge_color: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    edge_size: float = 1.0
    texture: int = -1
    toon: int = 0            # shared toon: 0..9 = toon01.bmp..toon10.bmp
    comment: str = ""
    face_count: int = 0      # triangles drawn with this material, in order


@dataclass
class Bone:
    name: str
    name_en: str
    position: tuple[float, float, float]
    parent: int = -1
    flags: int = ROTATABLE | VISIBLE | OPERABLE
    tail: int | tuple[float, float, float] = (0.0, 0.0, 0.0)   # bone index or offset
    inherit: tuple[int, float] | None = None                   # (parent bone, ratio)


@dataclass
class VertexMorph:
    name: str
    name_en: str
    panel: int
    indices: np.ndarray        # (K,) vertex indices
    offsets: np.ndarray        # (K, 3) offsets, three.js space


@dataclass
class DisplayFrame:
    name: str
    name_en: str
    special: bool
    bones: list[int] = field(default_factory=list)
    morphs: list[int] = field(default_factory=list)


@dataclass
class Model:
    name: str
    name_en: str
    comment: str
    comment_en: str
    positions: np.ndarray      # (N, 3) float
    normals: np.ndarray        # (N, 3)
    uvs: np.ndarray            # (N, 2)
    bones_idx: np.ndarray      # (N, 2) int: first, second bone
    weights: np.ndarray        # (N,) weight of the first bone (1 → BDEF1)
    edge_scale: np.ndarray     # (N,)
    faces: np.ndarray          # (T, 3) int, counter-clockwise seen from outside
    textures: list[str]
    materials: list[Material]
    bones: list[Bone]
    morphs: list[VertexMorph]
    frames: list[DisplayFrame]


def _text(s: str) -> bytes:
    b = s.encode("utf-16-le")
    return struct.pack("<I", len(b)) + b


def _index_size(count: int, vertex: bool) -> int:
    if vertex:
        return 1 if count <= 0xFF else 2 if count <= 0xFFFF else 4
    return 1 if count <= 0x7F else 2 if count <= 0x7FFF else 4


_SIGNED = {1: "b", 2: "h", 4: "i"}
_UNSIGNED = {1: "B", 2: "H", 4: "i"}


def _flip(v) -> tuple[float, float, float]:
    """three.js (right-handed) → MMD (left-handed): negate z."""
    return (float(v[0]), float(v[1]), -float(v[2]))


def write_pmx(m: Model) -> bytes:
    """Serialise ``m`` to PMX 2.0 bytes; the output depends only on ``m``."""
    n = len(m.positions)
    vsz = _index_size(n, True)
    tsz = _index_size(len(m.textures), False)
    msz = _index_size(len(m.materials), False)
    bsz = _index_size(len(m.bones), False)
    mosz = _index_size(len(m.morphs), False)
    rsz = 1
    assert sum(mat.face_count for mat in m.materials) == len(m.faces), "material face counts"
    out = bytearray()
    out += b"PMX " + struct.pack("<f", 2.0)
    out += struct.pack("<B8B", 8, 0, 0, vsz, tsz, msz, bsz, mosz, rsz)
    for s in (m.name, m.name_en, m.comment, m.comment_en):
        out += _text(s)

    # Vertices: position, normal, uv (float32), weight type, bones, weights, edge scale.
    out += struct.pack("<I", n)
    pos = np.asarray(m.positions, np.float32).copy()
    nrm = np.asarray(m.normals, np.float32).copy()
    pos[:, 2] *= -1
    nrm[:, 2] *= -1
    uv = np.asarray(m.uvs, np.float32)
    bfmt = "<" + _SIGNED[bsz]
    for i in range(n):
        out += struct.pack("<8f", *pos[i], *nrm[i], *uv[i])
        b0, b1 = int(m.bones_idx[i, 0]), int(m.bones_idx[i, 1])
        w = float(m.weights[i])
        if w >= 1.0 or b0 == b1:
            out += b"\x00" + struct.pack(bfmt, b0)
        else:
            out += b"\x01" + struct.pack(bfmt + _SIGNED[bsz][0], b0, b1) + struct.pack("<f", w)
        out += struct.pack("<f", float(m.edge_scale[i]))

    # Faces: reverse the winding together with the z flip.
    faces = np.asarray(m.faces, np.int64)[:, ::-1]
    out += struct.pack("<I", faces.size)
    out += np.ascontiguousarray(faces, dtype={1: "<u1", 2: "<u2", 4: "<i4"}[vsz]).tobytes()

    out += struct.pack("<I", len(m.textures))
    for t in m.textures:
        out += _text(t)

    tfmt = "<" + _SIGNED[tsz]
    out += struct.pack("<I", len(m.materials))
    for mat in m.materials:
        out += _text(mat.name) + _text(mat.name_en)
        out += struct.pack("<4f3ff3f", *mat.diffuse, *mat.specular, mat.shininess, *mat.ambient)
        out += struct.pack("<B4ff", mat.flags, *mat.edge_color, mat.edge_size)
        out += struct.pack(tfmt, mat.texture) + struct.pack(tfmt, -1)     # texture, sphere
        out += struct.pack("<BBb", 0, 1, mat.toon)                        # sphere off, shared toon
        out += _text(mat.comment) + struct.pack("<I", mat.face_count * 3)

    out += struct.pack("<I", len(m.bones))
    for b in m.bones:
        flags = b.flags | (TAIL_IS_BONE if isinstance(b.tail, int) else 0)
        flags |= INHERIT_ROTATION if b.inherit else 0
        out += _text(b.name) + _text(b.name_en)
        out += struct.pack("<3f", *_flip(b.position)) + struct.pack(bfmt, b.parent)
        out += struct.pack("<IH", 0, flags)
        if isinstance(b.tail, int):
            out += struct.pack(bfmt, b.tail)
        else:
            out += struct.pack("<3f", *_flip(b.tail))
        if b.inherit:
            out += struct.pack(bfmt, b.inherit[0]) + struct.pack("<f", b.inherit[1])

    out += struct.pack("<I", len(m.morphs))
    vfmt = "<" + _UNSIGNED[vsz]
    for mo in m.morphs:
        out += _text(mo.name) + _text(mo.name_en)
        out += struct.pack("<BBI", mo.panel, 1, len(mo.indices))
        for idx, off in zip(mo.indices, mo.offsets):
            out += struct.pack(vfmt, int(idx)) + struct.pack("<3f", *_flip(off))

    mofmt = "<" + _SIGNED[mosz]
    out += struct.pack("<I", len(m.frames))
    for f in m.frames:
        out += _text(f.name) + _text(f.name_en)
        out += struct.pack("<BI", 1 if f.special else 0, len(f.bones) + len(f.morphs))
        for b in f.bones:
            out += b"\x00" + struct.pack(bfmt, b)
        for mo in f.morphs:
            out += b"\x01" + struct.pack(mofmt, mo)

    out += struct.pack("<II", 0, 0)      # rigid bodies, joints
    return bytes(out)


# ---------------------------------------------------------------------------
# A minimal reader, so tests can check what was written without trusting the
# writer's in-memory model (the independent check is mmd-parser, via Node).

class _R:
    def __init__(self, b: bytes):
        self.b, self.o = b, 0

    def take(self, fmt: str):
        v = struct.unpack_from("<" + fmt, self.b, self.o)
        self.o += struct.calcsize("<" + fmt)
        return v

    def text(self) -> str:
        (n,) = self.take("I")
        s = self.b[self.o:self.o + n].decode("utf-16-le")
        self.o += n
        return s


def read_pmx(data: bytes) -> dict:
    """Parse what ``write_pmx`` writes (BDEF1/BDEF2, vertex morphs) back to arrays,
    in three.js space again."""
    r = _R(data)
    assert r.take("4s")[0] == b"PMX "
    r.take("f")
    _, enc, auv, vsz, tsz, msz, bsz, mosz, rsz = r.take("9B")
    assert enc == 0 and auv == 0
    names = [r.text() for _ in range(4)]
    si = {1: "b", 2: "h", 4: "i"}
    ui = {1: "B", 2: "H", 4: "i"}
    (n,) = r.take("I")
    pos = np.zeros((n, 3)); nrm = np.zeros((n, 3)); uv = np.zeros((n, 2))
    bones = np.zeros((n, 2), int); w = np.ones(n)
    for i in range(n):
        vals = r.take("8f")
        pos[i], nrm[i], uv[i] = vals[0:3], vals[3:6], vals[6:8]
        (t,) = r.take("B")
        if t == 0:
            bones[i] = r.take(si[bsz]) * 2
        elif t == 1:
            bones[i] = r.take(si[bsz] * 2)
            (w[i],) = r.take("f")
        else:
            raise ValueError(f"weight type {t}")
        r.take("f")
    pos[:, 2] *= -1; nrm[:, 2] *= -1
    (k,) = r.take("I")
    faces = np.array(r.take(ui[vsz] * k), int).reshape(-1, 3)[:, ::-1]
    (nt,) = r.take("I")
    textures = [r.text() for _ in range(nt)]
    (nm,) = r.take("I")
    mats = []
    for _ in range(nm):
        name = r.text(); r.text()
        diffuse = r.take("4f"); r.take("3ff3f")
        (flags,) = r.take("B"); r.take("4ff")
        (tex,) = r.take(si[tsz]); r.take(si[tsz])
        _, tf, toon = r.take("BBb")
        r.text()
        (fc,) = r.take("I")
        mats.append({"name": name, "diffuse": diffuse, "flags": flags, "texture": tex,
                     "toon": toon, "faces": fc // 3})
    (nb,) = r.take("I")
    bl = []
    for _ in range(nb):
        name = r.text(); r.text()
        p = list(r.take("3f")); p[2] = -p[2]
        (parent,) = r.take(si[bsz])
        _, flags = r.take("IH")
        r.take(si[bsz]) if flags & TAIL_IS_BONE else r.take("3f")
        if flags & (INHERIT_ROTATION | 0x200):
            r.take(si[bsz]); r.take("f")
        bl.append({"name": name, "position": p, "parent": parent, "flags": flags})
    (nmo,) = r.take("I")
    morphs = []
    for _ in range(nmo):
        name = r.text(); r.text()
        panel, typ, cnt = r.take("BBI")
        assert typ == 1
        idx = np.zeros(cnt, int); off = np.zeros((cnt, 3))
        for j in range(cnt):
            (idx[j],) = r.take(ui[vsz])
            off[j] = r.take("3f")
        off[:, 2] *= -1
        morphs.append({"name": name, "panel": panel, "indices": idx, "offsets": off})
    return {"names": names, "positions": pos, "normals": nrm, "uvs": uv, "bones_idx": bones,
            "weights": w, "faces": faces, "textures": textures, "materials": mats,
            "bones": bl, "morphs": morphs}

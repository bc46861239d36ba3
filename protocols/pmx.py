"""PMX (MikuMikuDance model) reader for *validating* user models: pure Python, bounded.

Reads a PMX 2.0 or 2.1 file's header, names, texture paths, materials, bones, morphs,
display frames and the rigid-body / joint / soft-body counts, skipping the vertex and
face data without decoding it. It answers two questions the page asks of a model the
user drops in: is it a well-formed PMX file we can hand to three.js, and which of the
standard MMD bones and morphs our tracker drives does it have (``standard_report``)?

User files are hostile (DESIGN.md "Bad input"). Every count and length is checked
against the bytes that remain *before* anything is allocated or looped over, so a huge
count fails at once. Each text is at most ``MAX_TEXT_BYTES``; each kept section at most
``MAX_ITEMS`` records; an IK bone at most ``MAX_IK_LINKS`` links; all records decoded one
by one (bones, links, morphs, frame elements, bodies, …) together at most ``MAX_RECORDS``.
Vertices are walked by a tight loop that allocates nothing, faces and morph offsets are
skipped by size, so time and memory are linear in the file size with small constants (a
6 MB, 70,000-vertex model parses in about 5 ms). Every problem raises one ``PmxError``
(a ``ValueError``) whose one-line message says what is wrong and at which byte.
Problems that do not stop a loader (an index that points nowhere, texture paths that
leave the model's folder, trailing bytes) are collected in ``PmxModel.warnings`` /
``PmxModel.unsafe_textures`` instead, and valid PMX that three.js's MMDLoader cannot load
(version 2.1, UTF-8 text, QDEF, additional-UV/flip/impulse morphs) in
``PmxModel.loader_problems``.

Layout (little-endian; ``text`` = i32 byte length + bytes in the header's encoding;
``idx(k)`` = an index of the header's size k for that kind, signed, −1 = none, except
vertex indices, which are unsigned for sizes 1 and 2):

    header     "PMX " f32 version (2.0 | 2.1), u8 n (≥ 8), n bytes: encoding (0 UTF-16LE,
               1 UTF-8), additional vec4 count (0–4), index sizes (1|2|4) for vertex,
               texture, material, bone, morph, rigid body
    info       text name, text English name, text comment, text English comment
    vertices   i32 count; each: 8 f32 (position, normal, uv), 4·k f32 additional UVs,
               u8 deform: 0 BDEF1 idx(bone) | 1 BDEF2 2 idx + f32 | 2 BDEF4 4 idx + 4 f32 |
               3 SDEF 2 idx + f32 + 9 f32 | 4 QDEF (2.1) 4 idx + 4 f32; f32 edge scale
    faces      i32 index count (3 per triangle); each idx(vertex)
    textures   i32 count; each text (a path relative to the model's folder)
    materials  i32 count; each: 2 text, 11 f32 (diffuse, specular, power, ambient), u8
               flags, 5 f32 (edge colour, size), idx(texture) texture, idx(texture) sphere,
               u8 sphere mode, u8 shared toon (0|1) then idx(texture) or u8 (toon01–10),
               text memo, i32 index count
    bones      i32 count; each: 2 text, 3 f32 position, idx(bone) parent, i32 layer, u16
               flags; tail: idx(bone) if flags & 0x0001 else 3 f32; inherit (0x0100
               rotation | 0x0200 translation): idx(bone) + f32; fixed axis 0x0400: 3 f32;
               local axis 0x0800: 6 f32; external parent 0x2000: i32; IK 0x0020:
               idx(bone) target, i32 loops, f32 limit, i32 links, each idx(bone) + u8
               limited (0|1) + 6 f32 if limited
    morphs     i32 count; each: 2 text, u8 panel, u8 type, i32 offsets; offset sizes by type:
               0 group idx(morph)+f32, 1 vertex idx(vertex)+3 f32, 2 bone idx(bone)+7 f32,
               3–7 UV idx(vertex)+4 f32, 8 material idx(material)+u8+28 f32,
               9 flip (2.1) idx(morph)+f32, 10 impulse (2.1) idx(rigid)+u8+6 f32
    frames     i32 count; each: 2 text, u8 special, i32 elements, each u8 (0 bone | 1 morph)
               + idx(bone | morph)
    rigid      i32 count; each: 2 text, idx(bone), u8 group, u16 mask, u8 shape, 9 f32,
               5 f32, u8 physics mode
    joints     i32 count; each: 2 text, u8 type, 2 idx(rigid), 24 f32
    soft (2.1) i32 count; each: 2 text, u8 shape, idx(material), u8 group, u16 mask, u8
               flags, i32 link distance, i32 clusters, f32 mass, f32 margin, i32 aero model,
               12 f32 config, 6 f32 cluster, 4 i32 iterations, 3 f32 material, i32 anchors
               each idx(rigid) + idx(vertex) + u8, i32 pins each idx(vertex)

Sources: the PMX 2.0 specification shipped with PmxEditor (English translation,
gist ulrikdamm/8274171) and the parser three.js vendors for MMDLoader (npm
``mmd-parser`` 1.0.4, ``Parser.prototype.parsePmx``), which the tests read our test
files back with.
"""
from __future__ import annotations

import math
import os
import re
import struct
import unicodedata
from array import array
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence, Union

import numpy as np

from .pose import (BLINK, BOTH_EYES, BROW_DOWN, BROW_UP, HEAD, LEFT_EYE, NECK, RIGHT_EYE, SMILE, UPPER_BODY,
                   VOWEL_MORPHS, WINK_LEFT, WINK_RIGHT)

MAGIC = b"PMX "
MAX_BYTES = 100 * 1024 * 1024          # default limit on a whole file
MAX_TEXT_BYTES = 64 * 1024             # any one name, path or comment
MAX_ITEMS = 1 << 16                    # records kept per section (textures, bones, morphs, …)
MAX_RECORDS = 250_000                  # bones + IK links + morphs + frame elements + … walked in Python
MAX_IK_LINKS = 1024                    # per IK bone (real chains have a handful)
MAX_WARNINGS = 100
ENCODINGS = {0: "utf-16-le", 1: "utf-8"}
INDEX_SIZES = (1, 2, 4)

# Bone flags (PMX 2.0 spec, "ボーンフラグ").
BONE_TAIL_IS_BONE = 0x0001
BONE_ROTATABLE = 0x0002
BONE_TRANSLATABLE = 0x0004
BONE_VISIBLE = 0x0008
BONE_ENABLED = 0x0010
BONE_IK = 0x0020
BONE_INHERIT_ROTATION = 0x0100
BONE_INHERIT_TRANSLATION = 0x0200
BONE_FIXED_AXIS = 0x0400
BONE_LOCAL_AXIS = 0x0800
BONE_PHYSICS_AFTER_DEFORM = 0x1000
BONE_EXTERNAL_PARENT = 0x2000

DEFORM_TYPES = ("BDEF1", "BDEF2", "BDEF4", "SDEF", "QDEF")
MORPH_TYPES = ("group", "vertex", "bone", "uv", "uv1", "uv2", "uv3", "uv4", "material", "flip", "impulse")
MORPH_PANELS = ("system", "eyebrow", "eye", "mouth", "other")


class PmxError(ValueError):
    """A file that is not a PMX 2.0/2.1 model we can read; the message is one line."""

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message)
        self.offset = offset


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class UnsafeTexture:
    index: int
    path: str
    reason: str                 # "absolute path", "escapes the model folder", …


@dataclass(frozen=True, slots=True)
class Material:
    name: str
    name_en: str
    flags: int
    texture: int                # index into PmxModel.textures, −1 = none
    sphere_texture: int
    sphere_mode: int
    toon_shared: bool           # True: toon is 0–9 (MMD's toon01.bmp–toon10.bmp); else a texture index
    toon: int
    index_count: int            # vertex indices this material draws (3 per triangle)

    @property
    def face_count(self) -> int:
        return self.index_count // 3


@dataclass(frozen=True, slots=True)
class Bone:
    name: str
    name_en: str
    position: tuple[float, float, float]
    parent: int                 # −1 = root
    layer: int
    flags: int
    tail_bone: int | None = None            # when the tail is a bone (flags & 0x0001)
    inherit_parent: int | None = None       # inherit rotation / translation (0x0100 / 0x0200)
    inherit_weight: float = 0.0
    external_key: int | None = None         # external parent (0x2000)
    ik_target: int | None = None            # IK (0x0020)
    ik_loops: int = 0
    ik_links: tuple[int, ...] = ()

    @property
    def is_ik(self) -> bool:
        return bool(self.flags & BONE_IK)


@dataclass(frozen=True, slots=True)
class Morph:
    name: str
    name_en: str
    panel: int                  # 0 system, 1 eyebrow, 2 eye, 3 mouth, 4 other
    kind: int                   # index into MORPH_TYPES
    offset_count: int

    @property
    def kind_name(self) -> str:
        return MORPH_TYPES[self.kind]


@dataclass(frozen=True, slots=True)
class DisplayFrame:
    name: str
    name_en: str
    special: bool
    bones: array                # bone indices shown in this frame, in order
    morphs: array               # morph indices


@dataclass(slots=True)
class PmxModel:
    version: float              # 2.0 or 2.1
    encoding: str               # "utf-16-le" or "utf-8"
    additional_uvs: int
    index_sizes: dict[str, int]  # vertex, texture, material, bone, morph, rigid_body
    name: str
    name_en: str
    comment: str
    comment_en: str
    vertex_count: int = 0
    index_count: int = 0        # face indices (3 per triangle)
    deform_counts: dict[str, int] = field(default_factory=dict)
    textures: list[str] = field(default_factory=list)
    unsafe_textures: list[UnsafeTexture] = field(default_factory=list)
    materials: list[Material] = field(default_factory=list)
    bones: list[Bone] = field(default_factory=list)
    morphs: list[Morph] = field(default_factory=list)
    display_frames: list[DisplayFrame] = field(default_factory=list)
    rigid_body_count: int = 0
    joint_count: int = 0
    soft_body_count: int | None = None      # None for 2.0 files
    trailing_bytes: int = 0
    header_globals: int = 8     # PMX 2.0/2.1 write 8; more are skipped
    section_offsets: dict[str, int] = field(default_factory=dict)   # where each section starts
    warnings: list[str] = field(default_factory=list)
    # Valid PMX that three.js's MMDLoader (its vendored mmd-parser 1.0.4) still cannot load.
    loader_problems: list[str] = field(default_factory=list)

    @property
    def face_count(self) -> int:
        return self.index_count // 3

    def warn(self, message: str) -> None:
        """Keep a warning; past ``MAX_WARNINGS`` only count them (a hostile file can make millions)."""
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)
        elif len(self.warnings) == MAX_WARNINGS:
            self.warnings.append("more warnings left out")


# ----------------------------------------------------------------------------- reading


_I8, _U8, _I16, _U16, _I32, _F32 = (struct.Struct(f) for f in ("<b", "<B", "<h", "<H", "<i", "<f"))
_SIGNED = {1: _I8, 2: _I16, 4: _I32}
_UNSIGNED = {1: _U8, 2: _U16, 4: _I32}        # vertex indices: unsigned for 1 and 2 bytes
_VEC3 = struct.Struct("<3f")
_GLOBALS = struct.Struct("<8B")
_F32_2_1 = _F32.unpack(_F32.pack(2.1))[0]      # 2.1 as a float32 stores it (2.0999999046…)


class _Reader:
    """A cursor over the file that refuses to read past its end."""

    __slots__ = ("data", "pos", "end", "section", "item", "encoding", "budget", "starts")

    def __init__(self, data: bytes):
        self.data, self.pos, self.end = data, 0, len(data)
        self.section, self.item, self.encoding = "header", None, "utf-8"
        self.budget = MAX_RECORDS
        self.starts: dict[str, int] = {"header": 0}

    def enter(self, section: str) -> None:
        self.section, self.item = section, None
        self.starts[section] = self.pos

    def where(self) -> str:
        return self.section if self.item is None else f"{self.section} (#{self.item})"

    def fail(self, what: str, at: int | None = None) -> PmxError:
        at = self.pos if at is None else at
        return PmxError(f"{what} in {self.where()} at byte {at}", at)

    def need(self, n: int) -> None:
        if n > self.end - self.pos:
            raise PmxError(f"truncated in {self.where()} at byte {self.pos}: needs {n} bytes, "
                           f"{self.end - self.pos} left", self.pos)

    def unpack(self, s: struct.Struct) -> tuple:
        self.need(s.size)
        v = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return v

    def one(self, s: struct.Struct):
        self.need(s.size)
        v = s.unpack_from(self.data, self.pos)[0]
        self.pos += s.size
        return v

    def skip(self, n: int) -> None:
        self.need(n)
        self.pos += n

    def count(self, what: str, min_size: int, limit: int | None = MAX_ITEMS, walked: bool = True) -> int:
        """An i32 count of records each at least ``min_size`` bytes, checked before use.

        ``walked`` records are visited one by one in Python, so they also draw on one budget
        for the whole file (``MAX_RECORDS``): that bounds time, not just memory."""
        at = self.pos
        n = self.one(_I32)
        if n < 0:
            raise PmxError(f"{what} count {n} is negative in {self.where()} at byte {at}", at)
        if limit is not None and n > limit:
            raise PmxError(f"{what} count {n} is over the limit of {limit} in {self.where()} at byte {at}", at)
        if n * min_size > self.end - self.pos:
            raise PmxError(f"{what} count {n} exceeds the file: needs at least {n * min_size} bytes, "
                           f"{self.end - self.pos} left, in {self.where()} at byte {at}", at)
        if walked:
            self.budget -= n
            if self.budget < 0:
                raise PmxError(f"{what} count {n} takes the model over {MAX_RECORDS} records in {self.where()} "
                               f"at byte {at}", at)
        return n

    def text(self) -> str:
        at = self.pos
        n = self.one(_I32)
        if n < 0:
            raise PmxError(f"text length {n} is negative in {self.where()} at byte {at}", at)
        if n > MAX_TEXT_BYTES:
            raise PmxError(f"text length {n} is over the limit of {MAX_TEXT_BYTES} bytes in {self.where()} "
                           f"at byte {at}", at)
        self.need(n)
        raw = self.data[self.pos:self.pos + n]
        if self.encoding == "utf-16-le" and n % 2:
            raise PmxError(f"text length {n} is odd for UTF-16 in {self.where()} at byte {at}", at)
        try:
            s = raw.decode(self.encoding)
        except UnicodeDecodeError as e:
            raise PmxError(f"invalid {self.encoding.upper()} text in {self.where()} at byte "
                           f"{self.pos + e.start}", self.pos + e.start) from None
        self.pos += n
        return s.rstrip("\x00")


def read_pmx(source: Union[str, os.PathLike, bytes, bytearray, memoryview], max_bytes: int = MAX_BYTES) -> PmxModel:
    """Parse a PMX 2.0/2.1 file (a path or its bytes); raise ``PmxError`` if it is not one.

    At most ``max_bytes`` are read; a larger file is refused before it is read.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise PmxError(f"file is {len(data)} bytes, over the limit of {max_bytes}")
    elif isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > max_bytes:
                    raise PmxError(f"file is {size} bytes, over the limit of {max_bytes}")
                data = f.read(max_bytes + 1)
        except PmxError:
            raise
        except OSError as e:
            raise PmxError(f"cannot read the model file: {e.strerror or e}") from None
        except ValueError:                                  # a NUL in the path
            raise PmxError("cannot read the model file: invalid path") from None
        if len(data) > max_bytes:
            raise PmxError(f"file is over the limit of {max_bytes} bytes")
    else:                                                   # never open(int): that would take over a descriptor
        raise TypeError(f"read_pmx takes a path or bytes, not {type(source).__name__}")
    return _parse(data)


def _parse(data: bytes) -> PmxModel:
    r = _Reader(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise PmxError("not a PMX file: bad magic (expected 'PMX ')", 0)
    r.pos = 4
    raw_version = r.one(_F32)
    if raw_version == 2.0:
        version = 2.0
    elif raw_version == _F32_2_1:
        version = 2.1
    else:
        raise PmxError(f"unsupported PMX version {raw_version!r} (expected 2.0 or 2.1) at byte 4", 4)
    at = r.pos
    n_globals = r.one(_U8)
    if n_globals < 8:
        raise PmxError(f"header declares {n_globals} globals, needs 8, at byte {at}", at)
    g = r.unpack(_GLOBALS)
    r.skip(n_globals - 8)                  # later versions may add globals: skipped
    enc, n_uv, vsz, tsz, msz, bsz, mosz, rsz = g
    if enc not in ENCODINGS:
        raise PmxError(f"unknown text encoding {enc} (expected 0 UTF-16LE or 1 UTF-8) at byte {at + 1}", at + 1)
    if n_uv > 4:
        raise PmxError(f"additional UV count {n_uv} is over 4 at byte {at + 2}", at + 2)
    for k, (label, size) in enumerate(zip(("vertex", "texture", "material", "bone", "morph", "rigid body"),
                                          (vsz, tsz, msz, bsz, mosz, rsz))):
        if size not in INDEX_SIZES:
            raise PmxError(f"{label} index size {size} is not 1, 2 or 4 at byte {at + 3 + k}", at + 3 + k)
    r.encoding = ENCODINGS[enc]
    r.enter("model info")
    model = PmxModel(version=version, encoding=r.encoding, additional_uvs=n_uv,
                     index_sizes=dict(vertex=vsz, texture=tsz, material=msz, bone=bsz, morph=mosz, rigid_body=rsz),
                     name=r.text(), name_en=r.text(), comment=r.text(), comment_en=r.text(),
                     header_globals=n_globals, section_offsets=r.starts)
    tidx, bidx, moidx = _SIGNED[tsz], _SIGNED[bsz], _SIGNED[mosz]

    _skip_vertices(r, model, n_uv, bsz)
    _skip_faces(r, model, vsz)

    r.enter("textures")
    n = r.count("texture", 4)
    for i in range(n):
        r.item = i
        path = r.text()
        model.textures.append(path)
        reason = texture_problem(path)
        if reason:
            model.unsafe_textures.append(UnsafeTexture(i, path, reason))

    r.enter("materials")
    n = r.count("material", 84 + 2 * tsz)
    n_tex = len(model.textures)
    for i in range(n):
        r.item = i
        name, name_en = r.text(), r.text()
        r.skip(44)                               # diffuse, specular, power, ambient
        flags = r.one(_U8)
        r.skip(20)                               # edge colour, size
        tex, sphere = r.one(tidx), r.one(tidx)
        sphere_mode, at = r.one(_U8), r.pos
        shared = r.one(_U8)
        if shared not in (0, 1):
            raise r.fail(f"shared-toon flag {shared} is not 0 or 1", at)
        toon = r.one(_U8) if shared else r.one(tidx)
        r.text()                                 # memo
        at = r.pos
        count = r.one(_I32)
        if count < 0:
            raise r.fail(f"material index count {count} is negative", at)
        model.materials.append(Material(name, name_en, flags, tex, sphere, sphere_mode, bool(shared), toon, count))
        refs = (("texture", tex), ("sphere texture", sphere)) + ((("toon texture", toon),) if not shared else ())
        for label, t in refs:
            if not -1 <= t < n_tex:
                model.warn(f"material {i} {label} index {t} is out of range ({n_tex} textures)")
        if shared and toon > 9:
            model.warn(f"material {i} shared toon {toon} is over 9")
    used = sum(m.index_count for m in model.materials)
    if used != model.index_count:
        model.warn(f"materials draw {used} face indices but the model has {model.index_count}")

    _read_bones(r, model, bidx, bsz)
    _read_morphs(r, model, vsz, msz, bsz, mosz, rsz)
    _read_frames(r, model, bidx, moidx, min(bsz, mosz))

    r.enter("rigid bodies")
    n = r.count("rigid body", 8 + bsz + 61, limit=None)
    for i in range(n):
        r.item = i
        r.text(), r.text()
        r.skip(bsz + 61)
    model.rigid_body_count = n

    r.enter("joints")
    n = r.count("joint", 8 + 1 + 2 * rsz + 96, limit=None)
    for i in range(n):
        r.item = i
        r.text(), r.text()
        r.skip(1 + 2 * rsz + 96)
    model.joint_count = n

    if version >= 2.1 and r.pos < r.end:
        _skip_soft_bodies(r, model, vsz, msz, rsz)
    elif version >= 2.1:
        model.soft_body_count = 0
    _loader_problems(model)
    model.trailing_bytes = r.end - r.pos
    if model.trailing_bytes:
        model.warn(f"{model.trailing_bytes} bytes after the last section (ignored)")
    return model


def _loader_problems(model: PmxModel) -> None:
    """What mmd-parser 1.0.4 (three.js r171's MMDLoader) does not read: it compares the
    version, read as float32, with the double 2.1 and so refuses every 2.1 file; it decodes every text
    as UTF-16LE whatever the header says, throws on QDEF vertices, and reads no offsets
    for additional-UV (4–7), flip (9) and impulse (10) morphs, so every later byte is misread."""
    out = model.loader_problems
    if model.version != 2.0:
        out.append("PMX 2.1: three.js's MMDLoader accepts only version 2.0 (its float32 2.1 is not 2.1)")
    if model.header_globals != 8:
        out.append(f"header has {model.header_globals} globals: three.js's MMDLoader reads exactly 8")
    if model.encoding != "utf-16-le":
        out.append("text is UTF-8: three.js's MMDLoader reads PMX text as UTF-16 only (re-save as UTF-16)")
    if model.deform_counts.get("QDEF"):
        out.append(f"{model.deform_counts['QDEF']} QDEF vertices: three.js's MMDLoader rejects QDEF")
    skipped = [i for i, m in enumerate(model.morphs) if m.offset_count and (4 <= m.kind <= 7 or m.kind >= 9)]
    if skipped:
        out.append(f"{len(skipped)} additional-UV/flip/impulse morphs with offsets (first #{skipped[0]}): "
                   "three.js's MMDLoader misreads the rest of the file")


def _skip_vertices(r: _Reader, model: PmxModel, n_uv: int, bsz: int) -> None:
    """Walk the vertices, whose sizes vary with each one's deform type, without decoding them."""
    r.enter("vertices")
    fixed = 32 + 16 * n_uv                                   # position, normal, uv, additional UVs
    sizes = [fixed + 1 + w + 4 for w in (bsz, 2 * bsz + 4, 4 * bsz + 16, 2 * bsz + 40, 4 * bsz + 16)]
    n = r.count("vertex", sizes[0], limit=None, walked=False)
    data, pos, end = r.data, r.pos, r.end
    hist = [0, 0, 0, 0, 0]
    i = 0
    try:
        for i in range(n):
            t = data[pos + fixed]
            if t > 4:
                r.item = i
                raise r.fail(f"unknown deform type {t}", pos + fixed)
            hist[t] += 1
            pos += sizes[t]
    except IndexError:
        pos = end + 1
    if pos > end:
        r.item = i
        raise PmxError(f"truncated in vertices (#{i}) at byte {min(pos, end)}", min(pos, end))
    r.pos = pos
    model.vertex_count = n
    model.deform_counts = {name: c for name, c in zip(DEFORM_TYPES, hist) if c}
    if hist[4] and model.version < 2.1:
        model.warn(f"{hist[4]} QDEF vertices in a PMX 2.0 file (QDEF is 2.1)")


def _skip_faces(r: _Reader, model: PmxModel, vsz: int) -> None:
    r.enter("faces")
    n = r.count("face index", vsz, limit=None, walked=False)
    if n % 3:
        model.warn(f"face index count {n} is not a multiple of 3")
    if n:
        dtype = {1: "<u1", 2: "<u2", 4: "<i4"}[vsz]
        idx = np.frombuffer(r.data, dtype=dtype, count=n, offset=r.pos)      # a view: no copy
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= model.vertex_count:
            model.warn(f"face indices span {lo}..{hi} but the model has {model.vertex_count} vertices")
    r.pos += n * vsz
    model.index_count = n


def _read_bones(r: _Reader, model: PmxModel, bidx: struct.Struct, bsz: int) -> None:
    r.enter("bones")
    n = r.count("bone", 8 + 12 + bsz + 4 + 2 + min(bsz, 12))
    for i in range(n):
        r.item = i
        name, name_en = r.text(), r.text()
        position = r.unpack(_VEC3)
        parent, layer, flags = r.one(bidx), r.one(_I32), r.one(_U16)
        tail = inherit = ext = target = None
        weight, loops, links = 0.0, 0, ()
        if flags & BONE_TAIL_IS_BONE:
            tail = r.one(bidx)
        else:
            r.skip(12)
        if flags & (BONE_INHERIT_ROTATION | BONE_INHERIT_TRANSLATION):
            inherit, weight = r.one(bidx), r.one(_F32)
        if flags & BONE_FIXED_AXIS:
            r.skip(12)
        if flags & BONE_LOCAL_AXIS:
            r.skip(24)
        if flags & BONE_EXTERNAL_PARENT:
            ext = r.one(_I32)
        if flags & BONE_IK:
            target, loops = r.one(bidx), r.one(_I32)
            r.skip(4)                                        # limit angle
            m = r.count("IK link", bsz + 1, limit=MAX_IK_LINKS)
            out = []
            for _ in range(m):
                out.append(r.one(bidx))
                at = r.pos
                limited = r.one(_U8)
                if limited not in (0, 1):
                    raise r.fail(f"IK link limit flag {limited} is not 0 or 1", at)
                if limited:
                    r.skip(24)
            links = tuple(out)
        model.bones.append(Bone(name, name_en, position, parent, layer, flags, tail, inherit, weight, ext,
                                target, loops, links))
    for i, b in enumerate(model.bones):
        for label, j in (("parent", b.parent), ("tail", b.tail_bone), ("inherit parent", b.inherit_parent),
                         ("IK target", b.ik_target)):
            if j is not None and not -1 <= j < n:
                model.warn(f"bone {i} {label} index {j} is out of range ({n} bones)")
        for j in b.ik_links:
            if not 0 <= j < n:
                model.warn(f"bone {i} IK link index {j} is out of range ({n} bones)")


def _read_morphs(r: _Reader, model: PmxModel, vsz: int, msz: int, bsz: int, mosz: int, rsz: int) -> None:
    r.enter("morphs")
    offset_sizes = (mosz + 4, vsz + 12, bsz + 28, vsz + 16, vsz + 16, vsz + 16, vsz + 16, vsz + 16,
                    msz + 1 + 112, mosz + 4, rsz + 1 + 24)
    n = r.count("morph", 14)
    for i in range(n):
        r.item = i
        name, name_en = r.text(), r.text()
        panel, at = r.one(_U8), r.pos
        kind = r.one(_U8)
        if kind >= len(MORPH_TYPES):
            raise r.fail(f"unknown morph type {kind}", at)
        size = offset_sizes[kind]
        m = r.count(f"{MORPH_TYPES[kind]} morph offset", size, limit=None, walked=False)
        r.skip(m * size)
        model.morphs.append(Morph(name, name_en, panel, kind, m))
        if panel > 4:
            model.warn(f"morph {i} panel {panel} is not 0–4")
        if kind >= 9 and model.version < 2.1:
            model.warn(f"morph {i} is a {MORPH_TYPES[kind]} morph in a PMX 2.0 file (it is 2.1)")


def _read_frames(r: _Reader, model: PmxModel, bidx: struct.Struct, moidx: struct.Struct, min_idx: int) -> None:
    r.enter("display frames")
    n = r.count("display frame", 13)
    for i in range(n):
        r.item = i
        name, name_en = r.text(), r.text()
        special = r.one(_U8)
        m = r.count("display frame element", 1 + min_idx, limit=None)
        bones, morphs = array("i"), array("i")
        for _ in range(m):
            at = r.pos
            kind = r.one(_U8)
            if kind == 0:
                bones.append(r.one(bidx))
            elif kind == 1:
                morphs.append(r.one(moidx))
            else:
                raise r.fail(f"display frame element type {kind} is not 0 (bone) or 1 (morph)", at)
        model.display_frames.append(DisplayFrame(name, name_en, bool(special), bones, morphs))


def _skip_soft_bodies(r: _Reader, model: PmxModel, vsz: int, msz: int, rsz: int) -> None:
    r.enter("soft bodies")
    fixed = 1 + msz + 1 + 2 + 1 + 4 + 4 + 4 + 4 + 4 + 12 * 4 + 6 * 4 + 4 * 4 + 3 * 4
    n = r.count("soft body", 8 + fixed + 8, limit=None)
    for i in range(n):
        r.item = i
        r.text(), r.text()
        r.skip(fixed)
        a = r.count("soft body anchor", rsz + vsz + 1, limit=None, walked=False)
        r.skip(a * (rsz + vsz + 1))
        p = r.count("soft body pin", vsz, limit=None, walked=False)
        r.skip(p * vsz)
    model.soft_body_count = n


# ----------------------------------------------------------------------------- texture paths

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")     # C:, file:, http:


def texture_problem(path: str) -> str | None:
    """Why a texture path is unsafe to resolve against the model's folder, or None if it is fine.

    PMX paths are relative to the model's folder with either slash; a page or bridge that
    served them as given could be made to read ``C:\\Windows\\…`` or ``../../secret``.
    """
    if any(ord(c) < 32 for c in path):
        return "control character in path"
    p = path.replace("\\", "/")
    if p.startswith("/"):
        return "absolute path"
    if _SCHEME.match(p):
        return "absolute path or URL"
    depth = 0
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part.strip() == "..":
            depth -= 1
            if depth < 0:
                return "escapes the model folder"
        else:
            depth += 1
    return None


# ----------------------------------------------------------------------------- standard names


def _sides(jp: str, en: str, *more: str) -> dict[str, tuple[str, ...]]:
    """Aliases for a left/right pair: 左X → X_L, LeftX, …; 右X → X_R, RightX, …"""
    out = {}
    for side_jp, s, side in (("左", "L", "Left"), ("右", "R", "Right")):
        names = [f"{en}_{s}", f"{en}.{s}", f"{s}_{en}", f"{side}{en}", f"{en}{side}", f"{side} {en}"]
        names += [m.format(s=s, side=side) for m in more]
        out[side_jp + jp] = tuple(names)
    return out


BONE_ALIASES: dict[str, tuple[str, ...]] = {
    "全ての親": ("master", "root", "mother"),
    "センター": ("center", "centre"),
    "グルーブ": ("groove",),
    "下半身": ("lower body", "LowerBody", "lower_body"),
    UPPER_BODY: ("upper body", "UpperBody", "upper_body", "spine"),
    "上半身2": ("upper body2", "upper body 2", "UpperBody2", "upper_body2", "chest"),
    NECK: ("neck",),
    HEAD: ("head",),
    BOTH_EYES: ("eyes", "both eyes", "BothEyes"),
    **_sides("目", "eye"),
    **_sides("肩", "shoulder"),
    **_sides("腕", "arm", "{side}UpperArm", "upperarm_{s}", "{s}_UpperArm"),
    **_sides("ひじ", "elbow", "{side}ForeArm", "{side}LowerArm", "forearm_{s}", "lowerarm_{s}", "{s}_LowerArm"),
    **_sides("手首", "wrist", "{side}Hand", "hand_{s}", "{s}_Hand"),
    **_sides("足", "leg", "{side}UpLeg", "{side}UpperLeg", "thigh_{s}", "{s}_UpperLeg"),
    **_sides("ひざ", "knee", "{side}LowerLeg", "shin_{s}", "{s}_LowerLeg"),
    **_sides("足首", "ankle", "{side}Foot", "foot_{s}", "{s}_Foot"),
}

MORPH_ALIASES: dict[str, tuple[str, ...]] = {
    BLINK: ("blink", "blink both", "eyes close", "eye close"),
    WINK_LEFT: ("wink", "wink_L", "wink left", "wink.L", "blink_L", "BlinkLeft", "blink left", "eyeBlinkLeft"),
    WINK_RIGHT: ("wink_R", "wink right", "wink.R", "blink_R", "BlinkRight", "blink right", "eyeBlinkRight"),
    VOWEL_MORPHS["a"]: ("a", "aa", "mouth_a", "vrc.v_aa"),
    VOWEL_MORPHS["i"]: ("i", "ih", "mouth_i", "vrc.v_ih"),
    VOWEL_MORPHS["u"]: ("u", "ou", "mouth_u", "vrc.v_ou"),
    VOWEL_MORPHS["e"]: ("e", "ee", "mouth_e", "vrc.v_e"),
    VOWEL_MORPHS["o"]: ("o", "oh", "mouth_o", "vrc.v_oh"),
    SMILE: ("cheerful", "nikori", "brow smile"),
    "笑い": ("smile", "eye smile", "eye_smile", "joy", "warai"),
    BROW_UP: ("brow up", "brow_up", "up", "browInnerUp"),
    BROW_DOWN: ("brow down", "brow_down", "down", "browDown"),
    "困る": ("troubled", "trouble", "sad", "worried", "komaru"),
    "怒り": ("angry", "anger", "ikari"),
}

STANDARD_BONES: tuple[str, ...] = tuple(BONE_ALIASES)
STANDARD_MORPHS: tuple[str, ...] = tuple(MORPH_ALIASES)
# What the rig (bridge/rig.py) drives every frame: a model without one of these shows no motion there.
REQUIRED_BONES: tuple[str, ...] = (UPPER_BODY, NECK, HEAD, BOTH_EYES, LEFT_EYE, RIGHT_EYE)
REQUIRED_MORPHS: tuple[str, ...] = (BLINK, WINK_LEFT, WINK_RIGHT, *VOWEL_MORPHS.values(), SMILE, BROW_UP, BROW_DOWN)

_STRIP = re.compile(r"[\s_.\-]+")


def _norm(name: str) -> str:
    """NFKC (half-width ｳｨﾝｸ → ウィンク, ２ → 2), case-folded, without spaces, '_', '.', '-'."""
    return _STRIP.sub("", unicodedata.normalize("NFKC", name).casefold())


def match_names(items: Sequence, standard: Iterable[str],
                aliases: Mapping[str, Sequence[str]]) -> dict[str, int | None]:
    """For each standard name, the index of the item (a Bone or Morph) that plays it, or None.

    An exact Japanese name wins; then the same name normalised (half-width kana, case,
    separators); then any alias against the item's Japanese or English name field. The
    first item in file order wins each step, and an item serves at most one standard name.
    """
    exact: dict[str, int] = {}
    loose: dict[str, int] = {}
    for i, it in enumerate(items):
        exact.setdefault(it.name, i)
    for i, it in enumerate(items):
        for key in (_norm(it.name), _norm(it.name_en)):
            if key:
                loose.setdefault(key, i)
    standard = list(standard)
    out: dict[str, int | None] = {s: None for s in standard}
    taken: set[int] = set()
    for step in range(3):
        for s in standard:
            if out[s] is not None:
                continue
            if step == 0:
                keys, table = [s], exact
            elif step == 1:
                keys, table = [_norm(s)], loose
            else:
                keys, table = [_norm(a) for a in aliases.get(s, ())], loose
            for k in keys:
                i = table.get(k)
                if i is not None and i not in taken:
                    out[s] = i
                    taken.add(i)
                    break
    return out


def standard_report(model: PmxModel, required_bones: Sequence[str] = REQUIRED_BONES,
                    required_morphs: Sequence[str] = REQUIRED_MORPHS) -> dict:
    """Which standard MMD bones and morphs the model has, under which of its own names (JSON-ready).

    ``bones`` / ``morphs`` map each standard Japanese name to the model's name for it (the
    Japanese name field, which three.js's MMDLoader keys bones and morphs by) or None.
    """
    all_bones = list(dict.fromkeys([*STANDARD_BONES, *required_bones]))
    all_morphs = list(dict.fromkeys([*STANDARD_MORPHS, *required_morphs]))
    bone_hits = match_names(model.bones, all_bones, BONE_ALIASES)
    morph_hits = match_names(model.morphs, all_morphs, MORPH_ALIASES)
    bones = {s: (None if i is None else model.bones[i].name) for s, i in bone_hits.items()}
    morphs = {s: (None if i is None else model.morphs[i].name) for s, i in morph_hits.items()}
    missing_req_bones = [s for s in required_bones if bones[s] is None]
    missing_req_morphs = [s for s in required_morphs if morphs[s] is None]
    return {
        "name": model.name, "name_en": model.name_en, "version": f"{model.version:.1f}",
        "bones": bones, "morphs": morphs,
        "missing_bones": [s for s, v in bones.items() if v is None],
        "missing_morphs": [s for s, v in morphs.items() if v is None],
        "missing_required_bones": missing_req_bones,
        "missing_required_morphs": missing_req_morphs,
        "unsafe_textures": [{"index": u.index, "path": u.path, "reason": u.reason} for u in model.unsafe_textures],
        "warnings": list(model.warnings),
        "loader_problems": list(model.loader_problems),
        "ok": not (missing_req_bones or missing_req_morphs or model.unsafe_textures or model.loader_problems),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m openvtuber.protocols.pmx MODEL.pmx``: print the report as JSON; 1 on a bad file."""
    import json
    import sys
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m openvtuber.protocols.pmx MODEL.pmx", file=sys.stderr)
        return 2
    try:
        report = standard_report(read_pmx(args[0]))
    except PmxError as e:
        print(f"{args[0]}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

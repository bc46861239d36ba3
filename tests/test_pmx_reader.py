"""PMX reader: every section and variant parsed from files built here byte by byte, a
read-back of the same files through an independent parser (npm ``mmd-parser`` 1.0.4,
the one three.js's MMDLoader uses), the standard bone/morph report with English aliases,
and ≥ 10,000 mutated files that must each give one one-line ``PmxError`` in bounded time
and memory."""
from __future__ import annotations

import json
import math
import random
import resource
import shutil
import struct
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest

from openvtuber.protocols.pmx import (BONE_ALIASES, MAX_TEXT_BYTES, MORPH_ALIASES, REQUIRED_BONES, REQUIRED_MORPHS,
                                      STANDARD_BONES, STANDARD_MORPHS, PmxError, PmxModel, read_pmx,
                                      standard_report, texture_problem)

REPO = Path(__file__).resolve().parents[1]
NODE_DIR = REPO / "tests" / "tools" / "node"
SIZES = ("vertex", "texture", "material", "bone", "morph", "rigid_body")


# ----------------------------------------------------------------------------- a minimal PMX writer


class Builder:
    """Writes PMX bytes field by field and remembers where the count, length, index-size,
    encoding and deform-type fields and the section starts are, so the fuzzer can aim."""

    def __init__(self, version: float = 2.1, encoding: int = 0, uvs: int = 0, sizes=(4, 4, 4, 4, 4, 4)):
        self.b = bytearray()
        self.version, self.enc, self.uvs = version, encoding, uvs
        self.size = dict(zip(SIZES, sizes))
        self.counts: list[int] = []      # offsets of i32 counts
        self.texts: list[int] = []       # offsets of i32 text lengths
        self.deforms: list[int] = []     # offsets of vertex deform-type bytes
        self.kinds: list[int] = []       # morph-type / frame-element-type / toon-flag / IK-limit bytes
        self.sections: dict[str, int] = {}
        self.soft_counts: list[int] = []  # counts a reader only checks for sign (material index counts)
        self.b += b"PMX " + struct.pack("<fB", version, 8)
        self.globals_at = len(self.b)
        self.b += bytes([encoding, uvs, *sizes])

    def section(self, name: str) -> None:
        self.sections[name] = len(self.b)

    def u8(self, v: int) -> None:
        self.b += struct.pack("<B", v)

    def u16(self, v: int) -> None:
        self.b += struct.pack("<H", v)

    def i32(self, v: int) -> None:
        self.b += struct.pack("<i", v)

    def f(self, *v: float) -> None:
        self.b += struct.pack(f"<{len(v)}f", *v)

    def count(self, n: int) -> None:
        self.counts.append(len(self.b))
        self.i32(n)

    def kind(self, v: int) -> None:
        self.kinds.append(len(self.b))
        self.u8(v)

    def idx(self, kind: str, v: int) -> None:
        n = self.size[kind]
        fmt = {1: "<b", 2: "<h", 4: "<i"}[n]
        self.b += struct.pack(fmt.upper() if kind == "vertex" and n < 4 else fmt, v)   # vertex: unsigned 1/2

    def text(self, s: str) -> None:
        raw = s.encode("utf-16-le" if self.enc == 0 else "utf-8")
        self.texts.append(len(self.b))
        self.i32(len(raw))
        self.b += raw

    def bytes(self) -> bytes:
        return bytes(self.b)


DEFORMS_21 = ("BDEF1", "BDEF2", "BDEF4", "SDEF", "QDEF")
TEXTURES = ("tex/body.png", "toon\\skin.bmp", "sub/../face.png", "../../secret.png", "C:\\Windows\\win.ini",
            "/etc/passwd", "a/../../b.png")
BONES = [  # name, English name, parent, flags
    ("センター", "center", -1, 0x001E),
    ("上半身", "upper body", 0, 0x001F),                 # tail is a bone
    ("首", "neck", 1, 0x001F),
    ("頭", "head", 2, 0x041E),                           # fixed axis
    ("両目", "eyes", 3, 0x081E),                          # local axis
    ("左目", "eye_L", 3, 0x011E),                          # inherit rotation
    ("右目", "eye_R", 3, 0x031E),                          # inherit rotation + translation
    ("左腕", "arm_L", 1, 0x201E),                          # external parent
    ("右腕", "arm_R", 1, 0x001E),
    ("左足ＩＫ", "leg IK_L", 0, 0x003E),                  # IK
]
MORPHS_20 = [  # name, English name, panel, type
    ("まばたき", "blink", 2, 0), ("ウィンク", "wink", 2, 1), ("ウィンク右", "wink_R", 2, 2), ("あ", "a", 3, 3),
    ("い", "i", 3, 4), ("う", "u", 3, 5), ("え", "e", 3, 6), ("お", "o", 3, 7), ("にこり", "cheerful", 1, 8),
    ("笑い", "smile", 2, 1), ("上", "up", 1, 1), ("下", "down", 1, 1), ("困る", "troubled", 1, 1),
    ("怒り", "angry", 1, 0),
]
MORPHS_21 = MORPHS_20 + [("反転", "flip", 4, 9), ("衝撃", "impulse", 4, 10)]


def build(version: float = 2.1, encoding: int = 0, uvs: int = 2, sizes=(4, 4, 4, 4, 4, 4), *, deforms=None,
          textures=TEXTURES, morphs=None, soft_bodies: bool = True, trailing: bytes = b"",
          mmd_parser_subset: bool = False) -> Builder:
    """A small model using every section, deform type, bone flag and morph type of ``version``.

    ``mmd_parser_subset`` leaves out what mmd-parser 1.0.4 cannot read (QDEF, additional-UV
    morphs, flip/impulse morphs, soft bodies) for the independent read-back.
    """
    w = Builder(version, encoding, uvs, sizes)
    w.section("model info")
    for s in ("テストモデル", "Test model", "コメント\n二行目", "comment\r\nline 2"):
        w.text(s)
    deforms = deforms or (DEFORMS_21 if version >= 2.1 and not mmd_parser_subset else DEFORMS_21[:4])
    w.section("vertices")
    w.count(len(deforms))
    for k, d in enumerate(deforms):
        w.f(k, k + 1, 0, 0, 0, 1, 0.5, 0.5)
        for u in range(uvs):
            w.f(u, u, u, u)
        w.deforms.append(len(w.b))
        t = DEFORMS_21.index(d)
        w.u8(t)
        nb = (1, 2, 4, 2, 4)[t]
        for j in range(nb):
            w.idx("bone", j)
        if t in (1, 3):
            w.f(0.25)
        if t in (2, 4):
            w.f(0.25, 0.25, 0.25, 0.25)
        if t == 3:
            w.f(*range(9))
        w.f(1.0)                                   # edge scale
    nv = len(deforms)
    w.section("faces")
    faces = [0, 1, 2, 1, 2, 3]
    w.count(len(faces))
    for v in faces:
        w.idx("vertex", v)
    w.section("textures")
    w.count(len(textures))
    for t in textures:
        w.text(t)
    w.section("materials")
    w.count(2)
    for name, tex, shared, toon, n in (("体", 0, 1, 3, 3), ("顔", 1, 0, 1, 3)):
        w.text(name)
        w.text(name + "_en")
        w.f(1, 1, 1, 1, 0, 0, 0, 5, 0.5, 0.5, 0.5)
        w.u8(0x13)
        w.f(0, 0, 0, 1, 1)
        w.idx("texture", tex)
        w.idx("texture", -1)
        w.u8(0)
        w.kind(shared)
        if shared:
            w.u8(toon)
        else:
            w.idx("texture", toon)
        w.text("memo")
        w.soft_counts.append(len(w.b))
        w.count(n)
    w.section("bones")
    w.count(len(BONES))
    for k, (name, en, parent, flags) in enumerate(BONES):
        w.text(name)
        w.text(en)
        w.f(0, k, 0)
        w.idx("bone", parent)
        w.i32(0)
        w.u16(flags)
        if flags & 0x0001:
            w.idx("bone", k + 1)
        else:
            w.f(0, 1, 0)
        if flags & 0x0300:
            w.idx("bone", 4)
            w.f(0.5)
        if flags & 0x0400:
            w.f(1, 0, 0)
        if flags & 0x0800:
            w.f(1, 0, 0, 0, 0, 1)
        if flags & 0x2000:
            w.i32(7)
        if flags & 0x0020:
            w.idx("bone", 8)
            w.i32(40)
            w.f(0.5)
            w.count(2)
            w.idx("bone", 7)
            w.kind(1)
            w.f(-1, 0, 0, 0, 0, 0)
            w.idx("bone", 1)
            w.kind(0)
    w.section("morphs")
    morphs = morphs or (MORPHS_21 if version >= 2.1 and not mmd_parser_subset else
                        [(n, e, p, 3 if 4 <= t <= 7 else t) for n, e, p, t in MORPHS_20] if mmd_parser_subset
                        else MORPHS_20)
    w.count(len(morphs))
    for name, en, panel, t in morphs:
        w.text(name)
        w.text(en)
        w.u8(panel)
        w.kind(t)
        w.count(2)
        for j in range(2):
            if t in (0, 9):
                w.idx("morph", j)
                w.f(0.5)
            elif t == 1:
                w.idx("vertex", j)
                w.f(0, 0.1, 0)
            elif t == 2:
                w.idx("bone", j)
                w.f(0, 0, 0, 0, 0, 0, 1)
            elif 3 <= t <= 7:
                w.idx("vertex", j)
                w.f(0.1, 0, 0, 0)
            elif t == 8:
                w.idx("material", j - 1)          # −1: every material
                w.u8(1)
                w.f(*([0.5] * 28))
            else:
                w.idx("rigid_body", j)
                w.u8(1)
                w.f(0, 0, 1, 0, 0, 0)
    w.section("display frames")
    frames = [("Root", 1, [(0, 0)]), ("表情", 1, [(1, 0), (1, 1), (1, 2)]), ("体", 0, [(0, 1), (0, 2), (1, 3), (0, 3)])]
    w.count(len(frames))
    for name, special, elements in frames:
        w.text(name)
        w.text(name + "_en")
        w.u8(special)
        w.count(len(elements))
        for t, j in elements:
            w.kind(t)
            w.idx("bone" if t == 0 else "morph", j)
    w.section("rigid bodies")
    w.count(2)
    for k in range(2):
        w.text(f"剛体{k}")
        w.text(f"rigid{k}")
        w.idx("bone", 3)
        w.u8(k)
        w.u16(0xFFFE)
        w.u8(0)
        w.f(*([0.5] * 9), 1, 0.5, 0.5, 0, 0.5)
        w.u8(0)
    w.section("joints")
    w.count(1)
    w.text("ジョイント")
    w.text("joint")
    w.u8(0)
    w.idx("rigid_body", 0)
    w.idx("rigid_body", 1)
    w.f(*([0.0] * 24))
    if version >= 2.1 and soft_bodies and not mmd_parser_subset:
        w.section("soft bodies")
        w.count(1)
        w.text("スカート")
        w.text("skirt")
        w.u8(0)
        w.idx("material", 0)
        w.u8(1)
        w.u16(0xFFFF)
        w.u8(3)
        w.i32(2)
        w.i32(0)
        w.f(1.0, 0.05)
        w.i32(1)
        w.f(*([0.5] * 12), *([0.5] * 6))
        w.i32(1), w.i32(1), w.i32(1), w.i32(1)
        w.f(1, 1, 1)
        w.count(2)
        for j in range(2):
            w.idx("rigid_body", j)
            w.idx("vertex", j)
            w.u8(0)
        w.count(3)
        for j in range(3):
            w.idx("vertex", j % nv)
    w.section("end")
    w.b += trailing
    return w


# ----------------------------------------------------------------------------- valid files


@pytest.mark.parametrize("version", [2.0, 2.1])
@pytest.mark.parametrize("encoding", [0, 1])
@pytest.mark.parametrize("sizes", [(1, 1, 1, 1, 1, 1), (2, 2, 2, 2, 2, 2), (4, 4, 4, 4, 4, 4), (2, 1, 4, 2, 1, 4)])
def test_reads_every_section(version, encoding, sizes):
    w = build(version, encoding, uvs=2, sizes=sizes)
    m = read_pmx(w.bytes())
    assert isinstance(m, PmxModel)
    assert m.version == version and m.encoding == ("utf-16-le", "utf-8")[encoding] and m.additional_uvs == 2
    assert m.index_sizes == dict(zip(SIZES, sizes))
    assert (m.name, m.name_en, m.comment, m.comment_en) == ("テストモデル", "Test model", "コメント\n二行目",
                                                            "comment\r\nline 2")
    deforms = DEFORMS_21 if version >= 2.1 else DEFORMS_21[:4]
    assert m.vertex_count == len(deforms) and m.deform_counts == {d: 1 for d in deforms}
    assert m.index_count == 6 and m.face_count == 2
    assert m.textures == list(TEXTURES)
    assert [(u.index, u.reason) for u in m.unsafe_textures] == [
        (3, "escapes the model folder"), (4, "absolute path or URL"), (5, "absolute path"),
        (6, "escapes the model folder")]
    assert [(x.name, x.name_en, x.flags, x.texture, x.sphere_texture, x.toon_shared, x.toon, x.face_count)
            for x in m.materials] == [("体", "体_en", 0x13, 0, -1, True, 3, 1), ("顔", "顔_en", 0x13, 1, -1, False, 1, 1)]
    assert [(b.name, b.name_en, b.parent, b.flags) for b in m.bones] == BONES
    assert [b.position for b in m.bones][3] == (0.0, 3.0, 0.0)
    assert m.bones[1].tail_bone == 2 and m.bones[0].tail_bone is None
    assert (m.bones[5].inherit_parent, m.bones[5].inherit_weight) == (4, 0.5) and m.bones[6].inherit_parent == 4
    assert m.bones[7].external_key == 7 and m.bones[8].external_key is None
    ik = m.bones[9]
    assert ik.is_ik and (ik.ik_target, ik.ik_loops, ik.ik_links) == (8, 40, (7, 1))
    morphs = MORPHS_21 if version >= 2.1 else MORPHS_20
    assert [(x.name, x.name_en, x.panel, x.kind, x.offset_count) for x in m.morphs] == \
        [(n, e, p, t, 2) for n, e, p, t in morphs]
    assert m.morphs[8].kind_name == "material"
    assert [(f.name, f.special, list(f.bones), list(f.morphs)) for f in m.display_frames] == [
        ("Root", True, [0], []), ("表情", True, [], [0, 1, 2]), ("体", False, [1, 2, 3], [3])]
    assert m.rigid_body_count == 2 and m.joint_count == 1
    assert m.soft_body_count == (1 if version >= 2.1 else None)
    assert m.trailing_bytes == 0 and m.warnings == []
    assert m.section_offsets == {"header": 0, **{k: v for k, v in w.sections.items() if k != "end"}}


@pytest.mark.parametrize("uvs", [0, 1, 4])
def test_additional_uvs_and_deform_mix_change_vertex_sizes(uvs):
    deforms = ("SDEF", "BDEF1", "QDEF", "QDEF", "BDEF4", "BDEF2", "SDEF", "BDEF1")
    m = read_pmx(build(2.1, 1, uvs=uvs, sizes=(2, 1, 1, 2, 1, 1), deforms=deforms).bytes())
    assert m.vertex_count == 8 and m.deform_counts == {"BDEF1": 2, "BDEF2": 1, "BDEF4": 1, "SDEF": 2, "QDEF": 2}
    assert len(m.bones) == len(BONES) and m.soft_body_count == 1


def test_reads_a_path_and_trailing_bytes_are_counted(tmp_path):
    p = tmp_path / "model.pmx"
    p.write_bytes(build(2.0, trailing=b"\0" * 7).bytes())
    m = read_pmx(p)
    assert m.trailing_bytes == 7 and m.warnings == ["7 bytes after the last section (ignored)"]
    assert read_pmx(str(p)).bones[3].name == "頭"


def test_index_range_problems_are_warnings_not_errors():
    w = build(2.0, sizes=(2, 2, 2, 2, 2, 2))
    data = bytearray(w.bytes())
    struct.pack_into("<H", data, w.sections["faces"] + 4, 999)           # a face index past the vertices
    m = read_pmx(bytes(data))
    assert m.warnings == ["face indices span 1..999 but the model has 4 vertices"]


def test_large_model_parses_fast():
    """A 70,000-vertex, 100,000-triangle model (about 6 MB) in well under a second."""
    w = Builder(2.0, 0, 1, (4, 1, 1, 2, 1, 1))
    for s in ("big", "big", "", ""):
        w.text(s)
    rnd = random.Random(1)
    kinds = [rnd.randrange(4) for _ in range(70_000)]
    head = struct.pack("<12f", *[0] * 12)                  # position, normal, uv, one additional UV
    tail = {0: struct.pack("<Bhf", 0, 0, 1), 1: struct.pack("<Bhhff", 1, 0, 1, 0.5, 1),
            2: struct.pack("<B4h5f", 2, 0, 1, 2, 3, .25, .25, .25, .25, 1),
            3: struct.pack("<Bhh11f", 3, 0, 1, *[0.5] * 10, 1)}
    w.count(70_000)
    w.b += b"".join(head + tail[k] for k in kinds)
    w.count(300_000)
    w.b += struct.pack("<300000i", *[i % 70_000 for i in range(300_000)])
    for _ in range(8):
        w.count(0)
    data = w.bytes()
    t0 = time.perf_counter()
    m = read_pmx(data)
    dt = time.perf_counter() - t0
    assert m.vertex_count == 70_000 and m.face_count == 100_000
    assert sum(m.deform_counts.values()) == 70_000 and m.deform_counts["SDEF"] == kinds.count(3)
    assert dt < 0.5, f"{dt:.3f} s for {len(data)} bytes"


# ----------------------------------------------------------------------------- independent read-back

_DUMP_JS = r"""
const fs = require('fs');
const { Parser } = require('mmd-parser');
console.log = console.warn = (...a) => process.stderr.write(a.join(' ') + '\n');
const b = fs.readFileSync(process.argv[1]);
const p = new Parser().parsePmx(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength), false);
process.stdout.write(JSON.stringify({
  metadata: p.metadata, textures: p.textures,
  materials: p.materials.map((m) => [m.name, m.englishName, m.flag, m.textureIndex, m.envTextureIndex, m.toonFlag,
                                     m.toonIndex, m.faceCount]),
  bones: p.bones.map((x) => [x.name, x.englishName, x.parentIndex, x.flag]),
  morphs: p.morphs.map((x) => [x.name, x.englishName, x.panel, x.type, x.elementCount]),
  frames: p.frames.map((f) => [f.name, f.type, f.elements.map((e) => [e.target, e.index])]),
}));
"""


def _mmd_parser(path: Path) -> subprocess.CompletedProcess:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH (CI installs it with tests/tools/node)")
    if not (NODE_DIR / "node_modules" / "mmd-parser").is_dir():
        pytest.skip("tests/tools/node/node_modules is missing: run `npm ci --prefix tests/tools/node`")
    return subprocess.run(["node", "-e", _DUMP_JS, str(path)], capture_output=True, text=True, timeout=60,
                          cwd=NODE_DIR)


@pytest.mark.parametrize("sizes", [(4, 4, 4, 4, 4, 4), (1, 1, 1, 1, 1, 1), (2, 1, 2, 2, 2, 1), (1, 4, 2, 1, 4, 2)])
def test_mmd_parser_reads_the_same_file(tmp_path, sizes):
    path = tmp_path / "m.pmx"
    path.write_bytes(build(2.0, 0, uvs=1, sizes=sizes, mmd_parser_subset=True).bytes())
    res = _mmd_parser(path)
    assert res.returncode == 0, res.stderr
    js = json.loads(res.stdout)
    m = read_pmx(path)
    assert m.loader_problems == []
    md = js["metadata"]
    assert (md["modelName"], md["englishModelName"], md["comment"]) == (m.name, m.name_en, m.comment)
    assert (md["vertexCount"], md["faceCount"], md["boneCount"], md["morphCount"], md["frameCount"],
            md["rigidBodyCount"], md["constraintCount"]) == (m.vertex_count, m.face_count, len(m.bones),
                                                              len(m.morphs), len(m.display_frames),
                                                              m.rigid_body_count, m.joint_count)
    assert js["textures"] == m.textures
    assert js["materials"] == [[x.name, x.name_en, x.flags, x.texture, x.sphere_texture, int(x.toon_shared), x.toon,
                                x.face_count] for x in m.materials]
    assert js["bones"] == [[b.name, b.name_en, b.parent, b.flags] for b in m.bones]
    assert js["morphs"] == [[x.name, x.name_en, x.panel, x.kind, x.offset_count] for x in m.morphs]
    assert js["frames"] == [["Root", 1, [[0, 0]]], ["表情", 1, [[1, 0], [1, 1], [1, 2]]],
                            ["体", 0, [[0, 1], [0, 2], [1, 3], [0, 3]]]]
    assert [(f.name, f.special, list(f.bones), list(f.morphs)) for f in m.display_frames] == [
        ("Root", True, [0], []), ("表情", True, [], [0, 1, 2]), ("体", False, [1, 2, 3], [3])]


@pytest.mark.parametrize("case", ["version 2.1", "utf-8", "qdef", "uv1 morph", "flip morph", "impulse morph"])
def test_loader_problems_are_what_mmd_parser_fails_on(tmp_path, case):
    """Each loader problem we report makes mmd-parser throw or misread the file."""
    kw = dict(mmd_parser_subset=True)
    if case == "version 2.1":
        w = build(2.1, 0, **kw)
    elif case == "utf-8":
        w = build(2.0, 1, **kw)
    elif case == "qdef":                                        # (QDEF and flip/impulse are 2.1: warned)
        w = build(2.0, 0, deforms=("BDEF1", "QDEF", "BDEF2", "SDEF"), **kw)
    else:
        t = {"uv1 morph": 4, "flip morph": 9, "impulse morph": 10}[case]
        w = build(2.0, 0, morphs=[("あ", "a", 3, 1), ("x", "x", 4, t), ("い", "i", 3, 1)], **kw)
    path = tmp_path / "m.pmx"
    path.write_bytes(w.bytes())
    m = read_pmx(path)
    assert len(m.loader_problems) == 1 and standard_report(m)["ok"] is False
    if case in ("qdef", "flip morph", "impulse morph"):
        assert len(m.warnings) == 1 and "PMX 2.0 file" in m.warnings[0]
    res = _mmd_parser(path)
    if res.returncode == 0:                                     # it "parsed": then it misread something
        js = json.loads(res.stdout)
        assert (js["metadata"]["modelName"] != m.name or [b[0] for b in js["bones"]] != [b.name for b in m.bones]
                or [x[0] for x in js["morphs"]] != [x.name for x in m.morphs]
                or js["metadata"]["frameCount"] != len(m.display_frames))


def test_extra_header_globals_are_skipped_but_flagged_for_three_js():
    w = build(2.0, 0, mmd_parser_subset=True)
    d = w.bytes()
    g = w.globals_at
    d2 = d[:8] + b"\x0a" + d[g:g + 8] + b"\x00\x00" + d[g + 8:]
    m = read_pmx(d2)
    assert m.header_globals == 10 and len(m.bones) == len(BONES) and m.warnings == []
    assert m.loader_problems == ["header has 10 globals: three.js's MMDLoader reads exactly 8"]


def test_command_line(tmp_path):
    import sys
    good, bad = tmp_path / "good.pmx", tmp_path / "bad.pmx"
    good.write_bytes(build(2.0, 0, mmd_parser_subset=True).bytes())
    bad.write_bytes(b"PMX \0\0\0@")
    run = lambda p: subprocess.run([sys.executable, "-m", "openvtuber.protocols.pmx", str(p)], capture_output=True,
                                   text=True, timeout=60)
    ok = run(good)
    assert ok.returncode == 0 and json.loads(ok.stdout)["bones"]["頭"] == "頭"
    err = run(bad)
    assert err.returncode == 1 and err.stderr.strip() == f"{bad}: truncated in header at byte 8: needs 1 bytes, 0 left"


# ----------------------------------------------------------------------------- texture paths


@pytest.mark.parametrize("path,problem", [
    ("tex/a.png", None), ("a.png", None), ("tex\\a.png", None), ("./a/../b.png", None), ("", None),
    ("..\\a.png", "escapes the model folder"), ("a/../../b.png", "escapes the model folder"),
    ("a/ .. /../b", "escapes the model folder"),
    ("C:\\x.png", "absolute path or URL"), ("c:x.png", "absolute path or URL"),
    ("file:///etc/x", "absolute path or URL"),
    ("http://evil/x.png", "absolute path or URL"), ("/etc/passwd", "absolute path"),
    ("\\\\server\\share\\x.png", "absolute path"), ("a\x00.png", "control character in path"),
])
def test_texture_paths(path, problem):
    assert texture_problem(path) == problem


# ----------------------------------------------------------------------------- standard names


def test_report_on_a_standard_model():
    rep = standard_report(read_pmx(build(2.1).bytes()))
    assert rep["ok"] is False                                   # unsafe textures
    assert rep["missing_required_bones"] == [] and rep["missing_required_morphs"] == []
    assert rep["bones"]["頭"] == "頭" and rep["bones"]["グルーブ"] is None and "グルーブ" in rep["missing_bones"]
    assert all(rep["morphs"][s] == s for s in STANDARD_MORPHS)
    assert len(rep["unsafe_textures"]) == 4 and rep["version"] == "2.1"
    json.dumps(rep, ensure_ascii=False)
    ok = standard_report(read_pmx(build(2.0, textures=("a.png", "b/c.png"), mmd_parser_subset=True).bytes()))
    assert ok["ok"] is True and ok["unsafe_textures"] == []


def _named(bones, morphs, bone_en=None, morph_en=None) -> bytes:
    """A skeleton-only model (no vertices) with the given bone and morph names."""
    w = Builder(2.0, 0, 0, (4, 4, 4, 4, 4, 4))
    for s in ("n", "n", "", ""):
        w.text(s)
    w.count(0), w.count(0), w.count(0), w.count(0)
    w.count(len(bones))
    for k, name in enumerate(bones):
        w.text(name)
        w.text((bone_en or [""] * len(bones))[k])
        w.f(0, 0, 0), w.idx("bone", k - 1), w.i32(0), w.u16(0x1E), w.f(0, 1, 0)
    w.count(len(morphs))
    for k, name in enumerate(morphs):
        w.text(name)
        w.text((morph_en or [""] * len(morphs))[k])
        w.u8(1), w.u8(1), w.count(0)
    w.count(0), w.count(0), w.count(0)
    return w.bytes()


def test_report_resolves_english_and_half_width_names():
    bones = ["Center", "UpperBody", "neck", "Head", "BothEyes", "LeftEye", "eye_R", "Left Arm", "arm.R", "骨"]
    morphs = ["Blink", "wink_L", "Wink Right", "A", "ih", "vrc.v_ou", "E", "oh", "Cheerful", "Smile", "brow_up",
              "brow down", "ｺﾏﾙ", "angry"]
    rep = standard_report(read_pmx(_named(bones, morphs, morph_en=[""] * 12 + ["troubled", ""])))
    assert rep["bones"]["センター"] == "Center" and rep["bones"]["上半身"] == "UpperBody"
    assert rep["bones"]["左目"] == "LeftEye" and rep["bones"]["右目"] == "eye_R"
    assert rep["bones"]["左腕"] == "Left Arm" and rep["bones"]["右腕"] == "arm.R"
    assert rep["missing_required_bones"] == [] and rep["missing_required_morphs"] == []
    assert rep["morphs"]["ウィンク"] == "wink_L" and rep["morphs"]["ウィンク右"] == "Wink Right"
    assert rep["morphs"]["困る"] == "ｺﾏﾙ" and rep["morphs"]["笑い"] == "Smile" and rep["morphs"]["にこり"] == "Cheerful"
    assert rep["ok"] is True


def test_report_uses_the_english_name_field_and_half_width_kana():
    rep = standard_report(read_pmx(_named(["ｾﾝﾀｰ", "bone1", "bone2"], ["ｳｨﾝｸ右", "m1"],
                                          bone_en=["", "head", "eye_L"], morph_en=["", "blink"])))
    assert rep["bones"]["センター"] == "ｾﾝﾀｰ" and rep["bones"]["頭"] == "bone1" and rep["bones"]["左目"] == "bone2"
    assert rep["morphs"]["ウィンク右"] == "ｳｨﾝｸ右" and rep["morphs"]["まばたき"] == "m1"
    assert "首" in rep["missing_required_bones"] and rep["ok"] is False


def test_exact_japanese_name_beats_an_alias_and_each_item_serves_once():
    rep = standard_report(read_pmx(_named(["head", "頭"], ["wink", "ウィンク", "blink"])))
    assert rep["bones"]["頭"] == "頭"
    assert rep["morphs"]["ウィンク"] == "ウィンク" and rep["morphs"]["まばたき"] == "blink"


@pytest.mark.parametrize("valid", [False, True])
def test_required_names_are_what_the_rig_drives(valid):
    from openvtuber.bridge.rig import rig
    from openvtuber.tracking.state import FaceState
    pose = rig(FaceState(t=0.0, frame=0, found=valid, valid=valid))
    assert set(REQUIRED_BONES) == set(pose.bones) and set(REQUIRED_MORPHS) == set(pose.morphs)
    assert set(REQUIRED_MORPHS) <= set(STANDARD_MORPHS) and set(REQUIRED_BONES) <= set(STANDARD_BONES)


def test_alias_tables_cover_the_standard_names():
    assert set(REQUIRED_BONES) <= set(BONE_ALIASES) and set(REQUIRED_MORPHS) <= set(MORPH_ALIASES)
    for jp in ("センター", "上半身", "首", "頭", "両目", "左目", "右目", "左腕", "右腕"):
        assert jp in STANDARD_BONES and BONE_ALIASES[jp]
    assert set(STANDARD_MORPHS) == {"まばたき", "ウィンク", "ウィンク右", "あ", "い", "う", "え", "お", "にこり", "笑い", "上",
                                    "下", "困る", "怒り"}


# ----------------------------------------------------------------------------- bad files, one by one


def _err(data: bytes) -> str:
    with pytest.raises(PmxError) as e:
        read_pmx(data)
    msg = str(e.value)
    assert "\n" not in msg and "\r" not in msg
    assert isinstance(e.value, ValueError) and 0 <= e.value.offset <= len(data)
    if "at byte" in msg:
        assert int(msg.split("at byte ")[1].split(":")[0].split(" ")[0].rstrip(",")) == e.value.offset
    return msg


def test_specific_errors():
    good = build(2.1, sizes=(4, 4, 4, 4, 4, 4))
    d = good.bytes()
    assert _err(b"") == "not a PMX file: bad magic (expected 'PMX ')"
    assert _err(b"PMD " + d[4:]).startswith("not a PMX file: bad magic")
    assert _err(d[:4] + struct.pack("<f", 3.0) + d[8:]).startswith("unsupported PMX version 3.0")
    assert _err(d[:4] + struct.pack("<f", math.nan) + d[8:]).startswith("unsupported PMX version nan")
    assert _err(d[:4] + struct.pack("<f", 2.0000002) + d[8:]).startswith("unsupported PMX version 2.000000238")
    assert _err(d[:8] + b"\x05" + d[9:]) == "header declares 5 globals, needs 8, at byte 8"
    g = good.globals_at
    assert _err(d[:g] + b"\x07" + d[g + 1:]).startswith("unknown text encoding 7")
    assert _err(d[:g + 1] + b"\x05" + d[g + 2:]) == f"additional UV count 5 is over 4 at byte {g + 1}"
    assert _err(d[:g + 5] + b"\x03" + d[g + 6:]) == f"bone index size 3 is not 1, 2 or 4 at byte {g + 5}"
    assert _err(d[:g + 2] + b"\x00" + d[g + 3:]) == f"vertex index size 0 is not 1, 2 or 4 at byte {g + 2}"
    bones = good.sections["bones"]
    assert _err(d[:bones + 10]) == \
        f"bone count 10 exceeds the file: needs at least 340 bytes, 6 left, in bones at byte {bones}"
    assert _err(d[:good.sections["morphs"] - 5]).startswith("truncated in bones (#9) at byte")
    morphs = good.sections["morphs"]
    huge = d[:morphs] + struct.pack("<i", 2_000_000_000) + d[morphs + 4:]
    assert _err(huge).startswith(f"morph count 2000000000 is over the limit of 65536 in morphs at byte {morphs}")
    assert _err(d[:morphs] + struct.pack("<I", 4294967295) + d[morphs + 4:]) == \
        f"morph count -1 is negative in morphs at byte {morphs}"
    assert _err(d[:morphs] + struct.pack("<i", 60_000) + d[morphs + 4:]).startswith(
        f"morph count 60000 exceeds the file: needs at least 840000 bytes")
    v = good.sections["vertices"]
    assert _err(d[:v] + struct.pack("<i", 1 << 30) + d[v + 4:]).startswith("vertex count 1073741824 exceeds the file")
    assert _err(d[:good.deforms[2]] + b"\x09" + d[good.deforms[2] + 1:]) == \
        f"unknown deform type 9 in vertices (#2) at byte {good.deforms[2]}"
    t = good.texts[0]
    assert _err(d[:t] + struct.pack("<i", 1 << 20) + d[t + 4:]) == \
        f"text length 1048576 is over the limit of {MAX_TEXT_BYTES} bytes in model info at byte {t}"
    assert _err(d[:t] + struct.pack("<i", 11) + d[t + 4:]) == \
        f"text length 11 is odd for UTF-16 in model info at byte {t}"
    bad16 = d[:t + 4] + b"\x00\xd8" + d[t + 6:]                       # a lone high surrogate
    assert _err(bad16).startswith("invalid UTF-16-LE text in model info at byte")
    u = build(2.0, 1)
    ud = u.bytes()
    t = u.texts[0]
    assert _err(ud[:t + 4] + b"\xff" + ud[t + 5:]) == f"invalid UTF-8 text in model info at byte {t + 4}"
    k = next(x for x in good.kinds if x > morphs)                  # the first morph's type byte
    assert _err(d[:k] + b"\x0b" + d[k + 1:]).startswith("unknown morph type 11 in morphs (#0) at byte")


def test_size_limits(tmp_path):
    d = build(2.0).bytes()
    assert _err_call(lambda: read_pmx(d, max_bytes=100)) == f"file is {len(d)} bytes, over the limit of 100"
    p = tmp_path / "m.pmx"
    p.write_bytes(d)
    assert _err_call(lambda: read_pmx(p, max_bytes=100)) == f"file is {len(d)} bytes, over the limit of 100"
    assert _err_call(lambda: read_pmx(tmp_path / "missing.pmx")).startswith("cannot read the model file:")
    assert _err_call(lambda: read_pmx(tmp_path)).startswith("cannot read the model file:")
    assert _err_call(lambda: read_pmx(str(tmp_path / "a\0b.pmx"))) == "cannot read the model file: invalid path"
    with pytest.raises(TypeError):
        read_pmx(0)                                             # not a file descriptor
    assert read_pmx(memoryview(d)).bones[0].name == "センター" and read_pmx(bytearray(d)).vertex_count == 4


def _err_call(fn) -> str:
    with pytest.raises(PmxError) as e:
        fn()
    return str(e.value)


def test_truncation_at_every_byte_of_a_small_file():
    w = build(2.1, 0, 1, (1, 2, 1, 2, 1, 2))
    d = w.bytes()
    assert read_pmx(d[:w.sections["soft bodies"]]).soft_body_count == 0     # 2.1 without soft bodies: tolerated
    for n in range(len(d)):
        if n == w.sections["soft bodies"]:
            continue
        msg = _err(d[:n])
        assert msg.startswith(("not a PMX file", "truncated in")) or "exceeds the file" in msg, (n, msg)


def test_huge_counts_fail_before_allocating():
    """Every count field set to the largest i32 fails at once with a small memory peak."""
    w = build(2.1, 0, 2, (4, 4, 4, 4, 4, 4))
    d = w.bytes()
    tracemalloc.start()
    try:
        for at in w.counts:
            for v in (0x7FFFFFFF, -1, -0x80000000, 0x10000, len(d)):
                bad = d[:at] + struct.pack("<i", v) + d[at + 4:]
                tracemalloc.reset_peak()
                t0 = time.perf_counter()
                if at in w.soft_counts and v >= 0:
                    assert "face indices but the model has" in read_pmx(bad).warnings[0]
                else:
                    with pytest.raises(PmxError):
                        read_pmx(bad)
                assert time.perf_counter() - t0 < 0.1
                assert tracemalloc.get_traced_memory()[1] < 2 * len(d) + 200_000
    finally:
        tracemalloc.stop()


def _worst_case(what: str) -> bytes:
    """About 1 MB of the smallest records the format allows, all in one section."""
    w = Builder(2.0, 0, 0, (1, 1, 1, 1, 1, 1))
    for s in ("", "", "", ""):
        w.text(s)
    w.count(0), w.count(0), w.count(0), w.count(0)
    bone = struct.pack("<ii3fbiH3f", 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0)
    if what == "bones":
        w.count(30_000)
        w.b += bone * 30_000
    elif what == "IK links":                                # 240 IK bones × 1,000 links without limits
        w.count(240)
        w.b += (struct.pack("<ii3fbiHb", 0, 0, 0, 0, 0, -1, 0, 0x21, 0) + struct.pack("<bifi", 0, 1, 1.0, 1000)
                + struct.pack("<bB", 5, 0) * 1000) * 240
    else:
        w.count(0)
    if what == "morph offsets":
        w.count(1)
        w.text(""), w.text(""), w.u8(1), w.u8(0)
        w.count(200_000)
        w.b += struct.pack("<bf", 0, 1.0) * 200_000
    else:
        w.count(0)
    if what.startswith("frame elements"):
        n = 240_000 if what == "frame elements" else 500_000
        w.count(1)
        w.text(""), w.text(""), w.u8(0)
        w.count(n)
        w.b += struct.pack("<Bb", 0, 3) * n
    else:
        w.count(0)
    w.count(0), w.count(0)
    return w.bytes()


@pytest.mark.parametrize("what,parses", [("bones", True), ("IK links", True), ("morph offsets", True),
                                         ("frame elements", True), ("frame elements over budget", False)])
def test_worst_case_small_records_stay_bounded(what, parses):
    """The most records a ~1 MB file can hold parse (or hit the record budget) in bounded
    time and memory."""
    data = _worst_case(what)
    assert len(data) < 1_200_000
    t0 = time.perf_counter()
    try:
        m = read_pmx(data)
        assert parses and len(m.warnings) <= 101
    except PmxError as e:
        assert not parses and "records" in str(e), str(e)
    dt = time.perf_counter() - t0
    assert dt < 1.0, dt
    tracemalloc.start()
    try:
        try:
            read_pmx(data)
        except PmxError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000, peak


# ----------------------------------------------------------------------------- the fuzzer

FUZZ_CASES = 12_000
TRACE_EVERY = 2                  # tracemalloc on every n-th parse (tracing slows Python several times)


def _bases() -> list[Builder]:
    return [build(2.1, 0, 2, (4, 4, 4, 4, 4, 4)), build(2.0, 1, 0, (1, 1, 1, 1, 1, 1)),
            build(2.1, 1, 4, (2, 1, 2, 2, 1, 2)), build(2.0, 0, 1, (2, 2, 2, 2, 2, 2), trailing=b"xyz"),
            build(2.0, 1, 1, (1, 2, 1, 2, 1, 1), mmd_parser_subset=True)]


def _mutate(rnd: random.Random, w: Builder) -> tuple[str, bytes]:
    d = bytearray(w.bytes())
    op = rnd.randrange(12)
    if op == 0:                                          # flip a few bytes
        for _ in range(rnd.randint(1, 8)):
            d[rnd.randrange(len(d))] = rnd.randrange(256)
        return "flip", bytes(d)
    if op == 1:                                          # truncate at a section boundary ± a little
        at = rnd.choice(list(w.sections.values())) + rnd.randint(-3, 3)
        return "truncate-section", bytes(d[:max(0, at)])
    if op == 2:
        return "truncate", bytes(d[:rnd.randrange(len(d))])
    if op in (3, 4):                                     # a count or a text length set to something hostile
        at = rnd.choice(w.counts if op == 3 else w.texts)
        v = rnd.choice((-1, -2, -0x80000000, 0x7FFFFFFF, 0x40000000, 0x10000, 0x10001, len(d), len(d) // 2,
                        rnd.randint(-1000, 1000), rnd.randint(0, 0x7FFFFFFF)))
        struct.pack_into("<i", d, at, v)
        return "count" if op == 3 else "text-length", bytes(d)
    if op == 5:                                          # header globals: index sizes, encoding, UVs, version
        k = rnd.randrange(9)
        if k == 8:
            struct.pack_into("<f", d, 4, rnd.choice((0.0, 1.0, 2.05, 2.2, 3.0, math.inf, math.nan, -2.0)))
        else:
            d[w.globals_at + k] = rnd.choice((0, 3, 5, 7, 8, 255, rnd.randrange(256)))
        if rnd.random() < 0.3:
            d[8] = rnd.choice((0, 7, 9, 255))               # globals count
        return "header", bytes(d)
    if op == 6:                                          # random garbage, with and without a valid header
        n = rnd.randint(0, 4096)
        junk = bytes(rnd.randrange(256) for _ in range(n))
        return "garbage", (bytes(d[:rnd.choice((0, 4, 17, 30))]) + junk)
    if op == 7:                                          # insert or delete a run of bytes
        at = rnd.randrange(len(d))
        if rnd.random() < 0.5:
            del d[at:at + rnd.randint(1, 64)]
        else:
            d[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64)))
        return "insert-delete", bytes(d)
    if op == 8 and w.deforms:                            # deform types out of range or changed
        at = rnd.choice(w.deforms)
        d[at] = rnd.choice((3, 4, 5, 9, 255, rnd.randrange(256)))
        return "deform", bytes(d)
    if op == 9 and w.kinds:                              # morph / frame element / toon / IK-limit bytes
        at = rnd.choice(w.kinds)
        d[at] = rnd.choice((2, 9, 10, 11, 12, 255, rnd.randrange(256)))
        return "kind", bytes(d)
    if op == 10:                                         # bad text bytes: lone surrogates, invalid UTF-8
        at = rnd.choice(w.texts)
        n = struct.unpack_from("<i", d, at)[0]
        if n >= 2:
            p = at + 4 + rnd.randrange(n // 2) * 2
            d[p:p + 2] = rnd.choice((b"\x00\xd8", b"\x00\xdc", b"\xff\xff", b"\xc3\x28", b"\xff\xfe", b"\x80\x80"))
        return "encoding", bytes(d)
    # splice: a slice of one section repeated
    a, b = sorted(rnd.randrange(len(d)) for _ in range(2))
    return "splice", bytes(d[:b] + d[a:b] * rnd.randint(1, 4) + d[b:])


def _time_parse(data: bytes) -> float:
    t0 = time.perf_counter()
    try:
        read_pmx(data)
    except PmxError:
        pass
    return time.perf_counter() - t0


def test_fuzz_only_pmx_errors_in_bounded_time_and_memory():
    """12,000 seeded mutations of five valid files. Every one parses or raises a one-line
    ``PmxError``, in < 0.5 s; tracemalloc follows every TRACE_EVERY-th parse
    and must peak < 50 MB, and the process's max RSS may not grow by 50 MB over the run."""
    rnd = random.Random(20261127)
    bases = _bases()
    for b in bases:
        read_pmx(b.bytes())                               # the bases themselves are valid
    stats: dict[str, list[int]] = {}
    worst_t, worst_peak, parsed, traced = 0.0, 0, 0, 0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_all = time.perf_counter()
    for case in range(FUZZ_CASES):
        kind, data = _mutate(rnd, bases[case % len(bases)])
        trace = case % TRACE_EVERY == 0
        if trace:
            tracemalloc.start()
        t0 = time.perf_counter()
        try:
            read_pmx(data)
            parsed += 1
            ok = 1
        except PmxError as e:
            msg = str(e)
            assert msg and "\n" not in msg and "\r" not in msg, (case, kind, msg)
            ok = 0
        except Exception as e:                              # noqa: BLE001 - the point of the test
            pytest.fail(f"case {case} ({kind}): {type(e).__name__}: {e}")
        finally:
            dt = time.perf_counter() - t0
            if trace:
                worst_peak = max(worst_peak, tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
                traced += 1
        if dt >= 0.1:                                       # a loaded 2-core box stalls now and then: re-time
            dt = min(dt, *(_time_parse(data) for _ in range(3)))
        worst_t = max(worst_t, dt)
        assert dt < 0.5, (case, kind, dt)
        stats.setdefault(kind, [0, 0])[ok] += 1
    total = time.perf_counter() - t_all
    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    print(f"\nPMX fuzz: {FUZZ_CASES} files in {total:.1f} s, {parsed} still parsed, "
          f"worst parse {worst_t * 1000:.1f} ms, "
          f"tracemalloc peak {worst_peak / 1e6:.2f} MB over {traced} traced, max RSS growth {rss_growth_mb:.1f} MB; "
          f"per kind [errors, parsed]: {stats}")
    assert worst_peak < 50_000_000 and rss_growth_mb < 50
    assert sum(sum(v) for v in stats.values()) == FUZZ_CASES and len(stats) >= 10
    assert sum(v[0] for v in stats.values()) > FUZZ_CASES // 2


# ----------------------------------------------------------------------------- the project's own avatar


def test_project_avatar_has_every_required_bone_and_morph():
    path = REPO / "renderer" / "models" / "openvtuber" / "openvtuber.pmx"
    if not path.is_file():
        pytest.skip(f"{path.relative_to(REPO)} is not generated yet")
    m = read_pmx(path)
    rep = standard_report(m)
    missing = rep["missing_required_bones"] + rep["missing_required_morphs"]
    assert not missing, f"{path.name} lacks the standard bones/morphs {missing}"
    assert rep["unsafe_textures"] == [] and m.warnings == [] and m.loader_problems == [] and rep["ok"]


def test_project_avatar_reads_the_same_in_mmd_parser():
    path = REPO / "renderer" / "models" / "openvtuber" / "openvtuber.pmx"
    if not path.is_file():
        pytest.skip(f"{path.relative_to(REPO)} is not generated yet")
    res = _mmd_parser(path)
    assert res.returncode == 0, res.stderr
    js, m = json.loads(res.stdout), read_pmx(path)
    md = js["metadata"]
    assert (md["vertexCount"], md["faceCount"], md["rigidBodyCount"], md["constraintCount"]) == \
        (m.vertex_count, m.face_count, m.rigid_body_count, m.joint_count)
    assert js["textures"] == m.textures
    assert js["bones"] == [[b.name, b.name_en, b.parent, b.flags] for b in m.bones]
    assert js["morphs"] == [[x.name, x.name_en, x.panel, x.kind, x.offset_count] for x in m.morphs]
    assert js["materials"] == [
        [x.name, x.name_en, x.flags, x.texture, x.sphere_texture, int(x.toon_shared), x.toon, x.face_count]
        for x in m.materials]


def test_fuzz_the_project_avatar():
    """Hostile edits of a real generated model: truncation at and around every section
    start, every section count set to hostile values, byte flips, insertions/deletions."""
    path = REPO / "renderer" / "models" / "openvtuber" / "openvtuber.pmx"
    if not path.is_file():
        pytest.skip(f"{path.relative_to(REPO)} is not generated yet")
    base = path.read_bytes()
    starts = read_pmx(base).section_offsets
    counts = [v for k, v in starts.items() if k not in ("header", "model info")]
    cases: list[bytes] = []
    for at in starts.values():
        cases += [base[:max(0, at + d)] for d in (-2, -1, 0, 1, 3, 5)]
    for at in counts:
        for v in (-1, -0x80000000, 0x7FFFFFFF, 0x10000, 0x3FFFFFFF, len(base)):
            cases.append(base[:at] + struct.pack("<i", v) + base[at + 4:])
    rnd = random.Random(7)
    while len(cases) < 1500:
        d = bytearray(base)
        if rnd.random() < 0.5:
            for _ in range(rnd.randint(1, 16)):
                d[rnd.randrange(len(d))] = rnd.randrange(256)
        else:
            at = rnd.randrange(len(d))
            if rnd.random() < 0.5:
                del d[at:at + rnd.randint(1, 64)]
            else:
                d[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64)))
        cases.append(bytes(d))
    errors, worst = 0, 0.0
    for k, data in enumerate(cases):
        t0 = time.perf_counter()
        try:
            read_pmx(data)
        except PmxError as e:
            errors += 1
            assert "\n" not in str(e)
        except Exception as e:                              # noqa: BLE001 - the point of the test
            pytest.fail(f"case {k}: {type(e).__name__}: {e}")
        dt = time.perf_counter() - t0
        if dt >= 0.1:
            dt = min(dt, *(_time_parse(data) for _ in range(3)))
        worst = max(worst, dt)
        assert dt < 0.5, (k, dt)
    print(f"\navatar fuzz: {len(cases)} files of ~{len(base)} bytes, {errors} errors, worst {worst * 1000:.1f} ms")
    assert errors > len(cases) // 4

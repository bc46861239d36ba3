"""The bundled avatar (renderer/avatar.py → renderer/generate.py → PMX 2.0).

Checks determinism, the issue's limits, the standard MMD bone and morph names, that
morphs are local, weights are sane, meshes are closed and wound outwards, and an
independent read-back with mmd-parser (the parser three.js' MMDLoader uses).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RENDERER = ROOT / "renderer"
sys.path.insert(0, str(RENDERER))

import avatar  # noqa: E402
import avatar_geometry as G  # noqa: E402
import generate  # noqa: E402
import pmx_writer  # noqa: E402

NODE_TOOLS = ROOT / "tests" / "tools" / "node"
REQUIRED_BONES = ["センター", "上半身", "首", "頭", "両目", "左目", "右目",
                  "左腕", "左ひじ", "左手首", "右腕", "右ひじ", "右手首"]
REQUIRED_MORPHS = ["まばたき", "ウィンク", "ウィンク右", "あ", "い", "う", "え", "お",
                   "にこり", "上", "困る", "怒り"]


@pytest.fixture(scope="module")
def built():
    files, model = generate.build_files()
    return files, model, pmx_writer.read_pmx(files[generate.PMX_NAME])


def _gen(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RENDERER / "generate.py"), "--out", str(out)],
                          capture_output=True, text=True, check=True)


def test_generation_is_byte_identical_across_processes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    env_seed = os.environ.get("PYTHONHASHSEED")
    try:
        os.environ["PYTHONHASHSEED"] = "1"
        _gen(a)
        os.environ["PYTHONHASHSEED"] = "2"
        out = _gen(b)
    finally:
        if env_seed is None:
            os.environ.pop("PYTHONHASHSEED", None)
        else:
            os.environ["PYTHONHASHSEED"] = env_seed
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert {"openvtuber.pmx", "face.png", "blush.png", "LICENSE.txt"} <= set(names)
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n
    digest = hashlib.sha256((a / "openvtuber.pmx").read_bytes()).hexdigest()
    assert digest in out.stdout          # the summary prints the sha256


def test_check_flag_detects_stale_files(tmp_path):
    _gen(tmp_path)
    ok = subprocess.run([sys.executable, str(RENDERER / "generate.py"), "--check", "--out", str(tmp_path)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    p = tmp_path / "openvtuber.pmx"
    p.write_bytes(p.read_bytes()[:-1] + b"\x01")
    bad = subprocess.run([sys.executable, str(RENDERER / "generate.py"), "--check", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "out of date" in bad.stderr


def test_limits_and_license(built):
    files, model, pmx = built
    assert len(pmx["faces"]) <= 20_000
    assert len(pmx["materials"]) <= 8
    assert all(m["faces"] > 0 for m in pmx["materials"])
    assert sum(m["faces"] for m in pmx["materials"]) == len(pmx["faces"])
    assert "MIT" in pmx["names"][2] and "OpenVtuber authors" in pmx["names"][2]
    assert b"MIT" in files["LICENSE.txt"]


def test_required_bones_and_hierarchy(built):
    _, _, pmx = built
    names = [b["name"] for b in pmx["bones"]]
    for b in REQUIRED_BONES:
        assert b in names, b
    parent = {b["name"]: (names[b["parent"]] if b["parent"] >= 0 else None) for b in pmx["bones"]}
    assert parent["センター"] is None
    assert parent["上半身"] == "センター" and parent["首"] == "上半身" and parent["頭"] == "首"
    assert parent["左目"] == parent["右目"] == parent["両目"] == "頭"
    assert parent["左ひじ"] == "左腕" and parent["左手首"] == "左ひじ"
    pos = {b["name"]: np.array(b["position"]) for b in pmx["bones"]}
    # three.js space: +X is the model's own left, she faces +Z.
    assert pos["左目"][0] > 0 > pos["右目"][0] and pos["左腕"][0] > 0 > pos["右腕"][0]
    assert pos["両目"][2] > 0
    # A-pose: the arm goes down and out at ~35°.
    d = pos["左ひじ"] - pos["左腕"]
    assert 30 < np.degrees(np.arctan2(-d[1], d[0])) < 40


def test_required_morphs_have_panels(built):
    _, _, pmx = built
    panels = {m["name"]: m["panel"] for m in pmx["morphs"]}
    for m in REQUIRED_MORPHS:
        assert m in panels, m
    assert panels["まばたき"] == panels["ウィンク"] == panels["ウィンク右"] == pmx_writer.PANEL_EYE
    assert all(panels[v] == pmx_writer.PANEL_MOUTH for v in "あいうえお")
    assert panels["上"] == panels["困る"] == panels["怒り"] == pmx_writer.PANEL_BROW


def _morph(pmx, name):
    return next(m for m in pmx["morphs"] if m["name"] == name)


def test_morphs_move_and_stay_local(built):
    _, _, pmx = built
    P = pmx["positions"]
    eye_lo, eye_hi = avatar.EYE_Y - 0.8, avatar.EYE_Y + 0.9
    for m in pmx["morphs"]:
        assert len(m["indices"]) > 0 and np.abs(m["offsets"]).max() > 0.05, m["name"]
        assert np.abs(m["offsets"]).max() < 1.5, m["name"]
        assert np.all(np.linalg.norm(m["offsets"], axis=1) > 0), m["name"]
    for name, sides in (("まばたき", {1, -1}), ("ウィンク", {1}), ("ウィンク右", {-1})):
        p = P[_morph(pmx, name)["indices"]]
        assert np.all((p[:, 1] > eye_lo) & (p[:, 1] < eye_hi)), name
        assert np.all(np.abs(np.abs(p[:, 0]) - avatar.EYE_X) < 0.85), name
        assert set(np.sign(p[:, 0]).astype(int)) == sides, name
        assert np.all(p[:, 2] > 1.0), name          # on the face, not the back of the head
    for v in "あいうえお":
        p = P[_morph(pmx, v)["indices"]]
        assert np.all(np.abs(p[:, 0]) < 0.6), v
        assert np.all(np.abs(p[:, 1] - avatar.MOUTH_Y) < 0.4), v
    for b in ("上", "困る", "怒り"):
        p = P[_morph(pmx, b)["indices"]]
        assert np.all(p[:, 1] > avatar.EYE_Y + 0.5) and np.all(p[:, 1] < avatar.H[1] + 1.0), b
    # Blink closes: the upper lash ends below where it started.
    blink = _morph(pmx, "まばたき")
    assert np.median(blink["offsets"][:, 1]) < -0.2
    # あ opens downwards.
    a = _morph(pmx, "あ")
    assert a["offsets"][:, 1].min() < -0.4


def test_weights_and_bones_of_parts(built):
    _, _, pmx = built
    w = pmx["weights"]
    assert np.all((w >= 0) & (w <= 1))
    nb = len(pmx["bones"])
    assert np.all((pmx["bones_idx"] >= 0) & (pmx["bones_idx"] < nb))
    names = [b["name"] for b in pmx["bones"]]
    # Irises follow the eye bones; nothing else does.
    for eye in ("左目", "右目"):
        sel = (pmx["bones_idx"][:, 0] == names.index(eye))
        assert sel.sum() > 20
        assert np.all(w[sel] == 1.0)
        assert np.all(np.abs(pmx["positions"][sel, 1] - avatar.EYE_Y) < 0.6)
    # The neck blends smoothly (BDEF2 with intermediate weights).
    neck = (pmx["bones_idx"][:, 0] == names.index("首"))
    assert np.any((w[neck] > 0.1) & (w[neck] < 0.9))


def test_parts_are_closed_outward_or_facing_front():
    parts, _, _ = avatar.build_parts()
    edge_materials = {m[0] for m in avatar._MATERIALS if m[4]}
    for p in parts:
        a, b, c = (p.pos[p.faces[:, k]] for k in range(3))
        if p.material in edge_materials:
            # Closed: every edge is shared by exactly two faces, in opposite directions.
            e = np.concatenate([p.faces[:, [0, 1]], p.faces[:, [1, 2]], p.faces[:, [2, 0]]])
            fwd = {tuple(x) for x in e.tolist()}
            assert all((j, i) in fwd for i, j in fwd), p.name
            vol = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6
            assert vol > 0, p.name
        else:
            fn = np.cross(b - a, c - a)
            big = np.linalg.norm(fn, axis=1) > 1e-8
            assert np.all(fn[big, 2] > 0), p.name     # decals face the viewer (+Z)


def test_eye_rotation_keeps_iris_on_the_face(built):
    """Rotating an eye bone ±10° slides the iris across the face, above the eye white."""
    _, _, pmx = built
    head = avatar.head()
    names = [b["name"] for b in pmx["bones"]]
    bi = names.index("左目")
    c = np.array(pmx["bones"][bi]["position"])
    sel = pmx["bones_idx"][:, 0] == bi
    for axis in ("x", "y"):
        for deg in (-10, 10):
            a = np.radians(deg)
            R = (np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]) if axis == "y"
                 else np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]]))
            q = (pmx["positions"][sel] - c) @ R.T + c
            skin, _ = G.project_z(q[:, :2], head.pos, head.faces, head.nrm)
            lift = q[:, 2] - skin[:, 2]
            assert lift.min() > 0.035 and lift.max() < 0.2, (axis, deg, lift.min(), lift.max())
            moved = np.abs(q[:, :2] - pmx["positions"][sel, :2]).mean(0)
            assert moved.max() > 0.15


def test_writer_roundtrip_matches_model(built):
    _, model, pmx = built
    assert np.allclose(pmx["positions"], model.positions, atol=1e-5)
    assert np.array_equal(pmx["faces"], model.faces)
    assert np.allclose(pmx["weights"][model.weights < 1], model.weights[model.weights < 1], atol=1e-6)


def test_index_sizes_follow_counts():
    assert pmx_writer._index_size(255, True) == 1 and pmx_writer._index_size(256, True) == 2
    assert pmx_writer._index_size(65536, True) == 4
    assert pmx_writer._index_size(127, False) == 1 and pmx_writer._index_size(128, False) == 2


def _node_dump(path: Path) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (NODE_TOOLS / "node_modules" / "mmd-parser").is_dir():
        pytest.skip("tests/tools/node/node_modules missing (run `make node-tools`)")
    out = subprocess.run([node, str(NODE_TOOLS / "pmx_dump.js"), str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_mmd_parser_reads_it_back(tmp_path):
    _gen(tmp_path)
    d = _node_dump(tmp_path / "openvtuber.pmx")
    meta = d["metadata"]
    _, model = generate.build_files()
    assert meta["version"] == 2 and meta["encoding"] == 0
    assert meta["vertexCount"] == len(model.positions) and meta["faceCount"] == len(model.faces)
    assert meta["faceCount"] <= 20_000 and meta["materialCount"] <= 8
    assert meta["boneCount"] == len(model.bones) and meta["morphCount"] == len(model.morphs)
    assert meta["rigidBodyCount"] == 0 and meta["constraintCount"] == 0
    assert "MIT" in meta["comment"]
    assert d["maxWeightSumError"] < 1e-6
    assert d["maxFaceIndex"] == meta["vertexCount"] - 1
    assert d["outward"] > 0                      # CCW outward in three.js space after conversion
    bones = {b["name"]: b for b in d["bones"]}
    names = [b["name"] for b in d["bones"]]
    for b in REQUIRED_BONES:
        assert b in bones, b
    assert names[bones["頭"]["parentIndex"]] == "首"
    assert bones["左目"]["grant"] == {"parentIndex": names.index("両目"), "ratio": 1.0}
    # After mmd-parser's left→right conversion we are back in three.js space.
    assert bones["左目"]["position"][0] > 0 and bones["両目"]["position"][2] > 0
    assert np.allclose(bones["左目"]["position"], model.bones[names.index("左目")].position, atol=1e-5)
    assert d["bounds"]["max"][2] > 2.0           # the face is at +Z
    morphs = {m["name"]: m for m in d["morphs"]}
    for m in REQUIRED_MORPHS:
        assert m in morphs and morphs[m]["type"] == 1 and morphs[m]["elementCount"] > 0, m
    assert morphs["あ"]["panel"] == 3 and morphs["まばたき"]["panel"] == 2 and morphs["困る"]["panel"] == 1
    assert [f["name"] for f in d["frames"]][:2] == ["Root", "表情"]
    assert d["textures"] == ["face.png", "blush.png"]
    mats = d["materials"]
    assert all(m["toonFlag"] == 1 for m in mats)
    edge = {m["name"]: bool(m["flag"] & 0x10) for m in mats}
    assert edge["肌"] and edge["髪"] and edge["服"] and not edge["白目"] and not edge["瞳口"]


def test_project_pmx_validator_accepts_it(built):
    """The bridge's own PMX validator (protocols/pmx.py) finds every standard name it needs."""
    pmx_mod = pytest.importorskip("openvtuber.protocols.pmx")
    files, _, _ = built
    model = pmx_mod.read_pmx(files[generate.PMX_NAME])
    report = pmx_mod.standard_report(model)
    assert report["missing_required_bones"] == [] and report["missing_required_morphs"] == []
    assert report["warnings"] == [] and report["loader_problems"] == [] and report["unsafe_textures"] == []
    assert report["ok"]


def test_preview_renders_a_face(tmp_path):
    """Smoke test of the software preview: the bust shot shows skin, hair and eyes."""
    import avatar_preview
    files, _ = generate.build_files()
    pmx = pmx_writer.read_pmx(files[generate.PMX_NAME])
    img = avatar_preview.render(pmx, {k: v for k, v in files.items() if k.endswith(".png")}, size=160)
    rgb = img[..., ::-1].reshape(-1, 3).astype(int)
    skin = np.all(np.abs(rgb - [255, 224, 204]) < 30, axis=1).mean()
    hair = np.all(np.abs(rgb - [128, 79, 61]) < 30, axis=1).mean()
    assert skin > 0.08 and hair > 0.1

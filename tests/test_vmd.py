"""VMD motion files: byte layout, names, frame mapping, key reduction, bad values, and a
read-back through an independent parser (npm ``mmd-parser`` 1.0.4, the parser three.js
r171 vendors for MMDLoader) run with Node."""
from __future__ import annotations

import io
import json
import math
import shutil
import struct
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from openvtuber.protocols.pose import AvatarPose
from openvtuber.protocols.vmd import (DEFAULT_BONES, LINEAR_INTERPOLATION, encode_vmd, quat_angle_deg,
                                      to_vmd_quaternion, write_vmd)

NODE_DIR = Path(__file__).parent / "tools" / "node"
HEADER = 30 + 20
BONE_KEY, MORPH_KEY = 111, 23
TAIL = 16                       # camera, light, self-shadow, IK counts

# What MMD writes for a linear key (the same 64 bytes in files saved by MMD and by the
# tools that copy it, e.g. mmd_tools / VMDSizing's "linear" default).
MMD_LINEAR = bytes([20, 20, 0, 0, 20, 20, 20, 20, 107, 107, 107, 107, 107, 107, 107, 107,
                    20, 20, 20, 20, 20, 20, 20, 107, 107, 107, 107, 107, 107, 107, 107, 0,
                    20, 20, 20, 20, 20, 20, 107, 107, 107, 107, 107, 107, 107, 107, 0, 0,
                    20, 20, 20, 20, 20, 107, 107, 107, 107, 107, 107, 107, 107, 0, 0, 0])


def quat(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> tuple[float, float, float, float]:
    """(x, y, z, w) for intrinsic Y-X-Z degrees (three.js model space)."""
    return tuple(Rotation.from_euler("YXZ", [yaw, pitch, roll], degrees=True).as_quat())


def pose(t: float, bones: dict | None = None, morphs: dict | None = None, frame: int = 0) -> AvatarPose:
    return AvatarPose(t=t, frame=frame, found=True, bones=bones or {}, morphs=morphs or {})


def parse(data: bytes) -> dict:
    """A small reader of our own for the pure-Python tests (the Node test is the independent one)."""
    assert data[:30] == b"Vocaloid Motion Data 0002".ljust(30, b"\0")
    out = {"model": data[30:50], "bones": [], "morphs": []}
    off = HEADER
    (n,) = struct.unpack_from("<I", data, off)
    off += 4
    for _ in range(n):
        name, frame, *rest = struct.unpack_from("<15sI3f4f64s", data, off)
        out["bones"].append((name, frame, tuple(rest[:3]), tuple(rest[3:7]), rest[7]))
        off += BONE_KEY
    (m,) = struct.unpack_from("<I", data, off)
    off += 4
    for _ in range(m):
        out["morphs"].append(struct.unpack_from("<15sIf", data, off))
        off += MORPH_KEY
    assert data[off:] == bytes(TAIL)
    return out


def sjis(name: str, size: int = 15) -> bytes:
    return name.encode("cp932").ljust(size, b"\0")


# ----------------------------------------------------------------------------- layout

def test_header_counts_and_size():
    poses = [pose(i / 30, {"頭": quat(10 * i)}, {"あ": 0.1 * i}) for i in range(4)]
    data = encode_vmd(poses, model_name="テストモデル")
    assert data[:30] == b"Vocaloid Motion Data 0002\0\0\0\0\0"
    assert data[30:50] == sjis("テストモデル", 20)
    assert struct.unpack_from("<I", data, HEADER)[0] == 4
    assert struct.unpack_from("<I", data, HEADER + 4 + 4 * BONE_KEY)[0] == 4
    assert len(data) == HEADER + 4 + 4 * BONE_KEY + 4 + 4 * MORPH_KEY + TAIL


def test_bone_key_layout_and_linear_interpolation():
    q = quat(30, -40, 20)
    name, frame, position, rotation, interp = parse(encode_vmd([pose(0.0, {"首": q})]))["bones"][0]
    assert name == sjis("首") and frame == 0 and position == (0.0, 0.0, 0.0)
    assert np.allclose(rotation, to_vmd_quaternion(q), atol=1e-7)
    assert interp == MMD_LINEAR == LINEAR_INTERPOLATION
    # MMD reads curve k (X, Y, Z, rotation) at bytes 16k + 0, 4, 8, 12: all the diagonal (20, 20)-(107, 107)
    for k in range(4):
        assert interp[16 * k: 16 * k + 16: 4] == bytes([20, 20, 107, 107])
    assert interp[2:4] == b"\0\0"                            # physics flag: on, as MMD writes it


def test_morph_key_layout():
    (name, frame, weight), = parse(encode_vmd([pose(0.0, morphs={"ウィンク右": 0.25})]))["morphs"]
    assert name == sjis("ウィンク右") == b"\x83E\x83B\x83\x93\x83N\x89E" + bytes(5)
    assert (frame, weight) == (0, 0.25)


def test_to_vmd_negates_x_and_y():
    assert to_vmd_quaternion((0.1, 0.2, 0.3, 0.9)) == (-0.1, -0.2, 0.3, 0.9)


def test_writes_to_paths_and_file_objects(tmp_path):
    poses = [pose(i / 30, {"頭": quat(i)}, {"まばたき": 0.5}) for i in range(3)]
    stats = write_vmd(tmp_path / "a.vmd", poses)
    buf = io.BytesIO()
    stats2 = write_vmd(buf, poses)
    assert (tmp_path / "a.vmd").read_bytes() == buf.getvalue() == encode_vmd(poses)
    assert stats == stats2 and stats.bytes == len(buf.getvalue())
    assert (stats.poses, stats.frames, stats.bone_keys, stats.morph_keys, stats.skipped) == (3, 3, 3, 3, 0)


# ----------------------------------------------------------------------------- names

def test_default_tracks_are_the_standard_names_present():
    poses = [pose(0.0, {"頭": quat(), "右目": quat(), "左足": quat()}, {"あ": 0.1, "にこり": 0.2, "独自": 0.3})]
    out = parse(encode_vmd(poses))
    assert [b[0] for b in out["bones"]] == [sjis("頭"), sjis("右目")]      # DEFAULT_BONES order, 左足 not standard
    assert [m[0] for m in out["morphs"]] == [sjis("あ"), sjis("にこり")]
    out = parse(encode_vmd(poses, bones=["左足"], morphs=["独自", "い"]))
    assert [b[0] for b in out["bones"]] == [sjis("左足")]
    assert [m[0] for m in out["morphs"]] == [sjis("独自")]
    assert DEFAULT_BONES == ("上半身", "首", "頭", "両目", "左目", "右目")


def test_long_names_are_cut_to_the_field():
    long_bone = "左ダミー親指先１"               # 16 bytes in Shift-JIS
    long_morph = "あいうえおかきくけこ"          # 20 bytes
    data = encode_vmd([pose(0.0, {long_bone: quat()}, {long_morph: 1.0})], model_name="モデル名がとても長いモデルです",
                      bones=[long_bone], morphs=[long_morph])
    out = parse(data)
    assert out["bones"][0][0] == long_bone.encode("cp932")[:15]
    assert out["morphs"][0][0] == long_morph.encode("cp932")[:15]
    assert out["model"] == "モデル名がとても長いモデルです".encode("cp932")[:20]


@pytest.mark.parametrize("kwargs", [{"bones": ["頭😀"]}, {"morphs": ["한"]}, {"model_name": "Ωmega ☃"}])
def test_names_shift_jis_cannot_hold_raise_one_line(kwargs):
    with pytest.raises(ValueError) as e:
        encode_vmd([pose(0.0, {"頭": quat()})], **kwargs)
    assert "\n" not in str(e.value) and "Shift-JIS" in str(e.value)


@pytest.mark.parametrize("kwargs", [{"fps": 0}, {"fps": float("nan")}, {"reduce": -1.0}, {"reduce": float("inf")},
                                    {"reduce": (0.5,)}, {"reduce": (0.5, "x")}])
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError):
        encode_vmd([pose(0.0, {"頭": quat()})], **kwargs)


# ----------------------------------------------------------------------------- frames

def _frames_for(src_fps: int, n: int, t0: float = 0.0) -> tuple[list[int], list[float]]:
    poses = [pose(t0 + i / src_fps, morphs={"あ": i / 1000}) for i in range(n)]
    return [(f, w) for _, f, w in parse(encode_vmd(poses))["morphs"]]


@pytest.mark.parametrize("src_fps", [24, 25, 30])
def test_slower_sources_land_on_rounded_30fps_frames(src_fps):
    keys = _frames_for(src_fps, 3 * src_fps, t0=12.345)       # relative to the first pose
    # round(i × 30 / fps), halves up, computed exactly
    expected = [math.floor(Fraction(i * 30, src_fps) + Fraction(1, 2)) for i in range(3 * src_fps)]
    assert [f for f, _ in keys] == expected
    assert len(set(expected)) == len(expected)                 # nothing lost
    if src_fps == 24:
        assert expected[:6] == [0, 1, 3, 4, 5, 6]              # 2/24 s = frame 2.5 → 3


def test_60fps_source_keeps_the_later_pose_of_each_frame():
    poses = [pose(i / 60, morphs={"あ": i / 1000}) for i in range(120)]
    stats = write_vmd(io.BytesIO(), poses)
    keys = [(f, w) for _, f, w in parse(encode_vmd(poses))["morphs"]]
    assert [f for f, _ in keys] == list(range(61))
    # frame k holds pose 2k (t = k/30 exactly), which came after pose 2k − 1 (frame k − ½ → k)
    assert np.allclose([w for _, w in keys], [2 * k / 1000 if 2 * k < 120 else 119 / 1000 for k in range(61)],
                       atol=1e-7)
    assert (stats.poses, stats.frames, stats.replaced) == (120, 61, 59)


def test_same_frame_keeps_later_pose():
    poses = [pose(0.0, {"頭": quat(10)}), pose(0.01, {"頭": quat(20)}), pose(1 / 30, {"頭": quat(30)})]
    bones = parse(encode_vmd(poses))["bones"]
    assert [b[1] for b in bones] == [0, 1]
    assert quat_angle_deg(np.array(bones[0][3]), np.array(to_vmd_quaternion(quat(20))))[0] < 1e-4


# ----------------------------------------------------------------------------- bad values

def test_nonfinite_values_are_skipped_and_counted():
    nan, inf = float("nan"), float("inf")
    poses = [pose(i / 30, {"頭": quat(i), "首": quat(-i)}, {"あ": 0.5, "い": 0.25}) for i in range(6)]
    poses[1].bones["頭"] = (nan, 0.0, 0.0, 1.0)
    poses[2].morphs["あ"] = inf
    poses[3].t = nan                                   # the whole pose goes
    poses[4].bones["首"] = (0.0, 0.0, 0.0, 0.0)         # not a rotation
    poses[5].morphs["い"] = "loud"
    stats = write_vmd(io.BytesIO(), poses)
    assert (stats.nonfinite, stats.invalid, stats.skipped) == (3, 2, 5)
    out = parse(encode_vmd(poses))
    frames = {}
    for name, f, *_ in out["bones"] + out["morphs"]:
        frames.setdefault(name, []).append(f)
    assert frames[sjis("頭")] == [0, 2, 4, 5]
    assert frames[sjis("首")] == [0, 1, 2, 5]
    assert frames[sjis("あ")] == [0, 1, 4, 5]
    assert frames[sjis("い")] == [0, 1, 2, 4]
    assert stats.bone_keys == 8 and stats.morph_keys == 8


def test_quaternions_are_normalised_and_kept_in_one_hemisphere():
    qs = [quat(20 * i, 5 * i) for i in range(6)]
    flipped = [tuple(-c for c in q) if i % 2 else tuple(2 * c for c in q) for i, q in enumerate(qs)]
    bones = parse(encode_vmd([pose(i / 30, {"頭": q}) for i, q in enumerate(flipped)]))["bones"]
    rot = np.array([b[3] for b in bones])
    assert np.allclose(np.linalg.norm(rot, axis=1), 1.0, atol=1e-6)
    assert np.all(np.sum(rot[1:] * rot[:-1], axis=1) > 0)
    assert np.all(quat_angle_deg(rot, np.array([to_vmd_quaternion(q) for q in qs])) < 1e-4)


# ----------------------------------------------------------------------------- reduction

def test_reduce_constant_tracks_to_two_keys():
    poses = [pose(i / 30, {"頭": quat(15, 30, -5)}, {"あ": 0.4}) for i in range(90)]
    stats = write_vmd(io.BytesIO(), poses, reduce=0.0)
    out = parse(encode_vmd(poses, reduce=0.0))
    assert [b[1] for b in out["bones"]] == [0, 89] and [m[1] for m in out["morphs"]] == [0, 89]
    assert stats.reduced == 2 * 88 and stats.bone_keys == stats.morph_keys == 2


def test_reduce_keeps_first_last_and_reproduces_dropped_keys():
    rng = np.random.default_rng(7)
    n = 150
    t = np.arange(n) / 30
    yaw = 40 * np.sin(2 * np.pi * 0.4 * t) + rng.normal(0, 0.05, n)
    pitch = 25 * np.sin(2 * np.pi * 0.25 * t + 1)
    mouth = np.clip(0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t), 0, 1)
    mouth[60:70] = 0.0                                                   # a flat stretch
    poses = [pose(t[i], {"頭": quat(yaw[i], pitch[i], 10)}, {"あ": mouth[i]}) for i in range(n)]
    eps_deg, eps_w = 0.5, 0.02
    out = parse(encode_vmd(poses, reduce=(eps_deg, eps_w)))
    bf = np.array([b[1] for b in out["bones"]])
    assert bf[0] == 0 and bf[-1] == n - 1 and 5 < len(bf) < n / 2
    # every dropped key is within eps of slerp between the kept ones (scipy's Slerp, in three.js space)
    kept = Rotation.from_quat([to_vmd_quaternion(b[3]) for b in out["bones"]])
    recon = Slerp(bf, kept)(np.arange(n)).as_quat()
    truth = np.array([p.bones["頭"] for p in poses])
    assert quat_angle_deg(recon, truth).max() <= eps_deg + 1e-3
    # a pair sets the two tolerances apart; one number applies to both
    assert out["bones"] == parse(encode_vmd(poses, reduce=eps_deg))["bones"]
    assert out["morphs"] == parse(encode_vmd(poses, reduce=eps_w))["morphs"]
    mf = np.array([m[1] for m in out["morphs"]])
    assert mf[0] == 0 and mf[-1] == n - 1 and len(mf) < n / 2
    assert np.abs(np.interp(np.arange(n), mf, [m[2] for m in out["morphs"]]) - mouth).max() <= eps_w + 1e-6
    assert not any(61 <= f <= 68 for f in mf)                            # the inside of the flat stretch went


def test_reduce_drops_uniform_rotation_and_linear_ramp():
    poses = [pose(i / 30, {"首": quat(yaw=2 * i)}, {"い": i / 100}) for i in range(40)]
    out = parse(encode_vmd(poses, reduce=1e-3))
    assert [b[1] for b in out["bones"]] == [0, 39] and [m[1] for m in out["morphs"]] == [0, 39]


# ----------------------------------------------------------------------------- independent read-back

def _node_dump(path: Path) -> dict:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH (CI installs it with tests/tools/node)")
    if not (NODE_DIR / "node_modules" / "mmd-parser").is_dir():
        pytest.skip("tests/tools/node/node_modules is missing: run `npm ci --prefix tests/tools/node`")
    res = subprocess.run(["node", str(NODE_DIR / "vmd_dump.js"), str(path)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _performance() -> list[AvatarPose]:
    """Two seconds at 24 fps: big head/neck turns on all axes, eyes, body, every standard morph."""
    poses = []
    for i in range(48):
        s = i / 24
        a, b = math.sin(2 * math.pi * 0.5 * s), math.cos(2 * math.pi * 0.3 * s)
        poses.append(AvatarPose(
            t=100.0 + s, frame=i, found=True,
            bones={"頭": quat(45 * a, 35 * b, 30 * a * b), "首": quat(-30 * b, 20 * a, -35 * a),
                   "上半身": quat(10 * a, 5, -8 * b), "両目": quat(12 * b, -9 * a),
                   "左目": quat(5 * a), "右目": quat(-5 * a, 3 * b)},
            morphs={"まばたき": (i % 10) / 9, "ウィンク": 0.3 * abs(a), "ウィンク右": 0.2 * abs(b), "あ": abs(a),
                    "い": abs(b), "う": 0.5 * abs(a * b), "え": 0.1, "お": (i % 7) / 6, "にこり": 0.8 * abs(b),
                    "上": max(a, 0.0), "下": max(-a, 0.0)}))
    return poses


def test_mmd_parser_reads_back_frames_rotations_and_weights(tmp_path):
    poses = _performance()
    path = tmp_path / "performance.vmd"
    stats = write_vmd(path, poses, model_name="初音ミク")
    dump = _node_dump(path)
    right, raw = dump["right"], dump["raw"]
    meta = right["metadata"]
    assert meta["magic"] == "Vocaloid Motion Data 0002" and meta["name"] == "初音ミク"
    assert meta["coordinateSystem"] == "right" and raw["metadata"]["coordinateSystem"] == "left"
    assert (meta["motionCount"], meta["morphCount"], meta["cameraCount"]) == (stats.bone_keys, stats.morph_keys, 0)
    assert stats.bone_keys == 6 * 48 and stats.morph_keys == 11 * 48

    expected_frames = [math.floor(Fraction(i * 30, 24) + Fraction(1, 2)) for i in range(48)]
    motions: dict[str, list[dict]] = {}
    for m in right["motions"]:
        motions.setdefault(m["boneName"], []).append(m)
    assert sorted(motions) == sorted(poses[0].bones)
    for name, keys in motions.items():
        assert [k["frameNum"] for k in keys] == expected_frames, name
        got = np.array([k["rotation"] for k in keys])
        want = np.array([p.bones[name] for p in poses])
        sign = np.sign(np.sum(got * want, axis=1))[:, None]
        assert np.abs(got - sign * want).max() < 1e-5, name              # what MMDLoader's bones receive
        for k in keys:
            assert k["position"] == [0, 0, 0] and bytes(k["interpolation"]) == MMD_LINEAR
    # the stored values are MMD's left-handed ones: x and y mirrored
    for m_raw, m_right in zip(raw["motions"], right["motions"]):
        x, y, z, w = m_right["rotation"]
        assert m_raw["rotation"] == [-x, -y, z, w]

    morphs: dict[str, list[dict]] = {}
    for m in right["morphs"]:
        morphs.setdefault(m["morphName"], []).append(m)
    assert sorted(morphs) == sorted(poses[0].morphs)
    for name, keys in morphs.items():
        assert [k["frameNum"] for k in keys] == expected_frames, name
        assert np.abs(np.array([k["weight"] for k in keys]) - [p.morphs[name] for p in poses]).max() < 1e-6, name


def test_mmd_parser_reads_back_a_reduced_file(tmp_path):
    poses = _performance()
    path = tmp_path / "reduced.vmd"
    stats = write_vmd(path, poses, reduce=(0.5, 0.01))
    right = _node_dump(path)["right"]
    assert 0 < stats.reduced and len(right["motions"]) == stats.bone_keys and len(right["morphs"]) == stats.morph_keys
    frame_pose = {math.floor(Fraction(i * 30, 24) + Fraction(1, 2)): p for i, p in enumerate(poses)}
    last = max(frame_pose)
    for name in poses[0].bones:
        keys = [m for m in right["motions"] if m["boneName"] == name]
        frames = [k["frameNum"] for k in keys]
        assert frames[0] == 0 and frames[-1] == last and frames == sorted(frames) and len(frames) < len(poses)
        for k in keys:                                          # the kept keys are the poses of their frames
            got, want = np.array(k["rotation"]), np.array(frame_pose[k["frameNum"]].bones[name])
            assert min(np.abs(got - want).max(), np.abs(got + want).max()) < 1e-5


def test_export_vmd_command_from_a_recording(tmp_path):
    rec, out = tmp_path / "take.jsonl", tmp_path / "take.vmd"
    cli = [sys.executable, "-m", "openvtuber.bridge.cli"]
    proc = subprocess.run([*cli, "track", "demo", "--no-realtime", "--frames", "60", "--jsonl", str(rec)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([*cli, "export-vmd", str(rec), str(out), "--no-mirror"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "60 frames" in proc.stderr, proc.stderr
    right = _node_dump(out)["right"]
    heads = sorted((m["frameNum"], m["rotation"]) for m in right["motions"] if m["boneName"] == "頭")
    assert [f for f, _ in heads] == list(range(60))
    records = [json.loads(line) for line in rec.read_text().splitlines()]
    # no mirror: the head bone's yaw (about +Y in three.js space) follows the recorded yaw
    yaw = [math.degrees(2 * math.atan2(q[1], q[3])) for _, q in heads]
    assert np.corrcoef(yaw, [r["yaw"] for r in records])[0, 1] > 0.99
    blinks = [m for m in right["morphs"] if m["morphName"] == "まばたき"]
    assert len(blinks) == 60 and all(0.0 <= m["weight"] <= 1.0 for m in blinks)

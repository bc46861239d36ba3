"""The rig and the VMC output, checked from the spec with a decoder we did not write
(python-osc's), on a Unity humanoid facing +Z."""
from __future__ import annotations

import dataclasses
import math
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_server import ThreadingOSCUDPServer

from openvtuber.bridge.rig import RigOptions, rig
from openvtuber.protocols.pose import BLINK, HEAD, LEFT_EYE, NECK, RIGHT_EYE, UPPER_BODY, WINK_LEFT, WINK_RIGHT
from openvtuber.protocols.vmc_encode import MAX_BUNDLE, encode_frame
from openvtuber.tracking.sources.demo import demo_pose
from openvtuber.tracking.state import FaceState

CLI = [sys.executable, "-m", "openvtuber.bridge.cli"]
VRM0 = {"Blink", "Blink_L", "Blink_R", "A", "I", "U", "E", "O", "Joy", "LookUp", "LookDown", "LookLeft", "LookRight"}


def face(**kw) -> FaceState:
    st = FaceState(t=1.0, frame=30, found=True, valid=True)
    for k, v in kw.items():
        setattr(st, k, v)
    return st


def rotate(q, v):
    """Standard quaternion rotation; Unity's ``Quaternion * Vector3`` is the same algebra."""
    x, y, z, w = q
    u = np.array([x, y, z])
    v = np.asarray(v, dtype=float)
    return 2 * (u @ v) * u + (w * w - u @ u) * v + 2 * w * np.cross(u, v)


def decode(dgram: bytes) -> list[OscMessage]:
    out = []
    for item in OscBundle(dgram):
        out.extend(decode(item.dgram) if isinstance(item, OscBundle) else [item])
    return out


def messages(state: FaceState, mirror: bool, kind: str = "vrm0") -> dict:
    pose = rig(state, RigOptions(mirror=mirror))
    frame = encode_frame(pose, 1.0, kind)
    bones, blends = {}, {}
    for dgram in frame.datagrams:
        assert len(dgram) <= MAX_BUNDLE
        for m in decode(dgram):
            if m.address == "/VMC/Ext/Bone/Pos":
                bones[m.params[0]] = m.params[1:]
            elif m.address == "/VMC/Ext/Blend/Val":
                blends[m.params[0]] = m.params[1]
    return {"bones": bones, "blends": blends, "datagrams": frame.datagrams}


def head_world(bones: dict) -> tuple:
    """Spine·Chest·Neck·Head composed (Unity frame)."""
    def mul(a, b):
        ax, ay, az, aw = a
        bx, by, bz, bw = b
        return (aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz)
    q = (0.0, 0.0, 0.0, 1.0)
    for name in ("Spine", "Chest", "Neck", "Head"):
        q = mul(q, tuple(bones[name][3:7]))
    return q


UNITY_FORWARD, UNITY_UP, UNITY_RIGHT = np.array([0, 0, 1.0]), np.array([0, 1.0, 0]), np.array([1.0, 0, 0])


@pytest.mark.parametrize("mirror", [False, True])
def test_head_turns_like_the_spec_says(mirror):
    # the person turns to their own left: the avatar to its own left (-X in Unity) without mirror
    fwd = rotate(head_world(messages(face(yaw=30.0), mirror)["bones"]), UNITY_FORWARD)
    assert (fwd @ UNITY_RIGHT < -0.3) if not mirror else (fwd @ UNITY_RIGHT > 0.3)
    # looking up is looking up either way
    fwd = rotate(head_world(messages(face(pitch=20.0), mirror)["bones"]), UNITY_FORWARD)
    assert fwd @ UNITY_UP > 0.25
    # head top tilts to the person's left shoulder: to the avatar's left (-X) without mirror
    up = rotate(head_world(messages(face(roll=20.0), mirror)["bones"]), UNITY_UP)
    assert (up @ UNITY_RIGHT < -0.2) if not mirror else (up @ UNITY_RIGHT > 0.2)


@pytest.mark.parametrize("mirror", [False, True])
def test_eyes_and_winks_follow_the_mirror(mirror):
    m = messages(face(gaze_left_yaw=15.0, gaze_right_yaw=15.0, eye_open_left=0.0, eye_open_right=1.0), mirror)
    for eye in ("LeftEye", "RightEye"):
        look = rotate(m["bones"][eye][3:7], UNITY_FORWARD)
        assert (look @ UNITY_RIGHT < -0.1) if not mirror else (look @ UNITY_RIGHT > 0.1)
    # the person's left eye is shut: the avatar's left (no mirror) or right (mirror) closes
    assert m["blends"]["Blink"] == 0.0
    assert (m["blends"]["Blink_L"], m["blends"]["Blink_R"]) == ((1.0, 0.0) if not mirror else (0.0, 1.0))
    assert m["blends"]["LookLeft" if not mirror else "LookRight"] > 0.5


def test_blink_is_one_with_both_eyes_closed():
    m = messages(face(eye_open_left=0.0, eye_open_right=0.0), mirror=True)
    assert m["blends"]["Blink"] == 1.0 and m["blends"]["Blink_L"] == 0.0 and m["blends"]["Blink_R"] == 0.0


def test_rig_splits_the_head_turn_along_the_chain():
    pose = rig(face(yaw=40.0), RigOptions(mirror=False))
    ang = {b: math.degrees(2 * math.atan2(pose.bones[b][1], pose.bones[b][3])) for b in (UPPER_BODY, NECK, HEAD)}
    assert ang[UPPER_BODY] == pytest.approx(6.0)
    assert ang[NECK] == pytest.approx(13.6) and ang[HEAD] == pytest.approx(20.4)
    assert sum(ang.values()) == pytest.approx(40.0)


def test_invalid_state_is_a_neutral_pose():
    pose = rig(FaceState(t=0.0, frame=0), RigOptions())
    assert all(q == (0.0, 0.0, 0.0, 1.0) for q in pose.bones.values())
    assert all(w == 0.0 for w in pose.morphs.values())
    assert {BLINK, WINK_LEFT, WINK_RIGHT} <= set(pose.morphs) and {HEAD, LEFT_EYE, RIGHT_EYE} <= set(pose.bones)


def test_vrm1_and_arkit_sets():
    vrm1 = messages(face(), True, "vrm1")["blends"]
    assert {"blink", "blinkLeft", "aa", "oh", "happy", "lookLeft"} <= set(vrm1) and "Blink" not in vrm1
    ark = messages(face(eye_open_left=0.0, smile=0.7), False, "arkit")
    assert len(ark["datagrams"]) > 1                               # split to stay under 1400 bytes
    assert ark["blends"]["eyeBlinkLeft"] == 1.0 and ark["blends"]["mouthSmileLeft"] == pytest.approx(0.7)
    assert ark["blends"]["cheekPuff"] == 0.0 and len([k for k in ark["blends"] if k[0].islower()]) == 52
    last = decode(ark["datagrams"][-1])
    assert last[-1].address == "/VMC/Ext/Blend/Apply"


@pytest.mark.parametrize("kind", ["vrm0", "vrm1", "arkit"])
def test_frames_are_the_bytes_python_osc_builds(kind):
    """The encoder writes bytes itself (python-osc's builders parse what they build, twice);
    every bundle must be exactly what OscMessageBuilder and OscBundleBuilder make of the
    same messages, forwarded bones, blendshapes and root included."""
    pose = rig(face(eye_open_left=0.0, smile=0.4, mouth_open=0.6), RigOptions())
    pose = dataclasses.replace(pose, vmc_bones={"LeftHand": ((0.1, 0.2, 0.3), (0.0, 0.0, 0.6, 0.8))},
                               vmc_blends={"Fun": 0.25}, vmc_root=((1.0, 0.0, -2.0), (0.0, 0.38268343, 0.0, 0.92387953)))
    datagrams = encode_frame(pose, 12.5, kind).datagrams
    assert (len(datagrams) > 1) == (kind == "arkit")
    for dgram in datagrams:
        bundle = OscBundleBuilder(IMMEDIATELY)
        for m in decode(dgram):
            b = OscMessageBuilder(m.address)
            for p in m.params:
                b.add_arg(p)
            bundle.add_content(b.build())
        assert bundle.build().dgram == dgram
    got = [m for d in datagrams for m in decode(d)]
    assert got[1].params == [12.5] and got[2].params[0] == "root" and got[-1].address == "/VMC/Ext/Blend/Apply"
    assert ["LeftHand", 0.1, 0.2, 0.3, 0.0, 0.0, 0.6, 0.8] in [pytest.approx(m.params) for m in got]
    assert any(m.params == ["Fun", 0.25] for m in got)


def test_run_demo_sends_vmc_that_follows_the_ground_truth():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    port = sock.getsockname()[1]
    proc = subprocess.Popen([*CLI, "run", "--source", "demo", "--frames", "300", "--vmc", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dgrams = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            dgrams.append(sock.recv(65536))
        except socket.timeout:
            if proc.poll() is not None:
                break
    sock.close()
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert len(dgrams) >= 295
    times, yaw_sent = [], []
    for d in dgrams:
        assert len(d) <= 1400
        msgs = decode(d)
        addrs = [m.address for m in msgs]
        bones = {m.params[0]: m.params for m in msgs if m.address == "/VMC/Ext/Bone/Pos"}
        blends = {m.params[0] for m in msgs if m.address == "/VMC/Ext/Blend/Val"}
        assert "/VMC/Ext/OK" in addrs and "/VMC/Ext/T" in addrs and addrs[-1] == "/VMC/Ext/Blend/Apply"
        assert {"Head", "Neck", "LeftEye", "RightEye"} <= set(bones) and VRM0 <= blends
        for b in bones.values():
            assert abs(math.sqrt(sum(v * v for v in b[4:8])) - 1.0) < 1e-5
        times.append(next(m.params[0] for m in msgs if m.address == "/VMC/Ext/T"))
        fwd = rotate(head_world({k: v[1:] for k, v in bones.items()}), UNITY_FORWARD)
        yaw_sent.append(math.degrees(math.atan2(fwd[0], fwd[2])))   # > 0: toward the avatar's right
    assert all(b > a for a, b in zip(times, times[1:]))
    truth = [demo_pose(t).yaw for t in times]
    # mirror is on by default: the person turning left turns the avatar to its right
    assert np.corrcoef(truth, yaw_sent)[0, 1] >= 0.95


@pytest.mark.parametrize("vmc,needle", [("127.0.0.1:notaport", "must be a number"),
                                        ("127.0.0.1:70000", "outside"),
                                        ("no-such-host.invalid:39539", "cannot resolve")])
def test_bad_vmc_target_is_one_line(vmc, needle):
    proc = subprocess.run([*CLI, "run", "--source", "demo", "--frames", "5", "--vmc", vmc],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr


def test_vmc_is_sent_on_the_tracker_thread_and_slow_outputs_are_not():
    """The hub calls an ``inline`` output (VMC: a non-blocking UDP send) from publish() itself;
    any other output gets its own thread and drop-oldest queue, so a stuck one costs nothing."""
    from openvtuber.bridge.outputs import OutputHub
    from openvtuber.bridge.vmc_out import VmcSender
    from openvtuber.protocols.pose import AvatarPose

    class Stuck:
        name = "stuck"

        def __init__(self):
            self.release = threading.Event()

        def send(self, pose):
            self.release.wait(5)

        def status(self):
            return "stuck"

        def close(self):
            pass

    class Failing:
        name = "failing"
        inline = True

        def send(self, pose):
            raise OSError("boom")

        def status(self):
            return "failing"

        def close(self):
            pass

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2)
    hub = OutputHub()
    vmc = VmcSender("127.0.0.1", rx.getsockname()[1])
    stuck = Stuck()
    for out in (stuck, Failing(), vmc):
        hub.add(out)
    try:
        t0 = time.perf_counter()
        for i in range(20):
            hub.publish(AvatarPose(t=i / 30, frame=i, found=True))
        assert time.perf_counter() - t0 < 1.0                 # the stuck output held nothing up
        assert vmc.frames == 20                              # sent before publish() returned
        assert rx.recv(65536).startswith(b"#bundle")
        assert "(20 errors: OSError: boom)" in hub.status() and "dropped" in hub.status()
    finally:
        stuck.release.set()
        hub.close(timeout=0.5)
        rx.close()


def test_inline_outputs_send_before_queued_ones_are_handed_the_pose():
    """publish() hands a pose to queued outputs (waking their threads) only after the inline
    sends, whatever order the outputs were added in: the VMC send waits for nobody."""
    from openvtuber.bridge.outputs import OutputHub
    from openvtuber.protocols.pose import AvatarPose

    log: list[str] = []

    class Out:
        def __init__(self, name, inline):
            self.name, self.inline = name, inline

        def send(self, pose):
            log.append(f"send {self.name}")

        def status(self):
            return self.name

        def close(self):
            pass

    hub = OutputHub()
    hub.add(Out("page", False))
    hub.add(Out("vmc", True))
    queued = hub._queued[0].queue
    put = queued.put
    queued.put = lambda pose: (log.append("put page"), put(pose))
    try:
        hub.publish(AvatarPose(t=0.0, frame=0, found=True))
        assert log[:2] == ["send vmc", "put page"]
        assert hub.status() == "page | vmc"              # the status line keeps the order added
    finally:
        hub.close(timeout=0.5)

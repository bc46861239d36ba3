"""VMC input: the decoder against hostile bytes, the receiver over real UDP, the merge rules,
and a 100,000-packet fuzz run (in process, then at a live receiver on 127.0.0.1).

Valid packets are built with python-osc's builders (a library we did not write), hostile
ones by hand."""
from __future__ import annotations

import errno
import functools
import math
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from openvtuber.bridge.vmc_in import (ARKIT_FACE, FACE_BONES, SPINE_CHAIN, VRM0_FACE, VRM1_FACE, VmcBindError,
                                      VmcReceiver, VmcSnapshot, spine_from_vmc, is_face_blend, merge)
from openvtuber.protocols import vmc_decode as vd
from openvtuber.protocols.pose import HEAD, AvatarPose
from openvtuber.protocols.vmc_decode import (AVAILABLE, BLEND_APPLY, BLEND_VAL, BONE_POS, MAX_DEPTH, ROOT_POS, TIME,
                                             Available, BlendApply, BlendValue, BonePose, DecodeStats, RootPose,
                                             SenderTime, decode_packet)

CLI = [sys.executable, "-m", "openvtuber.bridge.cli"]
UDP_MAX = 65_507            # the largest UDP payload IPv4 can carry


# --------------------------------------------------------------------------- builders

def msg(address: str, *args: object) -> OscMessage:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build()


def bundle(*contents):
    b = OscBundleBuilder(IMMEDIATELY)
    for c in contents:
        b.add_content(c)
    return b.build()


def bone(name: str, pos=(0.0, 0.1, 0.0), rot=(0.0, 0.0, 0.0, 1.0)) -> OscMessage:
    return msg(BONE_POS, name, *map(float, pos), *map(float, rot))


def blend(name: str, v: float) -> OscMessage:
    return msg(BLEND_VAL, name, float(v))


def osc_str(b: bytes) -> bytes:
    return b + b"\x00" * (4 - len(b) % 4)


def raw_msg(address: bytes, tags: bytes | None, payload: bytes = b"") -> bytes:
    """An OSC message by hand; ``tags`` without the comma (None: no type tag string)."""
    return osc_str(address) + (b"" if tags is None else osc_str(b"," + tags)) + payload


def raw_bundle(*elements: bytes, sizes: list[int] | None = None) -> bytes:
    out = b"#bundle\x00" + b"\x00" * 7 + b"\x01"
    for i, e in enumerate(elements):
        out += struct.pack(">i", len(e) if sizes is None else sizes[i]) + e
    return out


def nested(depth: int, inner: bytes) -> bytes:
    """``inner`` wrapped in ``depth`` bundles (built iteratively: no recursion anywhere)."""
    for _ in range(depth):
        inner = raw_bundle(inner)
    return inner


def f32(x: float) -> float:
    return struct.unpack(">f", struct.pack(">f", x))[0]


# --------------------------------------------------------------------------- decoder: valid input

def test_valid_messages_decode_like_python_osc_parses_them():
    msgs = [msg(AVAILABLE, 1), msg(AVAILABLE, 1, 3, 0), msg(AVAILABLE, 0, 2, 1, 1),
            msg(TIME, 12.25),
            msg(ROOT_POS, "root", 0.5, 0.0, -0.25, 0.0, 0.0, 0.0, 1.0),
            msg(ROOT_POS, "root", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.5, 1.5, 1.5, 0.1, 0.2, 0.3),
            bone("LeftHand", (0.1, -0.2, 0.3), (0.0, 0.7071068, 0.0, 0.7071068)),
            blend("Joy", 0.75), blend("眉上げ", 0.5), msg(BLEND_APPLY)]
    r = decode_packet(bundle(*msgs).dgram)
    assert r.ok and r.unknown == [] and len(r.messages) == len(msgs)
    a1, a3, a4, t, root8, root14, b, j, jp, ap = r.messages
    assert a1 == Available(True) and a3 == Available(True, 3, 0) and a4 == Available(False, 2, 1, 1)
    assert t == SenderTime(12.25)
    assert root8 == RootPose("root", (0.5, 0.0, -0.25), (0.0, 0.0, 0.0, 1.0))
    assert root14.scale == (1.5, 1.5, 1.5) and root14.offset == pytest.approx((0.1, 0.2, 0.3))
    assert b.name == "LeftHand" and b.pos == pytest.approx((0.1, -0.2, 0.3))
    assert j == BlendValue("Joy", 0.75) and jp == BlendValue("眉上げ", 0.5) and ap == BlendApply()
    # the same numbers python-osc reads from each message (float32 on the wire)
    for m, d in zip(msgs[4:9], [root8, root14, b, j, jp]):
        params = m.params
        ours = [d.name, *d.pos, *d.rot] if hasattr(d, "rot") else [d.name, d.value]
        if isinstance(d, RootPose) and d.scale:
            ours += [*d.scale, *d.offset]
        assert ours[0] == params[0] and ours[1:] == pytest.approx(params[1:], abs=1e-7)


def test_a_lone_message_and_an_apply_with_an_empty_type_tag():
    assert decode_packet(bone("Hips").dgram).messages == [BonePose("Hips", (0.0, f32(0.1), 0.0), (0, 0, 0, 1.0))]
    assert decode_packet(raw_msg(BLEND_APPLY.encode(), None)).messages == [BlendApply()]
    assert decode_packet(raw_msg(BLEND_APPLY.encode(), b"")).messages == [BlendApply()]


def test_nested_bundles_keep_wire_order():
    inner1 = bundle(bone("Hips"), blend("A", 1.0))
    inner2 = bundle(bundle(blend("Fun", 0.5)), msg(BLEND_APPLY))
    r = decode_packet(bundle(bone("Spine"), inner1, inner2, msg(TIME, 1.0)).dgram)
    assert r.ok
    kinds = [type(m).__name__ + getattr(m, "name", "") for m in r.messages]
    assert kinds == ["BonePoseSpine", "BonePoseHips", "BlendValueA", "BlendValueFun", "BlendApply", "SenderTime"]


def test_nesting_up_to_the_limit_and_no_further():
    one = bone("Hips").dgram
    ok = decode_packet(nested(MAX_DEPTH, one))
    assert ok.ok and [m.name for m in ok.messages] == ["Hips"]
    assert decode_packet(nested(MAX_DEPTH + 1, one)).packet_error == vd.TOO_DEEP
    # 3,000 levels (60 KB): python-osc would recurse; ours is iterative and stops at the limit
    deep = nested(3000, one)
    assert len(deep) < vd.MAX_PACKET and decode_packet(deep).packet_error == vd.TOO_DEEP


def test_empty_bundle_and_empty_elements_are_legal():
    r = decode_packet(raw_bundle())
    assert r.ok and r.messages == []
    r = decode_packet(raw_bundle(b"", bone("Hips").dgram))
    assert r.ok and len(r.messages) == 1


def test_unit_quaternions_are_kept_others_normalised():
    q = (0.0, 0.0, 0.38268343, 0.9238795)
    assert decode_packet(bone("Hips", rot=q).dgram).messages[0].rot == tuple(f32(v) for v in q)
    rot = decode_packet(bone("Hips", rot=(0.0, 0.0, 0.0, 2.0)).dgram).messages[0].rot
    assert rot == (0.0, 0.0, 0.0, 1.0)


def test_our_own_encoder_output_decodes_cleanly():
    from openvtuber.protocols.vmc_encode import encode_frame

    pose = AvatarPose(t=1.0, frame=1, found=True, bones={HEAD: (0.0, 0.1, 0.0, 0.99498744)}, morphs={})
    for kind in ("vrm0", "vrm1", "arkit"):
        stats = DecodeStats()
        for d in encode_frame(pose, 1.0, kind).datagrams:
            r = decode_packet(d)
            stats.add(r)
            assert r.ok and not r.unknown, (kind, r)
        assert stats.messages > 10


# --------------------------------------------------------------------------- decoder: bad input

def reasons(data: bytes) -> list[str]:
    r = decode_packet(data)
    return ([r.packet_error] if r.packet_error else []) + r.message_errors


@pytest.mark.parametrize("data,reason", [
    (b"", vd.NOT_OSC),
    (b"hello world!", vd.NOT_OSC),
    (b"\x00\x00\x00\x00", vd.NOT_OSC),
    (b"#bundle\x00\x00\x00", vd.BAD_BUNDLE),                                   # short time tag
    (raw_bundle(b"/a\x00\x00", sizes=[-4]), vd.BAD_BUNDLE),                   # python-osc loops forever here
    (raw_bundle(b"/a\x00\x00", sizes=[6]), vd.BAD_BUNDLE),                    # not a multiple of 4
    (raw_bundle(b"/a\x00\x00", sizes=[400]), vd.BAD_BUNDLE),                  # past the end
    (raw_bundle(b"/a\x00\x00") + b"\x00\x00", vd.BAD_BUNDLE),                 # stray bytes
    (raw_bundle(b"xyz\x00"), vd.BAD_BUNDLE),                                  # neither message nor bundle
    (raw_bundle(b"#bundle\x00"), vd.BAD_BUNDLE),                              # nested bundle without time tag
    (b"x" * (vd.MAX_PACKET + 1), vd.TOO_LARGE),
    (raw_bundle(bone("Hips").dgram) + raw_msg(b"/pad", b"b", struct.pack(">i", 65536) + bytes(65536)),
     vd.TOO_LARGE),
])
def test_packet_level_rejects(data, reason):
    r = decode_packet(data)
    assert r.packet_error == reason and r.messages == []


B = BONE_POS.encode()
F7 = struct.pack(">7f", 0, 0, 0, 0, 0, 0, 1)


@pytest.mark.parametrize("data,reason", [
    # wrong type tags / counts
    (raw_msg(B, b"sffffffi", osc_str(b"Hips") + F7[:24] + struct.pack(">i", 1)), vd.WRONG_TYPES),
    (raw_msg(B, b"sffffff", osc_str(b"Hips") + F7[:24]), vd.WRONG_TYPES),
    (raw_msg(B, b"sffffffff", osc_str(b"Hips") + F7 + F7[:4]), vd.WRONG_TYPES),
    (raw_msg(B, b"sddddddd", osc_str(b"Hips") + F7 * 2), vd.WRONG_TYPES),
    (raw_msg(B, None), vd.WRONG_TYPES),
    (msg(BLEND_VAL, "A", 1).dgram, vd.WRONG_TYPES),                          # int, not float
    (msg(BLEND_VAL, "A", 0.5, 0.5).dgram, vd.WRONG_TYPES),
    (msg(BLEND_APPLY, 1).dgram, vd.WRONG_TYPES),
    (msg(AVAILABLE, 1.0).dgram, vd.WRONG_TYPES),
    (msg(AVAILABLE, 1, 2).dgram, vd.WRONG_TYPES),
    (msg(TIME, 1).dgram, vd.WRONG_TYPES),
    (msg(ROOT_POS, "root", *[0.0] * 10).dgram, vd.WRONG_TYPES),
    # broken OSC
    (raw_msg(B, b"sfffffff", osc_str(b"Hips") + F7[:-4]), vd.BAD_MESSAGE),    # truncated
    (raw_msg(B, b"sfffffff", osc_str(b"Hips") + F7 + b"\x00" * 4), vd.BAD_MESSAGE),  # trailing bytes
    (B + b"\x00\x00\x00sfffffff\x00\x00\x00", vd.BAD_MESSAGE),                # type tag without comma
    (B + b"\x00\x01\x02" + osc_str(b",sfffffff") + osc_str(b"Hips") + F7, vd.BAD_MESSAGE),  # padding not NUL
    (b"/VMC/Ext/Bone/Pos", vd.BAD_MESSAGE),                                   # no NUL at all
    (raw_msg(B, b"sfffffff", b"Hips" + F7), vd.BAD_MESSAGE),                  # string without terminator
    (raw_msg(BLEND_APPLY.encode(), None) + b"\x00" * 4, vd.BAD_MESSAGE),
    # values
    (bone("Hips", (math.nan, 0, 0)).dgram, vd.NAN_INF),
    (bone("Hips", rot=(0, 0, 0, math.inf)).dgram, vd.NAN_INF),
    (blend("A", -math.inf).dgram, vd.NAN_INF),
    (msg(TIME, math.nan).dgram, vd.NAN_INF),
    (bone("Hips", (3e38, 0, 0)).dgram, vd.OUT_OF_RANGE),
    (bone("Hips", rot=(0, 0, 0, 0)).dgram, vd.OUT_OF_RANGE),
    (blend("A", 1e7).dgram, vd.OUT_OF_RANGE),
    (msg(AVAILABLE, 2).dgram, vd.OUT_OF_RANGE),
    # names
    (bone("H" * 65).dgram, vd.NAME_TOO_LONG),
    (blend("x" * 4000, 0.5).dgram, vd.NAME_TOO_LONG),
    (raw_msg(BLEND_VAL.encode(), b"sf", osc_str(b"\xff\xfe") + F7[:4]), vd.BAD_NAME),
    (raw_msg(BLEND_VAL.encode(), b"sf", osc_str(b"") + F7[:4]), vd.BAD_NAME),
    (blend("A\nB", 0.5).dgram, vd.BAD_NAME),
    (bone("Tail").dgram, vd.UNKNOWN_BONE),
    (bone("hips").dgram, vd.UNKNOWN_BONE),                                    # Unity's names are case-sensitive
])
def test_message_level_rejects(data, reason):
    r = decode_packet(data)
    assert r.packet_error is None and r.messages == [] and r.message_errors == [reason]


def test_a_bad_message_does_not_spoil_its_siblings():
    r = decode_packet(bundle(bone("Hips"), bone("Spine", (math.nan, 0, 0)), blend("A", 1.0), msg(TIME, 2)).dgram)
    assert [type(m) for m in r.messages] == [BonePose, BlendValue]
    assert r.message_errors == [vd.NAN_INF, vd.WRONG_TYPES] and not r.ok


def test_names_up_to_64_bytes_and_last_bone_is_ignored():
    assert decode_packet(blend("x" * 64, 0.5).dgram).messages == [BlendValue("x" * 64, 0.5)]
    assert decode_packet(blend("é" * 32, 0.5).dgram).ok                      # 64 bytes of UTF-8
    assert decode_packet(blend("é" * 33, 0.5).dgram).message_errors == [vd.NAME_TOO_LONG]
    r = decode_packet(bone("LastBone").dgram)
    assert r.ok and r.messages == [] and r.ignored == 1


def test_unknown_addresses_are_counted_not_errors():
    r = decode_packet(bundle(msg("/VMC/Ext/Cam", "Camera", *[0.0] * 8), msg("/foo/bar", 1, "x"),
                             msg("/VMC/Ext/Bone/Pos/Local", "Hips"), bone("Hips")).dgram)
    assert r.ok and r.unknown == ["/VMC/Ext/Cam", "/foo/bar", "/VMC/Ext/Bone/Pos/Local"] and len(r.messages) == 1
    # an unknown address with garbage after it is still just unknown: its arguments are never read
    assert decode_packet(raw_msg(b"/x", b"q\x01", b"\xff" * 7 + b"\x00")).unknown == ["/x"]
    stats = DecodeStats()
    stats.add(r)
    stats.add(decode_packet(b"junk"))
    assert stats.as_dict() == {"packets": 2, "messages": 1, "unknown_addresses": 3, "ignored": 0,
                               "rejected": {"not_osc": 1}}
    assert stats.packets_rejected == 1 and stats.messages_rejected == 0


def test_every_truncation_of_a_valid_bundle_is_dropped_cleanly():
    full = bundle(msg(AVAILABLE, 1, 3, 0), bone("Hips"), bundle(blend("A", 0.5), msg(BLEND_APPLY)),
                  msg(ROOT_POS, "root", *[0.0] * 6, 1.0)).dgram
    want = decode_packet(full).messages
    assert len(want) == 5
    single = bone("Hips").dgram
    for cut in range(len(full)):
        r = decode_packet(full[:cut])
        # framing is all or nothing: a cut bundle yields nothing, or (cut at an element) a prefix
        assert r.packet_error in (vd.BAD_BUNDLE, vd.NOT_OSC) or r.messages == want[:len(r.messages)]
    for cut in range(1, len(single)):
        r = decode_packet(single[:cut])
        assert r.messages == [] and (r.message_errors or r.packet_error)


def test_non_bytes_input_is_refused_and_buffers_are_accepted():
    d = bone("Hips").dgram
    assert decode_packet("not bytes").packet_error == vd.NOT_OSC                      # type: ignore[arg-type]
    assert decode_packet(None).packet_error == vd.NOT_OSC                             # type: ignore[arg-type]
    assert decode_packet(bytearray(d)).ok and decode_packet(memoryview(d)).ok


# --------------------------------------------------------------------------- receiver over real UDP

@pytest.fixture
def sender():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield s
    s.close()


@pytest.fixture
def receiver():
    r = VmcReceiver(port=0)
    yield r
    r.close()


def wait_for(cond, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.005)
    return cond()


def frame(hand_x: float = 0.25) -> bytes:
    return bundle(msg(AVAILABLE, 1, 3, 0), msg(TIME, 5.0),
                  msg(ROOT_POS, "root", 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
                  bone("Hips", (0.0, 0.9, 0.0)), bone("Spine"), bone("Head"), bone("LeftHand", (hand_x, 0, 0)),
                  blend("Joy", 1.0), blend("HandGrip", 0.5), msg(BLEND_APPLY)).dgram


def test_receiver_keeps_the_latest_state(receiver, sender):
    assert receiver.snapshot() == VmcSnapshot() and receiver.alive
    sender.sendto(frame(0.25), ("127.0.0.1", receiver.port))
    sender.sendto(frame(0.5), ("127.0.0.1", receiver.port))
    snap = wait_for(lambda: (s := receiver.snapshot()).bones.get("LeftHand", ((0,),))[0][0] == 0.5 and s)
    assert snap, receiver.stats
    assert set(snap.bones) == {"Hips", "Spine", "Head", "LeftHand"} and snap.bones["Hips"][0] == (0.0, f32(0.9), 0.0)
    assert snap.blends == {"Joy": 1.0, "HandGrip": 0.5}
    assert snap.root == ((1.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)) and snap.loaded is True and snap.sender_time == 5.0
    assert 0 <= snap.age < 1.0
    st = receiver.stats
    assert st.packets == 2 and st.messages == 20 and st.dropped == {} and st.bytes == 2 * len(frame())
    assert "vmc-in :" in receiver.status() and "4 bones" in receiver.status()


def test_receiver_counts_drops_and_survives_garbage(receiver, sender):
    target = ("127.0.0.1", receiver.port)
    for d in (b"", b"junk", raw_bundle(b"/a\x00\x00", sizes=[-4]), nested(40, bone("Hips").dgram),
              bone("Hips", (math.nan, 0, 0)).dgram, msg("/foo", 1).dgram, b"\xff" * UDP_MAX, frame()):
        sender.sendto(d, target)
    assert wait_for(lambda: receiver.stats.packets == 8), receiver.stats
    st = receiver.stats
    assert st.dropped == {"not_osc": 3, "bad_bundle": 1, "too_deep": 1, "nan_inf": 1}
    assert st.unknown_addresses == 1 and st.internal_errors == 0 and receiver.alive
    assert "LeftHand" in receiver.snapshot().bones and "6 dropped" in receiver.status()


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_blend_apply_semantics():
    clock = Clock()
    r = VmcReceiver(port=0, clock=clock, start=False)
    try:
        # a sender that never sends Apply: each datagram's values show as soon as it is read
        r.feed(bundle(blend("A", 0.5)).dgram)
        assert r.snapshot().blends == {"A": 0.5}
        # the first Apply switches to the spec's semantics: values wait for Apply ...
        r.feed(bundle(blend("A", 0.625), msg(BLEND_APPLY)).dgram)
        r.feed(bundle(blend("A", 0.75), blend("B", 0.125)).dgram)
        assert r.snapshot().blends == {"A": 0.625}
        r.feed(msg(BLEND_APPLY).dgram)                        # Apply in a datagram of its own
        assert r.snapshot().blends == {"A": 0.75, "B": 0.125}
        # ... and Apply updates the names it carries, keeping the others
        r.feed(bundle(blend("B", 0.25), msg(BLEND_APPLY)).dgram)
        assert r.snapshot().blends == {"A": 0.75, "B": 0.25}
        # a sender that stops sending Apply is followed again after stale_after
        clock.t += 0.5
        r.feed(bundle(blend("A", 0.875), blend("B", 0.375)).dgram)
        assert r.snapshot().blends == {"A": 0.75, "B": 0.25}
        clock.t += 0.625
        r.feed(bundle(blend("A", 0.9375)).dgram)
        assert r.snapshot().blends == {"A": 0.9375, "B": 0.375}
    finally:
        r.close()


def test_staleness_drops_what_stopped_arriving():
    clock = Clock()
    r = VmcReceiver(port=0, clock=clock, start=False)
    try:
        r.feed(frame())
        clock.t += 0.6
        r.feed(bundle(bone("Hips", (0, 1, 0))).dgram)
        snap = r.snapshot()
        assert len(snap.bones) == 4 and snap.blends and snap.root and snap.age == 0.0
        clock.t += 0.5                                          # frame() is 1.1 s old, Hips 0.5 s
        snap = r.snapshot()
        assert set(snap.bones) == {"Hips"} and snap.blends == {} and snap.root is None
        clock.t += 0.6
        assert r.snapshot().bones == {} and "waiting" in r.status()
        assert merge(AvatarPose(0, 0, True), r.snapshot()).vmc_bones == {}
    finally:
        r.close()


def test_staleness_in_real_time(sender):
    with VmcReceiver(port=0, stale_after=0.2) as r:
        sender.sendto(frame(), ("127.0.0.1", r.port))
        assert wait_for(lambda: "LeftHand" in r.snapshot().bones)
        assert wait_for(lambda: r.snapshot().bones == {}, timeout=2.0)


def test_blendshape_names_are_bounded():
    r = VmcReceiver(port=0, max_blends=8, start=False)
    try:
        r.feed(bundle(*[blend(f"b{i}", 0.5) for i in range(20)], msg(BLEND_APPLY)).dgram)
        assert len(r.snapshot().blends) == 8 and r.stats.blend_overflow == 12
        r.feed(bundle(blend("b0", 1.0), msg(BLEND_APPLY)).dgram)          # known names still update
        assert r.snapshot().blends["b0"] == 1.0
    finally:
        r.close()


def test_close_is_quick_on_an_idle_socket():
    r = VmcReceiver(port=0)
    time.sleep(0.3)                                             # inside recv(), waiting
    t0 = time.monotonic()
    r.close()
    assert time.monotonic() - t0 < 1.0 and not r.alive


def test_a_busy_port_is_a_one_line_error():
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    try:
        with pytest.raises(VmcBindError) as e:
            VmcReceiver(port=port)
        text = str(e.value)
        assert isinstance(e.value, OSError) and "\n" not in text
        assert f"port {port} is already in use" in text and "--vmc-in" in text
        assert e.value.strerror is None and e.value.filename is None   # the CLI prints str(e)
    finally:
        busy.close()


@pytest.mark.parametrize("port", [-1, 65536, "39540", 1.5, True])
def test_bad_port_values(port):
    with pytest.raises(ValueError, match="0–65535"):
        VmcReceiver(port=port)


def test_cli_reports_a_busy_vmc_in_port_in_one_line():
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    try:
        proc = subprocess.run([*CLI, "run", "--source", "demo", "--frames", "5", "--no-vmc", "--vmc-in", str(port)],
                              capture_output=True, text=True, timeout=120)
    finally:
        busy.close()
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"port {port} is already in use" in lines[0] and "--vmc-in" in lines[0]


def _flatten(dgram: bytes) -> list[OscMessage]:
    out = []
    for item in OscBundle(dgram):
        out.extend(_flatten(item.dgram) if isinstance(item, OscBundle) else [item])
    return out


THEIR_HEAD = (0.5, 0.5, 0.5, 0.5)
THEIR_SPINE = (0.0, 0.0, f32(0.38268343), f32(0.9238795))


@pytest.fixture(scope="module")
def run_with_a_body_performer() -> list[dict]:
    """``openvtuber run --source demo --vmc-in PORT`` while a fake body tracker sends at 60 Hz;
    returns, per VMC datagram the bridge sent, its bones (name → list of values) and blends."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    in_port = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen([*CLI, "run", "--source", "demo", "--frames", "120", "--vmc",
                             f"127.0.0.1:{rx.getsockname()[1]}", "--vmc-in", str(in_port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    body = bundle(bone("Head", rot=THEIR_HEAD), bone("Spine", rot=THEIR_SPINE), bone("LeftHand", (0.25, 0, 0)),
                  blend("Blink", 0.875), blend("HandGrip", 0.5), msg(BLEND_APPLY)).dgram

    def performer():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            while not stop.wait(1 / 60):
                tx.sendto(body, ("127.0.0.1", in_port))

    threading.Thread(target=performer, daemon=True).start()
    dgrams = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            try:
                dgrams.append(rx.recv(65536))
            except socket.timeout:
                if proc.poll() is not None:
                    break
    finally:
        stop.set()
        rx.close()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    frames = []
    for d in dgrams:
        bones, blends = {}, {}
        for m in _flatten(d):
            if m.address == BONE_POS:
                bones.setdefault(m.params[0], []).append(tuple(m.params[1:]))
            elif m.address == BLEND_VAL:
                blends.setdefault(m.params[0], []).append(m.params[1])
        frames.append({"bones": bones, "blends": blends})
    return frames


def test_run_merges_a_body_performer_into_the_vmc_output(run_with_a_body_performer):
    frames = run_with_a_body_performer
    assert len(frames) >= 115
    first = next(i for i, f in enumerate(frames) if "LeftHand" in f["bones"])
    assert first < 30                                            # the receiver is up before tracking starts
    for f in frames[first:]:
        assert f["bones"]["LeftHand"] == [(0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)]   # theirs, forwarded
        assert f["blends"]["HandGrip"] == [0.5]
        assert all(v[3:] != THEIR_HEAD for v in f["bones"]["Head"])              # the face is ours
        assert 0.875 not in f["blends"]["Blink"]
        assert THEIR_SPINE in [v[3:] for v in f["bones"]["Spine"]]               # they send a spine: theirs


def test_run_sends_one_spine_when_the_body_sends_one(run_with_a_body_performer):
    for f in run_with_a_body_performer:
        if "LeftHand" in f["bones"]:
            assert all(len(v) == 1 for v in f["bones"].values()), {k: len(v) for k, v in f["bones"].items()}


# --------------------------------------------------------------------------- merge

def theirs(**bones_blends) -> VmcSnapshot:
    q = (0.0, 0.0, 0.0, 1.0)
    return VmcSnapshot(bones={n: ((1.0, 2.0, 3.0), q) for n in bones_blends.get("bones", ())},
                       blends=dict(bones_blends.get("blends", {})))


def test_merge_face_is_ours_body_is_theirs():
    ours = {"Head": ((0, 0, 0), (0, 0.1, 0, 0.995))}
    pose = AvatarPose(1.0, 3, True, bones={HEAD: (0, 0.1, 0, 0.995)}, morphs={"まばたき": 1.0},
                      vmc_bones=dict(ours), vmc_blends={"Blink": 1.0})
    snap = theirs(bones=["Head", "Neck", "LeftEye", "RightEye", "Jaw", "Hips", "LeftHand", "RightLittleDistal",
                         "LeftFoot"],
                  blends={"Blink": 0.0, "blink": 0.0, "BLINK_L": 0.0, "aa": 1.0, "Joy": 1.0, "EyeBlinkLeft": 1.0,
                          "jawOpen": 1.0, "tongueOut": 1.0, "HandGrip": 0.5, "Peace": 1.0})
    out = merge(pose, snap)
    assert set(out.vmc_bones) == {"Head", "Hips", "LeftHand", "RightLittleDistal", "LeftFoot"}
    assert out.vmc_bones["Head"] == ours["Head"]
    assert out.vmc_blends == {"Blink": 1.0, "HandGrip": 0.5, "Peace": 1.0}
    assert out.bones == pose.bones and out.morphs == pose.morphs and (out.t, out.frame) == (1.0, 3)
    # the input is untouched and shares no dict with the output
    assert pose.vmc_bones == ours and pose.vmc_blends == {"Blink": 1.0}
    assert all(getattr(out, f) is not getattr(pose, f) for f in ("bones", "morphs", "vmc_bones", "vmc_blends"))


def test_merge_spine_is_theirs_only_when_they_send_it():
    lean = ((0, 0, 0), (0.0, 0.05, 0.0, 0.99875))
    pose = AvatarPose(0, 0, True, vmc_bones={"Spine": lean, "Chest": lean})
    out = merge(pose, theirs(bones=["Hips", "LeftUpperArm"]))
    assert out.vmc_bones["Spine"] == lean and out.vmc_bones["Chest"] == lean
    out = merge(pose, theirs(bones=["Hips", "UpperChest"]))
    assert "Spine" not in out.vmc_bones and "Chest" not in out.vmc_bones and "UpperChest" in out.vmc_bones
    assert spine_from_vmc(out)
    assert not spine_from_vmc(merge(AvatarPose(0, 0, True), theirs(bones=["Hips"])))
    assert merge(pose, None).vmc_bones == pose.vmc_bones and merge(pose, VmcSnapshot()) == pose


def test_face_name_tables():
    assert len(ARKIT_FACE) == len(set(ARKIT_FACE)) == 52
    assert len(VRM0_FACE) == 17 and len(VRM1_FACE) == 18
    assert all(is_face_blend(n) and is_face_blend(n.upper()) for n in VRM0_FACE + VRM1_FACE + ARKIT_FACE)
    assert not any(is_face_blend(n) for n in ("HandGrip", "Peace", "Fist", "Surprise_Body"))
    assert FACE_BONES >= {"Head", "Neck", "LeftEye", "RightEye"} and SPINE_CHAIN == {"Spine", "Chest", "UpperChest"}
    assert FACE_BONES | SPINE_CHAIN <= set(vd.HUMAN_BODY_BONES) and len(vd.HUMAN_BODY_BONES) == 55


# --------------------------------------------------------------------------- fuzz

FUZZ_N = 100_000
FUZZ_SEED = 20240611
MARKER_EVERY = 100
MARKER_BONE = "LeftHand"       # no other fuzz packet carries it (see _Fuzz); its px is the marker's number

_BODY = ("Hips", "Spine", "Chest", "RightUpperArm", "RightLowerArm", "RightHand", "LeftUpperArm", "LeftLowerArm",
         "RightIndexProximal", "LeftUpperLeg")
_ADDRESSES = ("/VMC/Ext/Cam", "/VMC/Ext/Hmd/Pos", "/VMC/Ext/Con", "/VMC/Ext/Light", "/VMC/Ext/Bone/Pos2",
              "/vmc/ext/bone/pos", "/VMC/Ext/Blend", "/VMC/Ext/OK/", "/foo", "/")


class _Fuzz:
    """100,000 seeded packets: mutations of valid VMC bundles (byte flips, truncation, type-tag
    corruption, NaN/inf and huge floats, long/invalid names, 64 KiB payloads, broken framing,
    deep nesting), random bytes and unknown addresses; every 100th a valid marker bundle."""

    def __init__(self):
        flat = [msg(AVAILABLE, 1, 3, 0), msg(TIME, 12.5), msg(ROOT_POS, "root", *[0.0] * 6, 1.0),
                *[bone(n) for n in _BODY], *[blend(n, 0.25) for n in ("Joy", "aa", "eyeBlinkLeft", "Grip", "Gun")],
                msg(BLEND_APPLY)]
        face = [blend(n, 0.5) for n in ("A", "Fun", "browInnerUp", "HandOpen")] + [msg(BLEND_APPLY)]
        lone = bone("RightHand", (0.1, 0.2, 0.3))
        templates = [(bundle(*flat).dgram, flat),
                     (bundle(bundle(*flat[:8]), bundle(bundle(*flat[8:14]), *flat[14:])).dgram, flat),
                     (lone.dgram, [lone]),
                     (bundle(*face).dgram, face)]
        # where each template's type tags and float arguments are, to corrupt them on purpose
        self.templates = []
        for t, msgs in templates:
            tags = [i for i in range(len(t) - 1) if t[i] == 0x2C and t[i - 1] == 0]
            floats, quats = [], []
            for m in msgs:
                at = t.find(m.dgram)
                nf = m.dgram.split(b"\x00", 1)[1].lstrip(b"\x00").split(b"\x00")[0].count(b"f")
                floats += [at + len(m.dgram) - 4 * (k + 1) for k in range(nf)]
                if nf == 7:
                    quats.append(at + len(m.dgram) - 16)
            assert floats and tags and all(f > 0 for f in floats)
            self.templates.append((t, tags, floats, quats))
        pad = [raw_msg(b"/pad", b"s", osc_str(b"p" * 990)) for _ in range(64)]
        big = raw_bundle(bone("RightHand").dgram, *pad)
        while len(big) > UDP_MAX:
            pad.pop()
            big = raw_bundle(bone("RightHand").dgram, *pad)
        self.big_valid = big                                   # ≈ 64 KB and still one UDP datagram
        self.kinds = [("flip", 20), ("truncate", 12), ("typetag", 12), ("value", 10), ("unknown", 10),
                      ("random", 11), ("valid", 6), ("name", 6), ("framing", 5), ("big", 1)]
        self.kind_names = [k for k, _ in self.kinds]
        self.kind_weights = [w for _, w in self.kinds]

    def packets(self, n: int = FUZZ_N, seed: int = FUZZ_SEED):
        """Yields (kind, bytes, marker number or None)."""
        rng = random.Random(seed)
        marker = 0
        for i in range(n):
            if i % MARKER_EVERY == MARKER_EVERY - 1 or i == n - 1:
                marker += 1
                yield "marker", bundle(bone(MARKER_BONE, (float(marker), 0.0, 0.0)), blend("Marker", 1.0),
                                       msg(BLEND_APPLY)).dgram, marker
                continue
            kind = rng.choices(self.kind_names, self.kind_weights)[0]
            yield kind, getattr(self, "_" + kind)(rng), None

    def _pick(self, rng):
        return self.templates[rng.randrange(len(self.templates))]

    def _valid(self, rng):
        return self._pick(rng)[0]

    def _flip(self, rng):
        b = bytearray(self._pick(rng)[0])
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)

    def _truncate(self, rng):
        t = self._pick(rng)[0]
        return t[:rng.randrange(len(t))]

    def _typetag(self, rng):
        t, tags, _, _ = self._pick(rng)
        b = bytearray(t)
        at = rng.choice(tags)
        end = b.index(0, at)
        i = rng.randrange(at, end)                     # the comma itself sometimes
        b[i] = rng.choice(b"ifsdbhtTFNrm[]x,\x00")
        return bytes(b)

    def _value(self, rng):
        t, _, floats, quats = self._pick(rng)
        b = bytearray(t)
        for _ in range(rng.randint(1, 3)):
            v = rng.choice((math.nan, math.inf, -math.inf, 3.0e38, -2.0e6, 0.0))
            struct.pack_into(">f", b, rng.choice(floats), v)
        if quats and rng.random() < 0.2:                # a zero quaternion
            struct.pack_into(">4f", b, rng.choice(quats), 0.0, 0.0, 0.0, 0.0)
        return bytes(b)

    def _name(self, rng):
        r = rng.random()
        if r < 0.5:
            name = "".join(rng.choices("abcXYZ_", k=rng.randint(65, 3000)))
        elif r < 0.7:
            name = "Hand\x01Grip"
        elif r < 0.85:
            return raw_bundle(raw_msg(BLEND_VAL.encode(), b"sf", osc_str(rng.randbytes(6).replace(b"\x00", b"\xff"))
                                      + struct.pack(">f", 0.5)))
        else:
            name = rng.choice(("Tail", "hips", "LeftHand ", "Left_Hand"))
        return bundle(bone(name) if rng.random() < 0.5 else blend(name, 0.5), msg(BLEND_APPLY)).dgram

    def _unknown(self, rng):
        items = []
        for _ in range(rng.randint(1, 12)):
            addr = rng.choice(_ADDRESSES) if rng.random() < 0.7 else "/" + "".join(rng.choices("abc/XYZ", k=20))
            args = rng.choice(((), (1,), ("Camera", 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 1.0, 60.0), (b"\x00\x01",)))
            items.append(msg(addr, *args))
        return bundle(*items).dgram

    def _random(self, rng):
        b = rng.randbytes(rng.randint(0, 1500))
        r = rng.random()
        if r < 0.3:
            return b"#bundle\x00" + b
        if r < 0.6:
            return b"/" + b
        return b

    def _framing(self, rng):
        one = bone("RightHand").dgram
        r = rng.randrange(6)
        if r == 0:
            return nested(rng.randint(MAX_DEPTH + 1, 200), one)
        if r == 1:
            return nested(rng.randint(1, MAX_DEPTH), one)       # deep but legal: valid
        if r == 2:
            return raw_bundle(one, b"/a\x00\x00", sizes=[len(one), rng.choice((-4, -8, -2**31))])
        if r == 3:
            return raw_bundle(one, sizes=[len(one) + rng.choice((1, 2, 3, 4, 400))])
        if r == 4:
            return raw_bundle(one) + rng.randbytes(rng.randint(1, 3))
        return raw_bundle(one, rng.randbytes(8).replace(b"/", b"x").replace(b"#", b"y"))

    def _big(self, rng):
        r = rng.randrange(3)
        if r == 0:
            return self.big_valid
        if r == 1:
            return b"#bundle\x00" + rng.randbytes(UDP_MAX - 8)
        return bytes(rng.randint(vd.MAX_PACKET + 1, 70_000))   # > 64 KiB: the decoder only, UDP cannot


@functools.lru_cache(maxsize=1)
def fuzz() -> _Fuzz:
    return _Fuzz()


@functools.lru_cache(maxsize=1)
def in_process_run() -> dict:
    """The decoder alone over the fuzz packets: stats for all, and for those UDP can carry."""
    every, sendable, kinds = DecodeStats(), DecodeStats(), Counter()
    internal = []
    t0 = time.perf_counter()
    for kind, data, marker in fuzz().packets():
        r = decode_packet(data)
        every.add(r)
        kinds[kind] += 1
        if len(data) <= UDP_MAX:
            sendable.add(r)
        if marker is not None and not (r.ok and r.messages[0] == BonePose(MARKER_BONE, (float(marker), 0, 0),
                                                                           (0, 0, 0, 1.0))):
            internal.append(("marker", marker, r))
        if r.packet_error == vd.INTERNAL_ERROR:
            internal.append((kind, data[:64]))
    return {"all": every, "sendable": sendable, "kinds": kinds, "bad": internal,
            "seconds": time.perf_counter() - t0}


def test_fuzz_decoder_in_process():
    run = in_process_run()
    st = run["all"]
    print(f"\nfuzz, decoder in process: {st.packets} packets in {run['seconds']:.1f} s (with generation); "
          f"kinds {dict(run['kinds'])}; {st.as_dict()}")
    assert st.packets == FUZZ_N and run["bad"] == []
    assert run["kinds"]["marker"] == FUZZ_N // MARKER_EVERY
    # every reason code was exercised, and the valid packets got through
    assert set(st.rejected) == set(vd.PACKET_REASONS + vd.MESSAGE_REASONS) - {vd.INTERNAL_ERROR}
    assert st.unknown_addresses > 10_000 and st.messages > 50_000


def _kernel_drops(port: int) -> int | None:
    """Datagrams the kernel dropped for our socket (Linux /proc/net/udp), or None if unknown."""
    try:
        with open("/proc/net/udp") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[1].endswith(f":{port:04X}"):
                    return int(cols[-1])
    except OSError:
        pass
    return None


def test_fuzz_receiver_over_udp(monkeypatch):
    """The acceptance run: 100,000 random and mutated packets at 127.0.0.1, no exception
    escapes, counts add up, the valid markers in between are still merged."""
    thread_errors = []
    monkeypatch.setattr(threading, "excepthook", lambda args: thread_errors.append(args))
    expected = in_process_run()["sendable"]
    r = VmcReceiver(port=0, stale_after=30.0, rcvbuf=4 << 20)   # stale_after: a slow box must not age markers out
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    target = ("127.0.0.1", r.port)
    sent = skipped = unsendable = burst_bytes = checked = 0
    last_marker = None
    lost_bursts = 0

    def catch_up() -> bool:
        """Wait until the receiver has read all we sent (pacing: the kernel buffer never fills)."""
        nonlocal lost_bursts
        seen, t_last = -1, time.monotonic()
        while True:
            assert r.alive, r.stats
            n = r.stats.packets
            if n >= sent:
                return True
            if n != seen:
                seen, t_last = n, time.monotonic()
            elif time.monotonic() - t_last > 1.0:               # no progress: the kernel dropped some
                lost_bursts += 1
                return False
            time.sleep(0.0005)

    t0 = time.perf_counter()
    try:
        pending = 0
        for kind, data, marker in fuzz().packets():
            if len(data) > UDP_MAX:
                skipped += 1
                continue
            try:
                tx.sendto(data, target)
            except OSError as e:                                # macOS caps datagrams at 9,216 bytes
                if e.errno != errno.EMSGSIZE:
                    raise
                unsendable += 1
                continue
            sent += 1
            pending += 1
            burst_bytes += len(data)
            if marker is not None:
                last_marker = marker
            if pending >= 200 or burst_bytes >= 256 << 10:
                if catch_up() and last_marker is not None:
                    hand = r.snapshot().bones.get(MARKER_BONE)
                    assert hand is not None and hand[0][0] == last_marker, (sent, hand, last_marker)
                    checked += 1
                pending = burst_bytes = 0
        catch_up()
        elapsed = time.perf_counter() - t0
        st = r.stats
        drops = _kernel_drops(r.port)
        snap = r.snapshot()
        alive = r.alive
    finally:
        tx.close()
        r.close()
    print(f"\nfuzz over UDP: sent {sent} (+{skipped} over 65,507 bytes, decoder only; "
          f"{unsendable} refused by the OS), received {st.packets}, "
          f"kernel drops {drops}, {elapsed:.1f} s, markers checked after {checked} bursts; "
          f"messages {st.messages}, unknown {st.unknown_addresses}, dropped {st.dropped}")
    assert alive and thread_errors == []
    assert st.internal_errors == 0 and st.recv_errors == 0, st.last_error
    assert snap.bones[MARKER_BONE][0][0] == last_marker == FUZZ_N // MARKER_EVERY
    merged = merge(AvatarPose(0.0, 0, True), snap)
    assert merged.vmc_bones[MARKER_BONE][0][0] == last_marker and merged.vmc_blends["Marker"] == 1.0
    if drops is not None:
        assert st.packets + drops == sent
    if st.packets == sent and not unsendable:                   # nothing lost: exactly the in-process counts
        assert (st.messages, st.unknown_addresses, st.ignored) == (expected.messages, expected.unknown_addresses,
                                                                   expected.ignored)
        assert st.dropped == dict(sorted(expected.rejected.items()))
        assert checked >= 0.9 * (sent / 200)
    else:
        assert st.packets >= 0.99 * sent and lost_bursts <= 0.01 * (sent / 200)
        assert all(st.dropped.get(k, 0) <= v for k, v in expected.rejected.items())


def test_their_root_is_merged_and_sent():
    from openvtuber.protocols.vmc_encode import encode_frame
    from pythonosc.osc_bundle import OscBundle

    snap = VmcSnapshot(bones={}, blends={}, root=((0.4, 0.0, -0.2), (0.0, 0.38268343, 0.0, 0.92387953)))
    merged = merge(AvatarPose(t=0.0, frame=0, found=True), snap)
    assert merged.vmc_root == snap.root
    msgs = [m for d in encode_frame(merged, 0.0).datagrams for m in OscBundle(d)]
    root = next(m for m in msgs if m.address == "/VMC/Ext/Root/Pos")
    assert root.params[1:4] == pytest.approx([0.4, 0.0, -0.2]) and root.params[5] == pytest.approx(0.38268343)
    assert merge(AvatarPose(t=0.0, frame=0, found=True), VmcSnapshot(bones={}, blends={})).vmc_root is None

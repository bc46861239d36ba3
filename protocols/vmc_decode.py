"""VMC protocol (OSC over UDP) decoding: one datagram in, typed VMC messages out. Pure.

What another performer (a body or hand tracker) sends us, per sh-akira's VMC protocol
spec: ``/VMC/Ext/Bone/Pos`` (s name, f px py pz, f qx qy qz qw; Unity ``HumanBodyBones``
names, local transforms in Unity's left-handed Y-up frame), ``/VMC/Ext/Root/Pos`` (the
same, plus 6 optional floats: MR scale and offset), ``/VMC/Ext/Blend/Val`` (s name,
f value), ``/VMC/Ext/Blend/Apply``, ``/VMC/Ext/OK`` (i loaded [, i calibration state,
i calibration mode [, i tracking status]]) and ``/VMC/Ext/T`` (f time), usually in OSC
bundles, possibly nested.

Every datagram is hostile until parsed (DESIGN.md "Bad input"). ``decode_packet`` never
raises: it returns the messages that passed and one reason code per thing it dropped.

- Whole packet dropped (``packet_error``): over 64 KiB (``too_large``); empty or neither
  an OSC message nor a bundle (``not_osc``); broken bundle framing — short header, an
  element size that is negative, not a multiple of 4 or past the end, trailing bytes, an
  element that is neither message nor bundle (``bad_bundle``); bundles nested deeper than
  ``MAX_DEPTH`` (``too_deep``). A packet whose framing is broken yields nothing: once
  one size is wrong, nothing after it can be trusted.
- One message dropped, its bundle siblings kept (``message_errors``): broken OSC strings,
  padding, truncated or trailing argument bytes (``bad_message``); type tags that are not
  exactly what the spec gives for the address, including the argument count
  (``wrong_types``); NaN or ±inf (``nan_inf``); a finite number beyond ``MAX_ABS``, a zero
  quaternion, ``loaded`` not 0/1 (``out_of_range``); a name over ``MAX_NAME`` bytes
  (``name_too_long``), empty, not UTF-8 or with control characters (``bad_name``); a bone
  name that is not a Unity ``HumanBodyBones`` name (``unknown_bone``; ``LastBone``, which
  the spec says senders include, is ``ignored`` instead).
- Addresses this module does not handle (``/VMC/Ext/Cam``, ``/VMC/Ext/Hmd/Pos``, anything
  else) are not errors: they are listed in ``unknown`` and their arguments never parsed.

Bundle time tags are read past, not honoured: VMC senders use "immediately", and live
motion is applied when it arrives.

Extra arguments are refused (``wrong_types``) although EVMC4U ignores them: the spec
gives each address's exact shapes, and strictness keeps a corrupted type tag from being
read as a valid prefix.

Why not python-osc's ``OscPacket``/``OscBundle``/``OscMessage`` here (the encoder and the
tests do use python-osc): measured on python-osc 1.10.2, a bundle element whose size is
negative makes ``OscBundle`` loop forever, logging a warning per turn; a non-UTF-8 address
lets ``UnicodeDecodeError`` escape ``OscMessage``; nested bundles recurse without a limit
(``RecursionError`` long before 64 KiB); a truncated final float is zero-padded and
accepted; every primitive read copies the rest of the datagram (quadratic on a 64 KiB
packet). The OSC 1.0 framing is small, so it is parsed here with ``struct``; the tests
check the result against python-osc's parser on every well-formed packet they build.
"""
from __future__ import annotations

import math
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Union

from .pose import Quat, Vec3

MAX_PACKET = 65536          # bytes; UDP over IPv4 cannot carry more than 65,507 anyway
MAX_NAME = 64               # bytes of a bone or blendshape name (UTF-8)
MAX_DEPTH = 8               # bundles inside bundles, counting the outermost
MAX_ABS = 1.0e6             # any float beyond this is not a pose (metres, weights, seconds)

# Reason codes. Packet-level: the whole datagram is dropped.
TOO_LARGE, NOT_OSC, BAD_BUNDLE, TOO_DEEP = "too_large", "not_osc", "bad_bundle", "too_deep"
# Message-level: one message is dropped.
BAD_MESSAGE, WRONG_TYPES, NAN_INF, OUT_OF_RANGE = "bad_message", "wrong_types", "nan_inf", "out_of_range"
NAME_TOO_LONG, BAD_NAME, UNKNOWN_BONE = "name_too_long", "bad_name", "unknown_bone"
# A bug in this module (never expected; counted, not raised, so a receiver keeps running).
INTERNAL_ERROR = "internal_error"
PACKET_REASONS = (TOO_LARGE, NOT_OSC, BAD_BUNDLE, TOO_DEEP, INTERNAL_ERROR)
MESSAGE_REASONS = (BAD_MESSAGE, WRONG_TYPES, NAN_INF, OUT_OF_RANGE, NAME_TOO_LONG, BAD_NAME, UNKNOWN_BONE)

# Unity's HumanBodyBones, in enum order (LastBone is the enum's end marker).
HUMAN_BODY_BONES = (
    "Hips", "LeftUpperLeg", "RightUpperLeg", "LeftLowerLeg", "RightLowerLeg", "LeftFoot", "RightFoot",
    "Spine", "Chest", "Neck", "Head", "LeftShoulder", "RightShoulder", "LeftUpperArm", "RightUpperArm",
    "LeftLowerArm", "RightLowerArm", "LeftHand", "RightHand", "LeftToes", "RightToes", "LeftEye", "RightEye",
    "Jaw",
    "LeftThumbProximal", "LeftThumbIntermediate", "LeftThumbDistal",
    "LeftIndexProximal", "LeftIndexIntermediate", "LeftIndexDistal",
    "LeftMiddleProximal", "LeftMiddleIntermediate", "LeftMiddleDistal",
    "LeftRingProximal", "LeftRingIntermediate", "LeftRingDistal",
    "LeftLittleProximal", "LeftLittleIntermediate", "LeftLittleDistal",
    "RightThumbProximal", "RightThumbIntermediate", "RightThumbDistal",
    "RightIndexProximal", "RightIndexIntermediate", "RightIndexDistal",
    "RightMiddleProximal", "RightMiddleIntermediate", "RightMiddleDistal",
    "RightRingProximal", "RightRingIntermediate", "RightRingDistal",
    "RightLittleProximal", "RightLittleIntermediate", "RightLittleDistal",
    "UpperChest",
)
_BONES = frozenset(HUMAN_BODY_BONES)
LAST_BONE = "LastBone"

BONE_POS = "/VMC/Ext/Bone/Pos"
ROOT_POS = "/VMC/Ext/Root/Pos"
BLEND_VAL = "/VMC/Ext/Blend/Val"
BLEND_APPLY = "/VMC/Ext/Blend/Apply"
AVAILABLE = "/VMC/Ext/OK"
TIME = "/VMC/Ext/T"


@dataclass(frozen=True, slots=True)
class BonePose:
    """``/VMC/Ext/Bone/Pos``: a bone's local transform, Unity frame, unit quaternion."""
    name: str
    pos: Vec3
    rot: Quat


@dataclass(frozen=True, slots=True)
class RootPose:
    """``/VMC/Ext/Root/Pos``; ``scale``/``offset`` only when the sender adds them (v2.1 MR)."""
    name: str
    pos: Vec3
    rot: Quat
    scale: Vec3 | None = None
    offset: Vec3 | None = None


@dataclass(frozen=True, slots=True)
class BlendValue:
    """``/VMC/Ext/Blend/Val``: takes effect at the next ``BlendApply``."""
    name: str
    value: float


@dataclass(frozen=True, slots=True)
class BlendApply:
    """``/VMC/Ext/Blend/Apply``: the values sent since the last Apply become current."""


@dataclass(frozen=True, slots=True)
class Available:
    """``/VMC/Ext/OK``; the optional fields are None when the sender leaves them out."""
    loaded: bool
    calibration_state: int | None = None
    calibration_mode: int | None = None
    tracking: int | None = None


@dataclass(frozen=True, slots=True)
class SenderTime:
    """``/VMC/Ext/T``: the sender's own clock, seconds."""
    t: float


VmcMessage = Union[BonePose, RootPose, BlendValue, BlendApply, Available, SenderTime]


@dataclass(slots=True)
class DecodeResult:
    """What one datagram gave: messages in wire order, and why anything was dropped."""
    messages: list[VmcMessage] = field(default_factory=list)
    packet_error: str | None = None                          # the whole packet was dropped
    message_errors: list[str] = field(default_factory=list)  # one reason per dropped message
    unknown: list[str] = field(default_factory=list)         # addresses not handled (≤ 64 chars each)
    ignored: int = 0                                         # well-formed but meaningless (LastBone)

    @property
    def ok(self) -> bool:
        return self.packet_error is None and not self.message_errors


@dataclass
class DecodeStats:
    """Running totals over many ``decode_packet`` results; ``rejected`` counts per reason code."""
    packets: int = 0
    messages: int = 0
    unknown_addresses: int = 0
    ignored: int = 0
    rejected: Counter = field(default_factory=Counter)

    def add(self, result: DecodeResult) -> None:
        self.packets += 1
        self.messages += len(result.messages)
        self.unknown_addresses += len(result.unknown)
        self.ignored += result.ignored
        if result.packet_error is not None:
            self.rejected[result.packet_error] += 1
        for reason in result.message_errors:
            self.rejected[reason] += 1

    @property
    def packets_rejected(self) -> int:
        return sum(self.rejected[r] for r in PACKET_REASONS)

    @property
    def messages_rejected(self) -> int:
        return sum(self.rejected[r] for r in MESSAGE_REASONS)

    def copy(self) -> DecodeStats:
        return DecodeStats(self.packets, self.messages, self.unknown_addresses, self.ignored, Counter(self.rejected))

    def as_dict(self) -> dict:
        return {"packets": self.packets, "messages": self.messages, "unknown_addresses": self.unknown_addresses,
                "ignored": self.ignored, "rejected": dict(sorted(self.rejected.items()))}


# --------------------------------------------------------------------------- framing

_BUNDLE = b"#bundle\x00"
_I32 = struct.Struct(">i")
_F1 = struct.Struct(">f")
_F7 = struct.Struct(">7f")
_F13 = struct.Struct(">13f")


class _Drop(Exception):
    """Internal: this message is dropped for ``reason`` (never leaves the module)."""

    def __init__(self, reason: str):
        self.reason = reason


def decode_packet(data: bytes) -> DecodeResult:
    """Decode one UDP datagram. Never raises; see the module docstring for the reason codes."""
    try:
        return _decode(data)
    except Exception:  # a bug here must not take a receiver down: count it instead
        return DecodeResult(packet_error=INTERNAL_ERROR)


def _decode(data: bytes) -> DecodeResult:
    if not isinstance(data, bytes):
        if not isinstance(data, (bytearray, memoryview)):
            return DecodeResult(packet_error=NOT_OSC)
        data = bytes(data)
    n = len(data)
    if n > MAX_PACKET:
        return DecodeResult(packet_error=TOO_LARGE)
    if n == 0:
        return DecodeResult(packet_error=NOT_OSC)
    if data.startswith(_BUNDLE):
        spans = _bundle_spans(data)
        if isinstance(spans, str):
            return DecodeResult(packet_error=spans)
    elif data[0] == 0x2F:  # "/"
        spans = [(0, n)]
    else:
        return DecodeResult(packet_error=NOT_OSC)
    result = DecodeResult()
    for start, end in spans:
        try:
            _message(data, start, end, result)
        except _Drop as d:
            result.message_errors.append(d.reason)
    return result


def _bundle_spans(data: bytes) -> list[tuple[int, int]] | str:
    """(start, end) of every message inside the bundle at offset 0, depth first in wire
    order (so a Blend/Val stays before its Apply); or a packet-level reason code.
    Iterative, so no nesting depth can exhaust Python's stack."""
    n = len(data)
    if n < 16:                                    # "#bundle\0" + 8-byte time tag
        return BAD_BUNDLE
    spans: list[tuple[int, int]] = []
    stack = [[16, n, 1]]                          # [next element, end, depth]
    while stack:
        frame = stack[-1]
        pos, end, depth = frame
        if pos == end:
            stack.pop()
            continue
        if pos + 4 > end:
            return BAD_BUNDLE                     # 1–3 stray bytes
        (size,) = _I32.unpack_from(data, pos)
        start = pos + 4
        stop = start + size
        if size < 0 or size & 3 or stop > end:
            return BAD_BUNDLE
        frame[0] = stop
        if size == 0:                             # an empty element: legal framing, nothing in it
            continue
        if data.startswith(_BUNDLE, start):
            if depth >= MAX_DEPTH:
                return TOO_DEEP
            if size < 16:
                return BAD_BUNDLE
            stack.append([start + 16, stop, depth + 1])
        elif data[start] == 0x2F:
            spans.append((start, stop))
        else:
            return BAD_BUNDLE
    return spans


def _padded(start: int, nul: int) -> int:
    """End of an OSC string starting at ``start`` whose terminating NUL is at ``nul``."""
    return start + ((nul - start) // 4 + 1) * 4


def _osc_string(data: bytes, start: int, end: int) -> tuple[int, int]:
    """(NUL index, padded end) of the OSC string at ``start``; the padding must be NULs."""
    nul = data.find(b"\x00", start, end)
    if nul < 0:
        raise _Drop(BAD_MESSAGE)
    stop = _padded(start, nul)
    if stop > end or data.count(b"\x00", nul, stop) != stop - nul:
        raise _Drop(BAD_MESSAGE)
    return nul, stop


def _name(data: bytes, start: int, end: int) -> tuple[str, int]:
    nul = data.find(b"\x00", start, end)
    if nul < 0:
        raise _Drop(BAD_MESSAGE)
    if nul - start > MAX_NAME:
        raise _Drop(NAME_TOO_LONG)
    stop = _padded(start, nul)
    if stop > end or data.count(b"\x00", nul, stop) != stop - nul:
        raise _Drop(BAD_MESSAGE)
    try:
        name = data[start:nul].decode("utf-8")
    except UnicodeDecodeError:
        raise _Drop(BAD_NAME) from None
    if not name or not name.isprintable():
        raise _Drop(BAD_NAME)
    return name, stop


def _floats(data: bytes, start: int, end: int, shape: struct.Struct) -> tuple[float, ...]:
    if start + shape.size != end:                 # truncated, or trailing bytes
        raise _Drop(BAD_MESSAGE)
    vals = shape.unpack_from(data, start)
    for v in vals:
        if not -MAX_ABS <= v <= MAX_ABS:          # also false for NaN
            raise _Drop(OUT_OF_RANGE if math.isfinite(v) else NAN_INF)
    return vals


def _quat(x: float, y: float, z: float, w: float) -> Quat:
    n2 = x * x + y * y + z * z + w * w
    if n2 < 1e-12:
        raise _Drop(OUT_OF_RANGE)
    if abs(n2 - 1.0) > 1e-4:                      # leave float32-exact unit quaternions untouched
        s = 1.0 / math.sqrt(n2)
        return (x * s, y * s, z * s, w * s)
    return (x, y, z, w)


def _bone(data: bytes, tags: bytes, start: int, end: int, result: DecodeResult) -> None:
    if tags != b"sfffffff":
        raise _Drop(WRONG_TYPES)
    name, p = _name(data, start, end)
    v = _floats(data, p, end, _F7)
    if name not in _BONES:
        if name == LAST_BONE:
            result.ignored += 1
            return
        raise _Drop(UNKNOWN_BONE)
    result.messages.append(BonePose(name, (v[0], v[1], v[2]), _quat(v[3], v[4], v[5], v[6])))


def _root(data: bytes, tags: bytes, start: int, end: int, result: DecodeResult) -> None:
    if tags == b"sfffffff":
        shape = _F7
    elif tags == b"sfffffffffffff":
        shape = _F13
    else:
        raise _Drop(WRONG_TYPES)
    name, p = _name(data, start, end)
    v = _floats(data, p, end, shape)
    extra = {} if shape is _F7 else {"scale": (v[7], v[8], v[9]), "offset": (v[10], v[11], v[12])}
    result.messages.append(RootPose(name, (v[0], v[1], v[2]), _quat(v[3], v[4], v[5], v[6]), **extra))


def _blend(data: bytes, tags: bytes, start: int, end: int, result: DecodeResult) -> None:
    if tags != b"sf":
        raise _Drop(WRONG_TYPES)
    name, p = _name(data, start, end)
    (value,) = _floats(data, p, end, _F1)
    result.messages.append(BlendValue(name, value))


def _apply(data: bytes, tags: bytes, start: int, end: int, result: DecodeResult) -> None:
    if tags:
        raise _Drop(WRONG_TYPES)
    if start != end:
        raise _Drop(BAD_MESSAGE)
    result.messages.append(BlendApply())


def _available(data: bytes, tags: bytes, start: int, end: int, result: DecodeResult) -> None:
    if tags not in (b"i", b"iii", b"iiii"):
        raise _Drop(WRONG_TYPES)
    if start + 4 * len(tags) != end:
        raise _Drop(BAD_MESSAGE)
    vals = struct.unpack_from(f">{len(tags)}i", data, start)
    if vals[0] not in (0, 1):
        raise _Drop(OUT_OF_RANGE)
    rest = list(vals[1:]) + [None] * (4 - len(vals))
    result.messages.append(Available(bool(vals[0]), *rest))


def _time(data: bytes, tags: bytes, start: int, end: int, result: DecodeResult) -> None:
    if tags != b"f":
        raise _Drop(WRONG_TYPES)
    (t,) = _floats(data, start, end, _F1)
    result.messages.append(SenderTime(t))


_Handler = Callable[[bytes, bytes, int, int, DecodeResult], None]
_HANDLERS: dict[bytes, _Handler] = {
    BONE_POS.encode(): _bone, ROOT_POS.encode(): _root, BLEND_VAL.encode(): _blend,
    BLEND_APPLY.encode(): _apply, AVAILABLE.encode(): _available, TIME.encode(): _time,
}


def _message(data: bytes, start: int, end: int, result: DecodeResult) -> None:
    nul, args = _osc_string(data, start, end)
    handler = _HANDLERS.get(data[start:nul])
    if handler is None:
        result.unknown.append(data[start:min(nul, start + 64)].decode("utf-8", "replace"))
        return
    if args == end:                               # no type tag string at all: no arguments
        tags = b""
    else:
        if data[args] != 0x2C:                    # ","
            raise _Drop(BAD_MESSAGE)
        tnul, stop = _osc_string(data, args, end)
        tags, args = data[args + 1:tnul], stop
    handler(data, tags, args, end, result)

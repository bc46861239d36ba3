"""VMC input (``--vmc-in``): receive another performer — a body or hand tracker — and merge it
with our face.

``VmcReceiver`` owns one UDP socket and a daemon thread. It decodes every datagram with
``protocols.vmc_decode`` (never raises; drops are counted per reason) and keeps only the
latest state; ``snapshot()`` hands a consistent copy to the tracker thread, and the pure
``merge(pose, snapshot)`` folds it into the ``AvatarPose``.

Choices, and why:

- Blend/Apply. The spec (and UniVRM) accumulate ``/VMC/Ext/Blend/Val`` and make them
  current on ``/VMC/Ext/Blend/Apply``; so do we: values wait in a pending set and become
  visible to ``snapshot()`` when Apply arrives. Some senders never send Apply. While no
  Apply has arrived within ``stale_after`` seconds, the pending values become visible at the
  end of each datagram instead (for a bundled sender: after each bundle). A sender that
  does send Apply is therefore honoured from its first Apply on, and one that stops is
  picked up again a second later. Apply updates the names it carries and keeps the others
  (UniVRM's ``SetValues``); names that stop arriving age out like bones.
- Staleness. Each bone, blendshape and the root carry the time they were last received;
  ``snapshot()`` leaves out anything older than ``stale_after`` (1 s), so a performer that
  stops or crashes drops out of the merge instead of freezing the body in its last pose.
- Bounds. Bone names must be Unity ``HumanBodyBones`` (the decoder checks), so at most 55
  bones; at most ``max_blends`` distinct blendshape names are held (pending or current);
  further new names are dropped and counted (``blend_overflow``). A hostile sender cannot
  grow memory.
- Ownership in ``merge``: see its docstring.
"""
from __future__ import annotations

import errno
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from ..protocols.pose import FACE_BONES, SPINE_CHAIN, AvatarPose, Quat, Vec3, spine_from_vmc  # noqa: F401
from ..protocols.vmc_decode import (MAX_PACKET, Available, BlendApply, BlendValue, BonePose, DecodeStats, RootPose,
                                    SenderTime, decode_packet)

STALE_AFTER = 1.0            # seconds
MAX_BLENDS = 256             # distinct blendshape names held
RECV_TIMEOUT = 0.1           # seconds; how soon close() is noticed on an idle socket
RCVBUF = 1 << 20             # requested SO_RCVBUF (the kernel may cap it)

VRM0_FACE = ("Neutral", "A", "I", "U", "E", "O", "Blink", "Blink_L", "Blink_R", "Joy", "Angry", "Sorrow", "Fun",
             "LookUp", "LookDown", "LookLeft", "LookRight")
VRM1_FACE = ("neutral", "aa", "ih", "ou", "ee", "oh", "blink", "blinkLeft", "blinkRight", "happy", "angry", "sad",
             "relaxed", "surprised", "lookUp", "lookDown", "lookLeft", "lookRight")
ARKIT_FACE = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose",
    "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
# Compared case-insensitively: senders spell presets "Blink"/"blink", perfect sync "EyeBlinkLeft"/"eyeBlinkLeft".
_FACE_BLENDS = frozenset(n.lower() for n in VRM0_FACE + VRM1_FACE + ARKIT_FACE)


def is_face_blend(name: str) -> bool:
    """Whether a blendshape name belongs to the face (ours), not to the other performer."""
    return name.lower() in _FACE_BLENDS


class VmcBindError(OSError):
    """The VMC input port cannot be opened; the message says what to do, in one line."""


@dataclass(frozen=True)
class VmcSnapshot:
    """The other performer's latest fresh state (Unity frame, as received)."""
    bones: dict[str, tuple[Vec3, Quat]] = field(default_factory=dict)
    blends: dict[str, float] = field(default_factory=dict)
    root: tuple[Vec3, Quat] | None = None
    loaded: bool | None = None           # /VMC/Ext/OK, when the sender says
    sender_time: float | None = None     # /VMC/Ext/T
    age: float | None = None             # seconds since the last valid VMC message; None: none yet


EMPTY = VmcSnapshot()


@dataclass(frozen=True)
class VmcInStats:
    """Counters since the receiver started. ``dropped`` is per decoder reason code
    (``protocols.vmc_decode``); ``blend_overflow`` counts blendshapes refused by ``max_blends``;
    ``recv_errors`` socket errors (e.g. Windows reporting an ICMP "port unreachable");
    ``internal_errors`` bugs caught in the receive loop (expected 0; ``last_error`` says which)."""
    packets: int = 0
    bytes: int = 0
    messages: int = 0
    unknown_addresses: int = 0
    ignored: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    blend_overflow: int = 0
    recv_errors: int = 0
    internal_errors: int = 0
    last_error: str = ""

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


def _bind_error(host: str, port: int, e: OSError, hint: str) -> VmcBindError:
    code = getattr(e, "winerror", None) or e.errno
    if code in (errno.EADDRINUSE, 10048):
        msg = f"port {port} is already in use on {host} (another VMC app?): pick another with {hint}"
    elif code in (errno.EACCES, 10013):
        msg = f"not allowed to listen on {host} port {port}: pick another with {hint}"
    elif isinstance(e, socket.gaierror):
        msg = f"cannot listen for VMC on {host}: cannot resolve that host name"
    elif code in (errno.EADDRNOTAVAIL, 10049):
        msg = f"cannot listen for VMC on {host}: not an address of this machine"
    else:
        msg = f"cannot listen for VMC on {host} port {port}: {e.strerror or e}"
    return VmcBindError(msg)


class VmcReceiver:
    """Listens on ``host:port`` (UDP) for VMC and keeps the latest state.

    Binds in the constructor, so a busy port fails at start with ``VmcBindError`` (an
    ``OSError``; one line). ``port=0`` picks a free port; ``.port`` tells which.
    ``snapshot()``, ``stats`` and ``status()`` are safe from any thread; ``close()`` stops the
    thread within about ``RECV_TIMEOUT``. ``start=False`` binds but runs no thread: datagrams
    are then given to ``feed()`` by hand (tests, with a fake ``clock``).
    """

    name = "vmc-in"

    def __init__(self, host: str = "127.0.0.1", port: int = 39540, *, stale_after: float = STALE_AFTER,
                 max_blends: int = MAX_BLENDS, rcvbuf: int = RCVBUF, hint: str = "--vmc-in",
                 clock: Callable[[], float] = time.monotonic, start: bool = True):
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"VMC input port must be a whole number 0–65535, got {port!r}")
        self.host = host
        self.stale_after = float(stale_after)
        self.max_blends = int(max_blends)
        self._clock = clock
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):          # Windows: no silent port sharing
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            except OSError:
                pass                                            # keep the system default
            sock.bind((host, port))
            sock.settimeout(RECV_TIMEOUT)
        except OSError as e:
            sock.close()
            raise _bind_error(host, port, e, hint) from None
        self._sock = sock
        self.port: int = sock.getsockname()[1]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # state (under _lock)
        self._bones: dict[str, tuple[Vec3, Quat, float]] = {}
        self._blends: dict[str, tuple[float, float]] = {}
        self._pending: dict[str, float] = {}
        self._root: tuple[Vec3, Quat, float] | None = None
        self._loaded: bool | None = None
        self._sender_time: float | None = None
        self._last_valid: float | None = None
        self._last_apply: float | None = None
        # counters (under _lock)
        self._decode = DecodeStats()
        self._bytes = 0
        self._overflow = 0
        self._recv_errors = 0
        self._internal = 0
        self._last_error = ""
        self._rate_t, self._rate_n, self.rate = clock(), 0, 0.0
        self._thread = threading.Thread(target=self._run, name=f"vmc-in:{self.port}", daemon=True)
        if start:
            self._thread.start()

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        sock, bufsize = self._sock, MAX_PACKET + 1      # one byte more: an oversize datagram stays detectable
        while not self._stop.is_set():
            try:
                data = sock.recv(bufsize)
            except socket.timeout:
                self._tick()
                continue
            except OSError:
                if self._stop.is_set():
                    break
                with self._lock:
                    self._recv_errors += 1
                continue
            try:
                self.feed(data)
            except Exception as e:  # never expected; the receiver must outlive any datagram
                with self._lock:
                    self._internal += 1
                    self._last_error = f"{type(e).__name__}: {e}"[:200]

    def _tick(self) -> None:
        now = self._clock()
        with self._lock:
            self._prune(now)
            self._rate(now, 0)

    def _rate(self, now: float, n: int) -> None:
        self._rate_n += n
        if now - self._rate_t >= 1.0:
            self.rate = self._rate_n / (now - self._rate_t)
            self._rate_t, self._rate_n = now, 0

    def feed(self, data: bytes) -> None:
        """Decode one datagram and apply it, as the receive thread does (also handy for tests)."""
        result = decode_packet(data)
        now = self._clock()
        with self._lock:
            self._decode.add(result)
            self._bytes += len(data)
            self._rate(now, 1)
            if result.messages:
                self._last_valid = now
            for m in result.messages:
                if type(m) is BonePose:
                    self._bones[m.name] = (m.pos, m.rot, now)
                elif type(m) is BlendValue:
                    if m.name in self._pending or len(self._pending) < self.max_blends:
                        self._pending[m.name] = m.value
                    else:
                        self._overflow += 1
                elif type(m) is BlendApply:
                    self._last_apply = now
                    self._commit(now)
                elif type(m) is RootPose:
                    self._root = (m.pos, m.rot, now)
                elif type(m) is Available:
                    self._loaded = m.loaded
                elif type(m) is SenderTime:
                    self._sender_time = m.t
            if self._pending and (self._last_apply is None or now - self._last_apply > self.stale_after):
                self._commit(now)                       # a sender without Apply: one datagram = one update

    def _commit(self, now: float) -> None:
        blends = self._blends
        if len(blends) + len(self._pending) > self.max_blends:
            self._prune(now)
        for name, v in self._pending.items():
            if name in blends or len(blends) < self.max_blends:
                blends[name] = (v, now)
            else:
                self._overflow += 1
        self._pending.clear()

    def _prune(self, now: float) -> None:
        old = now - self.stale_after
        for d in (self._bones, self._blends):
            for k in [k for k, v in d.items() if v[-1] < old]:
                del d[k]
        if self._root is not None and self._root[2] < old:
            self._root = None

    # ------------------------------------------------------------------ API

    def snapshot(self) -> VmcSnapshot:
        """The latest fresh state: entries older than ``stale_after`` are left out."""
        now = self._clock()
        with self._lock:
            self._prune(now)
            return VmcSnapshot(
                bones={k: (p, q) for k, (p, q, _) in self._bones.items()},
                blends={k: v for k, (v, _) in self._blends.items()},
                root=self._root[:2] if self._root is not None else None,
                loaded=self._loaded,
                sender_time=self._sender_time,
                age=None if self._last_valid is None else now - self._last_valid,
            )

    @property
    def stats(self) -> VmcInStats:
        with self._lock:
            d = self._decode
            return VmcInStats(d.packets, self._bytes, d.messages, d.unknown_addresses, d.ignored,
                              dict(sorted(d.rejected.items())), self._overflow, self._recv_errors,
                              self._internal, self._last_error)

    def status(self) -> str:
        """One short part of the status line."""
        snap, st = self.snapshot(), self.stats
        s = f"vmc-in :{self.port} "
        if snap.age is None or snap.age > self.stale_after:
            s += "waiting"
        else:
            s += f"{self.rate:4.0f} pkt/s {len(snap.bones)} bones {len(snap.blends)} blends"
        if st.dropped_total or st.blend_overflow:
            s += f", {st.dropped_total + st.blend_overflow} dropped"
        return s

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> VmcReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge(pose: AvatarPose, snapshot: VmcSnapshot | None) -> AvatarPose:
    """Our face plus the other performer's body, as a new ``AvatarPose`` (the input is untouched).

    Their bones and blendshapes go into ``vmc_bones``/``vmc_blends`` (Unity frame, as received),
    on top of whatever the pose already holds there, except:

    - the face is ours: their ``FACE_BONES`` (Head, Neck, LeftEye, RightEye, Jaw) and every
      face blendshape (VRM 0.x and 1.0 presets, the 52 ARKit names; any case) are dropped;
    - the spine chain (Spine, Chest, UpperChest) is theirs whenever they send any of it: a
      body tracker sees the torso, our lean is only a guess from the head. Then any spine-chain
      bone already in ``pose.vmc_bones`` goes too (one performer per chain, never a double
      lean), and an output must not also derive a spine from ``上半身``. When they send none,
      ours stays;
    - everything else (hips, arms, hands, fingers, legs, toes) is theirs.

    - the root transform (where the body stands) is theirs when they send one.
    """
    bones = dict(pose.vmc_bones)
    blends = dict(pose.vmc_blends)
    if snapshot is not None:
        if any(n in SPINE_CHAIN for n in snapshot.bones):
            for n in SPINE_CHAIN:
                bones.pop(n, None)
        for n, v in snapshot.bones.items():
            if n not in FACE_BONES:
                bones[n] = v
        for n, v in snapshot.blends.items():
            if not is_face_blend(n):
                blends[n] = v
    root = snapshot.root if snapshot is not None and snapshot.root is not None else pose.vmc_root
    return replace(pose, bones=dict(pose.bones), morphs=dict(pose.morphs), vmc_bones=bones, vmc_blends=blends,
                   vmc_root=root)


"""``openvtuber bench --capture``: the virtual-camera path measured as a user runs it.

The whole bridge runs (demo source paced at 30 fps → tracking → rig → VMC over real UDP,
the page in headless Chromium → I420 frames → ``pyvirtualcam.Camera``) and we measure:

* camera frames published per second, and how many were new page frames (the rest are
  repeats of the last one), over ``seconds`` after warm-up (which includes the demo's
  first 24 s loop: it draws each frame once, then replays them as a camera's JPEGs);
* frame → VMC latency: from the moment the source handed the frame over to the moment
  the VMC bundle carrying its time arrives at a UDP socket here (p50/p99);
* CPU (% of one core) of the bridge and of each browser process, from /proc, and the
  bridge's garbage-collection pauses;
* resident memory of the bridge and the browser at start and at the end of ``soak`` (the
  median of the first and of the last minute's readings): RSS as asked, and the private
  memory (USS) of the browser, which is where a leak of its own shows (its processes share
  many pages).

Without a virtual camera device (this box) the frames go to a stand-in backend that
copies each one into memory, as a v4l2loopback write does: the rest is the real path.
"""
from __future__ import annotations

import gc
import json
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..protocols.vmc_decode import SenderTime, decode_packet
from .run import Bridge, RunOptions
from .status import StatusLine


@dataclass
class CaptureBenchOptions:
    seconds: float = 60.0            # the measured window, after warm-up
    soak: float = 600.0              # total run for the memory figure (>= seconds)
    size: tuple[int, int] = (1280, 720)
    fps: float = 30.0
    browser: str | None = None
    json: bool = False
    threads: int = 1                 # inference threads, as `run --threads`


class MemoryCamera:
    """pyvirtualcam backend standing in for a device: each frame is copied, as a write() to
    v4l2loopback copies it. Registered only when no real device opens."""

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        self._buf: np.ndarray | None = None

    def send(self, frame: np.ndarray) -> None:
        if self._buf is None or self._buf.shape != frame.shape:
            self._buf = np.empty_like(frame)
        np.copyto(self._buf, frame)

    def close(self) -> None:
        self._buf = None

    def device(self) -> str:
        return "memory (no device here)"

    def native_fourcc(self):
        return None


class TimedSource:
    """Wraps the bridge's source: remembers when each frame index was handed over."""

    def __init__(self, source):
        self._source = source
        self.read_at: dict[int, float] = {}
        self.name = source.name
        self.independent_frames = source.independent_frames

    def __iter__(self):
        for frame in self._source:
            self.read_at[frame.index] = time.monotonic()
            if len(self.read_at) > 4096:
                for k in sorted(self.read_at)[:2048]:
                    del self.read_at[k]
            yield frame

    def close(self) -> None:
        self._source.close()


_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)     # Linux; Python does not name it


def _receive_vmc(conn) -> None:
    """In a process of its own (as VSeeFace would be): note when each bundle's /VMC/Ext/T
    arrives. Sends back the port, then, when asked, every (sender time, arrival, woken) triple:
    arrival is the kernel's receive timestamp (the moment the datagram reached this socket),
    woken when this process got to read it, both CLOCK_MONOTONIC (the same clock in every
    process). The gap between them is this process's own wait for a CPU, not the bridge's."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    if sys.platform.startswith("linux"):
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.settimeout(0.05)
    conn.send(sock.getsockname()[1])
    seen: list[tuple[float, float, float]] = []
    while not conn.poll():
        try:
            data, anc, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(16))
        except socket.timeout:
            continue
        now = time.monotonic()
        arrived = now
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(raw) >= 16:
                sec, nsec = struct.unpack("qq", raw[:16])
                arrived = sec + nsec * 1e-9 - (time.time() - time.monotonic())
        for m in decode_packet(data).messages:
            if isinstance(m, SenderTime):
                seen.append((m.t, min(arrived, now), now))
    conn.recv()
    conn.send(seen)
    sock.close()


class GcPauses:
    """The bridge's garbage-collection pauses per generation while measuring: a full
    collection stops the tracker thread as long as it runs (23–32 ms before ``gc.freeze``)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._t = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._t) * 1e3)

    def __enter__(self) -> "GcPauses":
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self)

    def summary(self) -> dict[str, dict[str, float]]:
        return {f"gen{g}": {"n": len(v), "max_ms": round(max(v, default=0.0), 2)} for g, v in self.pauses.items()}


class VmcLatency:
    """Frame → VMC latency measured outside the bridge: a receiver process notes arrivals,
    ``TimedSource`` noted when each frame was handed over; the frame is ``round(t × fps)``."""

    def __init__(self, fps: float):
        import multiprocessing as mp

        self.fps = fps
        self.source: TimedSource | None = None      # set once the bridge has opened its source
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_receive_vmc, args=(child,), name="vmc-receiver", daemon=True)
        self._proc.start()
        if not self._conn.poll(30):
            self._proc.kill()
            raise RuntimeError("the VMC receiver process did not start")
        self.port = self._conn.recv()

    def latencies(self, t0: float, t1: float) -> tuple[list[float], list[float]]:
        """For the frames handed over between ``t0`` and ``t1`` (stops the receiver): milliseconds
        until the bundle reached the receiver's socket, and until the receiver woke to read it."""
        self._conn.send("stop")
        seen = self._conn.recv() if self._conn.poll(10) else []
        read_at = self.source.read_at if self.source is not None else {}
        arrived_ms, woken_ms = [], []
        for t, arrived, woken in seen:
            read = read_at.get(int(round(t * self.fps)))
            if read is not None and t0 <= read <= t1:
                arrived_ms.append((arrived - read) * 1000)
                woken_ms.append((woken - read) * 1000)
        return arrived_ms, woken_ms

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send("stop")
            except OSError:
                pass
            self._proc.join(2)
            if self._proc.is_alive():
                self._proc.kill()


# ---- /proc figures (Linux); elsewhere the rows say n/a ------------------------------------------

def _proc_stat(pid: int) -> tuple[float, int] | None:
    """(CPU seconds used, process group) of ``pid``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, int(fields[2])


def _memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, private) in MB. Summed over Chromium's processes RSS counts every shared page once
    per process (libraries, the zygote's pages, shared memory between renderer and GPU
    process), and a process that starts late adds its whole RSS though it shares most of it;
    their private pages (USS) are what the browser holds alone, where a leak of its own shows.
    For the bridge, one process, RSS is the measure: its private share moves whenever another
    process mapping the same libraries starts or ends."""
    rss = private = 0.0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith(("Private_Clean:", "Private_Dirty:")):
                private += int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, private


def _browser_processes(pgid: int | None) -> dict[int, str]:
    """pid → Chromium process type (browser, gpu-process, renderer, utility, zygote …)."""
    out = {}
    if pgid is None:
        return out
    for d in Path("/proc").glob("[0-9]*"):
        st = _proc_stat(int(d.name))
        if st is None or st[1] != pgid:
            continue
        try:   # Chromium rewrites its children's titles: arguments end up space-separated
            args = (d / "cmdline").read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        kind = next((a.split(b"=", 1)[1].decode() for a in args if a.startswith(b"--type=")), "browser")
        sub = next((a.split(b"=", 1)[1].decode().split(".")[-1] for a in args
                    if a.startswith(b"--utility-sub-type=")), "")
        out[int(d.name)] = f"{kind}:{sub}" if sub else kind
    return out


@dataclass
class Snapshot:
    t: float
    cpu: dict[str, float] = field(default_factory=dict)       # process label → CPU seconds
    rss: dict[str, float] = field(default_factory=dict)       # "bridge" / "browser" → MB
    uss: dict[str, float] = field(default_factory=dict)
    kinds: list[str] = field(default_factory=list)            # the browser's processes


def snapshot(pgid: int | None) -> Snapshot:
    snap = Snapshot(time.monotonic())
    me = _proc_stat(os.getpid())
    if me is not None:
        snap.cpu["bridge"] = me[0]
    snap.rss["bridge"], snap.uss["bridge"] = _memory_mb(os.getpid())
    snap.rss["browser"] = snap.uss["browser"] = 0.0
    for pid, kind in _browser_processes(pgid).items():
        st = _proc_stat(pid)
        if st is not None:
            snap.cpu[f"browser {kind}"] = snap.cpu.get(f"browser {kind}", 0.0) + st[0]
        rss, uss = _memory_mb(pid)
        snap.rss["browser"] += rss
        snap.uss["browser"] += uss
        snap.kinds.append(kind)
    return snap


# Memory is read every MEMORY_EVERY seconds; "at start" and "at the end" are the medians of the
# readings in the first and in the last MEMORY_WINDOW seconds. A single reading lands anywhere
# on the browser's garbage-collection sawtooth (±10 MB in the renderer here) and on the
# bridge's frame buffers (±5 MB): growth is the trend between the two minutes, not that noise.
MEMORY_EVERY = 10.0
MEMORY_WINDOW = 60.0


def _memory_median(snaps: list[Snapshot]) -> dict[str, dict[str, float]]:
    return {key: {k: round(float(np.median([getattr(s, key)[k] for s in snaps])), 1)
                  for k in getattr(snaps[0], key)} for key in ("rss", "uss")}


def cpu_percent(a: Snapshot, b: Snapshot) -> dict[str, float]:
    dt = max(b.t - a.t, 1e-6)
    return {k: round(100 * (b.cpu[k] - a.cpu.get(k, 0.0)) / dt, 1) for k in b.cpu}


# ---- the run ------------------------------------------------------------------------------------

def _device_backend() -> str | None:
    """None when a real virtual camera opens; else register and name the stand-in."""
    import pyvirtualcam

    try:
        pyvirtualcam.Camera(64, 48, 30, fmt=pyvirtualcam.PixelFormat.I420).close()
        return None
    except Exception:  # noqa: BLE001 - any backend failure means: no device here
        pyvirtualcam.register_backend("memory", MemoryCamera)
        return "memory"


def bench_capture(opts: CaptureBenchOptions, say=print) -> dict:
    backend = _device_backend()
    messages: list[str] = []
    status = StatusLine(interval=3600)
    status.message = messages.append                 # type: ignore[method-assign]
    vmc = VmcLatency(30.0)
    run = RunOptions(source="demo", vmc=f"127.0.0.1:{vmc.port}", page=False, http_port=0, vcam=True,
                     vcam_size=opts.size, vcam_fps=opts.fps, vcam_backend=backend, browser=opts.browser,
                     threads=opts.threads)
    bridge = Bridge(run, status)
    if bridge.capture is None:
        bridge.stop()
        vmc.close()
        raise RuntimeError("; ".join(messages) or "the virtual camera did not start")
    demo = bridge.source
    bridge.source = vmc.source = TimedSource(bridge.source)    # before start: nothing has read it yet
    cam, sink = bridge.capture.camera, bridge.capture.sink
    result: dict = {"size": f"{opts.size[0]}x{opts.size[1]}", "camera": cam.name, "fps_target": opts.fps}
    bridge.start()
    try:
        t_start = time.monotonic()
        while cam.fresh < 10 and time.monotonic() - t_start < 90:
            time.sleep(0.2)
        if cam.fresh < 10:
            raise RuntimeError("the page delivered no frames in 90 s: " + "; ".join(messages))
        result["first_frame_s"] = round(time.monotonic() - t_start, 1)
        time.sleep(3.0)                              # shaders compiled, caches warm
        loop = getattr(demo, "loop_frames", None)
        if loop:      # the demo's first pass draws every frame (~7 ms); measure it replaying, as it runs
            until = time.monotonic() + 2 * loop / opts.fps + 10
            while demo.cached < loop and time.monotonic() < until:
                time.sleep(0.5)
            result["demo_loop_cached"] = demo.cached >= loop
        a = snapshot(bridge.capture.browser.pid)
        memory = [a]

        def wait(seconds: float) -> Snapshot:
            """Sleep, reading the processes' memory every MEMORY_EVERY seconds; the last reading."""
            until = time.monotonic() + seconds
            while (left := until - time.monotonic()) > 0:
                time.sleep(min(MEMORY_EVERY, left))
                memory.append(snapshot(bridge.capture.browser.pid))
            return memory[-1]

        sent0, fresh0, frames0 = cam.sent, cam.fresh, bridge.summary.frames
        say(f"measuring {opts.seconds:.0f} s of capture + publish at {result['size']} with live tracking …")
        with GcPauses() as pauses:
            b = wait(opts.seconds)
        dt = b.t - a.t
        samples, woken = vmc.latencies(a.t, b.t - 0.2)
        lat = np.array(samples) if samples else np.array([np.nan])
        late = np.array(woken) if woken else np.array([np.nan])
        first = _memory_median([m for m in memory if m.t - a.t <= MEMORY_WINDOW])
        result.update({
            "seconds": round(dt, 1),
            "camera_fps": round((cam.sent - sent0) / dt, 1),
            "new_frame_fps": round((cam.fresh - fresh0) / dt, 1),
            "tracking_fps": round((bridge.summary.frames - frames0) / dt, 1),
            "tracking_ms": round(bridge.track_ms, 2),
            "vmc_latency_ms": {"p50": round(float(np.percentile(lat, 50)), 2),
                               "p99": round(float(np.percentile(lat, 99)), 2), "n": len(samples)},
            "vmc_read_ms": {"p50": round(float(np.percentile(late, 50)), 2),
                            "p99": round(float(np.percentile(late, 99)), 2)},
            "cpu_percent": cpu_percent(a, b),
            "page": dict(sink.page_stats),
            "rss_mb_start": first["rss"], "uss_mb_start": first["uss"],
            "browser_restarts": bridge.capture.browser.restarts,
            "gc_pauses": pauses.summary(),
        })
        say(format_result(result))
        while (left := opts.soak - (time.monotonic() - a.t)) > 0:
            s = wait(min(60.0, left))
            say(f"  after {s.t - a.t:4.0f} s: RSS bridge {s.rss['bridge']:.1f} MB, browser {s.rss['browser']:.1f} MB "
                f"(USS {s.uss['browser']:.1f} MB, {len(s.kinds)} processes), "
                f"camera {cam.rate:.1f} fps ({cam.fresh_rate:.1f} new)")
        end = memory[-1]
        last = _memory_median([m for m in memory if end.t - m.t <= MEMORY_WINDOW])
        result["soak_s"] = round(end.t - a.t)
        result["rss_mb_end"], result["uss_mb_end"] = last["rss"], last["uss"]
        for key in ("rss", "uss"):
            result[f"{key}_growth_mb"] = {k: round(last[key][k] - first[key].get(k, 0.0), 1) for k in last[key]}
        result["browser_processes"] = {"start": sorted(a.kinds), "end": sorted(end.kinds)}
        result["browser_restarts"] = bridge.capture.browser.restarts
        heap = bridge.capture.heap
        result["heap_trims"] = {"n": heap.trims, "longest_ms": round(heap.longest_ms, 2), "period_s": heap.period}
    finally:
        bridge.stop_event.set()
        bridge.stop()
        vmc.close()
    return result


def format_result(r: dict) -> str:
    page = r.get("page", {})
    cpu = r.get("cpu_percent", {})
    lines = [
        f"virtual camera ({r['camera']}) {r['size']}, {r['seconds']:.0f} s, demo tracked live:",
        f"  camera frames   {r['camera_fps']:5.1f} fps published (target {r['fps_target']:g}; repeats fill in)",
        f"  new frames      {r['new_frame_fps']:5.1f} fps from the page (goal >= 30)",
        f"  tracking        {r['tracking_fps']:5.1f} fps, {r['tracking_ms']:.2f} ms a frame",
        "  GC pauses       " + ", ".join(f"{g}: {v['n']} (longest {v['max_ms']:.1f} ms)"
                                      for g, v in r.get("gc_pauses", {}).items()),
        f"  frame -> VMC    p50 {r['vmc_latency_ms']['p50']:.2f} ms, p99 {r['vmc_latency_ms']['p99']:.2f} ms "
        f"(n={r['vmc_latency_ms']['n']}; goal p99 <= 10 ms); read by the receiver: "
        f"p50 {r['vmc_read_ms']['p50']:.2f}, p99 {r['vmc_read_ms']['p99']:.2f} ms",
        "  CPU (% of one core): " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
        + f"; total {sum(cpu.values()):.0f} of {100 * (os.cpu_count() or 1)}",
    ]
    if page:
        lines.append(f"  page            draws {page.get('fps', 0):.1f} fps; draw call {page.get('drawMs', 0):.1f} ms, "
                     f"submit → frame read back (GPU draw, I420 pack) {page.get('packMs', 0):.1f} ms; "
                     f"outline {'on' if page.get('outline') else 'off'}; {page.get('gl', '?')[:60]}")
    rs, ps = r.get("rss_mb_start", {}), r.get("uss_mb_start", {})
    lines.append(f"  RSS, 1st minute bridge {rs.get('bridge', 0):.1f} MB, browser {rs.get('browser', 0):.1f} MB "
                 f"(its private pages: {ps.get('browser', 0):.1f} MB)")
    if "rss_mb_end" in r:
        re_, g, pe, pg = r["rss_mb_end"], r["rss_growth_mb"], r["uss_mb_end"], r["uss_growth_mb"]
        lines.append(f"  RSS, last min.  bridge {re_['bridge']:.1f} MB ({g['bridge']:+.1f}), "
                     f"browser {re_['browser']:.1f} MB ({g['browser']:+.1f}) after {r['soak_s']} s; goal growth <= 10 MB")
        lines.append(f"  browser private pages, last min. {pe['browser']:.1f} MB ({pg['browser']:+.1f})")
        if "heap_trims" in r:
            t = r["heap_trims"]
            lines.append(f"  heap trims      {t['n']}, longest {t['longest_ms']:.1f} ms (the free pages inside the "
                         f"bridge's heap handed back every {t['period_s']:g} s)")
        procs = r.get("browser_processes", {})
        came = sorted(set(procs.get("end", [])) - set(procs.get("start", [])))
        went = sorted(set(procs.get("start", [])) - set(procs.get("end", [])))
        if came or went:
            lines.append(f"  browser processes started during the soak: {', '.join(came) or 'none'}; "
                         f"ended: {', '.join(went) or 'none'}")
    return "\n".join(lines)


def main_bench_capture(opts: CaptureBenchOptions) -> int:
    say = (lambda s: print(s, file=sys.stderr)) if opts.json else print
    try:
        result = bench_capture(opts, say)
    except RuntimeError as e:
        print(f"openvtuber bench --capture: {e}", file=sys.stderr)
        return 1
    if opts.json:
        print(json.dumps(result))
    else:
        print(format_result(result))
    return 0

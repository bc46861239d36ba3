"""``openvtuber run``: the long-running bridge.

A tracker thread reads the source, runs ``FaceTracker`` (or replays a recording), rigs
each ``FaceState`` into an ``AvatarPose``, merges what a ``--vmc-in`` performer sends,
and publishes to the outputs (VMC now; the page and the virtual camera plug in the same
way). The main thread only prints the status line and waits for Ctrl-C, so stopping is
quick whatever an output is doing.
"""
from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass, field

from ..tracking.pipeline import FacePipeline
from ..tracking.sources import open_source
from ..tracking.tracker import FaceTracker
from .outputs import OutputHub
from .vmc_in import merge
from .page_settings import PageSettings
from .replay import ReplaySource
from .rig import RigOptions, rig
from .status import StatusLine
from .track import CALIBRATION_FRAMES, load_calibration, saving_calibration
from .vmc_out import VmcSender, parse_target


DEFAULT_VMC = "127.0.0.1:39539"


@dataclass
class RunOptions:
    source: str = "auto"
    vmc: str | None = DEFAULT_VMC                 # None: no VMC output
    frames: int | None = None
    vmc_in: int | None = None
    blendshapes: str = "vrm0"
    runtime: str = "auto"
    threads: int = 1
    realtime: bool | None = None
    calibrate: bool = False
    rig: RigOptions = field(default_factory=RigOptions)
    page: bool = False                            # serve the three.js page + /ws
    http_port: int = 8741                         # server.DEFAULT_HTTP_PORT
    host: str = "127.0.0.1"
    model: str | None = None                      # None: the bundled avatar
    vcam: bool = False                            # the virtual camera (the CLI turns it on by default)
    vcam_size: tuple[int, int] = (1280, 720)
    vcam_fps: float = 30.0
    vcam_background: str = "#00b140"             # a colour, or an image file
    vcam_backend: str | None = None              # pyvirtualcam backend (None: the first that works)
    vcam_device: str | None = None
    vcam_outline: str = "auto"                   # auto: off on software GL (40% of its frame)
    browser: str | None = None                    # None: find Chrome/Chromium/Edge


@dataclass
class RunSummary:
    frames: int = 0
    found: int = 0
    interrupted: bool = False
    error: str = ""

    def line(self) -> str:
        s = f"ran {self.frames} frames, face found on {self.found}"
        if self.error:
            s += f"; tracking stopped: {self.error}"
        return s + (" (stopped)" if self.interrupted else "")


class Bridge:
    """Wires source → tracker → rig → outputs; ``start``/``stop`` from any thread."""

    def __init__(self, opts: RunOptions, status: StatusLine):
        self.opts = opts
        self.status = status
        self.stop_event = threading.Event()
        self.summary = RunSummary()
        self.hub = OutputHub()
        self.receiver = None
        self.tracker: FaceTracker | None = None
        self.fps = 0.0
        self.track_ms = 0.0                       # tracking time per frame (moving average)
        self.vmc_error = ""                       # the panel's last VMC target, if it was refused
        self.last_found = False
        self.page = None
        self.page_settings = None
        self.capture = None                       # vcam_path.CapturePath when the virtual camera runs
        self._calibrate_request = threading.Event()
        # everything that can fail on bad user input fails here, before any thread starts
        if opts.page or opts.vcam:                # port taken / model missing: fail before a camera turns on
            from .server import PageServer

            self.page = PageServer(opts.model, opts.host, opts.http_port, on_command=self._command)
            saved = PageSettings.load(status.message)
            # the panel's last choice survives a restart; an explicit --no-mirror still wins
            opts.rig.mirror = opts.rig.mirror and saved.mirror
            self.page_settings = PageSettings(opts.rig.mirror, saved.smoothing, saved.model)
            self.page.settings.update(mirror=opts.rig.mirror, smoothing=saved.smoothing)
            if saved.vmc and opts.vmc == DEFAULT_VMC:     # the panel's target, unless the command line says
                try:
                    parse_target(saved.vmc)
                    opts.vmc = saved.vmc
                except ValueError as e:
                    status.message(f"the VMC target saved by the panel is ignored: {e}")
            self.page_settings.vmc = saved.vmc
            if opts.model is None and saved.model != "bundled" and not self.page.select_model(saved.model):
                status.message(f"the model {saved.model!r} chosen last time is gone: showing the bundled avatar")
                self.page_settings.model = "bundled"
            self.page.start()
            missing = self.page.model_report.get("missing_required_bones", []) if self.page.model_report else []
            if missing:
                status.message(f"model {self.page.model.name} lacks the bones {', '.join(missing)}: "
                               "those parts of the pose are not shown")
        held: list[str] = []                      # the camera's lines wait until everything has opened
        try:
            self._open_outputs(opts)
            if opts.vcam:                         # the device first: without one, no browser is started
                from .vcam_path import open_capture

                self.capture = open_capture(opts, held.append)
                if self.capture is not None:      # the browser loads while the networks load
                    self.capture.attach(self.page)
                    self.capture.start()
                elif not opts.page:               # the server was only for the camera's page
                    self.page.close()
                    self.page = None
            self._open_source(opts, status)
        except BaseException:                       # nothing half-open may outlive a failed start
            if self.capture is not None:
                self.capture.close()
            if self.page is not None:
                self.page.close()
            if getattr(self, "vmc", None) is not None:
                self.vmc.close()
            if self.receiver is not None:
                self.receiver.close()
            raise
        for line in held:
            status.message(line)
        if self.capture is not None:
            self.capture.on_message = status.message
        if self.page is not None:
            from .page_out import PageOutput

            self.hub.add(PageOutput(self.page))
            if opts.page:
                status.message(f"page: {self.page.url}" + ("   (token required: share only with your own devices)"
                                                            if self.page.token else ""))
        self.thread = threading.Thread(target=self._loop, name="tracker", daemon=True)

    def _command(self, cmd) -> None:
        """A panel command from the page (runs on the server's thread: only flags are set here)."""
        if cmd.cmd == "calibrate" and self.tracker is not None:
            self.status.message("calibrating: look at the camera with a relaxed face for a second")
            self._calibrate_request.set()         # the tracker thread starts it between frames
        elif cmd.cmd == "mirror":
            self.opts.rig.mirror = bool(cmd.value)
        elif cmd.cmd == "vmc":                    # resolving a host name may take a moment: not here
            threading.Thread(target=self._retarget_vmc, args=(str(cmd.value),), name="vmc-retarget",
                             daemon=True).start()
            return
        # "smoothing" is the page's own display easing; the server keeps it for every open panel
        if cmd.cmd in ("mirror", "smoothing", "model") and self.page_settings is not None \
                and getattr(self.page_settings, cmd.cmd) != cmd.value:
            setattr(self.page_settings, cmd.cmd, cmd.value)
            self.page_settings.save()

    def _retarget_vmc(self, text: str) -> None:
        """The panel's VMC field: send there from now on (and next time); a bad value is shown
        in the panel, and the old target stays."""
        try:
            host, port = parse_target(text)
            if self.vmc is None:
                self.vmc = VmcSender(host, port, self.opts.blendshapes)
                self.hub.add(self.vmc)
            else:
                self.vmc.retarget(host, port)
        except (ValueError, OSError) as e:
            self.vmc_error = str(e).replace("--vmc ", "", 1)
            self._send_status()
            return
        self.vmc_error = ""
        self.status.message(f"VMC now to {host}:{port} (set in the page)")
        if self.page_settings is not None:
            self.page_settings.vmc = f"{host}:{port}"
            self.page_settings.save()
        self._send_status()

    def panel_status(self) -> dict:
        """What the page's panel shows: tracker rate and time, face, where VMC goes, the camera."""
        return {"source": self.source.name if hasattr(self, "source") else "", "fps": round(self.fps, 1),
                "track_ms": round(self.track_ms, 2), "found": bool(self.last_found),
                "vmc": self.vmc.name_shown if getattr(self, "vmc", None) is not None else None,
                "vmc_error": self.vmc_error,
                "vcam": self.capture.status() if self.capture is not None else None}

    def _send_status(self) -> None:
        if self.page is not None:
            self.page.send_status(self.panel_status())

    def _open_outputs(self, opts: RunOptions) -> None:
        """VMC out and in: quick, and where a typo in a flag shows first."""
        if opts.vmc is not None:
            host, port = parse_target(opts.vmc)
            self.vmc = VmcSender(host, port, opts.blendshapes)
        else:
            self.vmc = None
        if opts.vmc_in is not None:
            from .vmc_in import VmcReceiver

            self.receiver = VmcReceiver(port=opts.vmc_in)
        if self.vmc is not None:
            self.hub.add(self.vmc)

    def _open_source(self, opts: RunOptions, status: StatusLine) -> None:
        """The networks, then the source (a camera turns on last)."""
        if opts.source.startswith("replay:"):
            self.source = ReplaySource(opts.source[len("replay:"):], realtime=opts.realtime is not False)
        else:
            pipeline = FacePipeline(opts.runtime, opts.threads)   # models first: fail before a camera turns on
            self.source = open_source(opts.source, realtime=opts.realtime, on_status=status.message)
            pipeline.read_stills(self.source.independent_frames)
            self.tracker = FaceTracker(pipeline, calibration=load_calibration(status.message))
            if opts.calibrate:
                status.message("calibrating: look at the camera with a relaxed face for a second")
                self.tracker.calibrate(CALIBRATION_FRAMES)
                self.tracker.on_calibrated = saving_calibration(status.message)

    def _states(self):
        if self.tracker is None:                  # replay: the recording holds the states
            yield from self.source
            return
        stills = self.source.independent_frames
        for frame in self.source:
            if self._calibrate_request.is_set():        # asked by the page, on the server's thread
                self._calibrate_request.clear()
                self.tracker.on_calibrated = saving_calibration(self.status.message)
                self.tracker.calibrate(CALIBRATION_FRAMES)
            t0 = time.perf_counter()
            state = self.tracker.process(frame, stills)
            ms = (time.perf_counter() - t0) * 1000
            self.track_ms = 0.9 * self.track_ms + 0.1 * ms if self.track_ms else ms
            yield state

    def _loop(self) -> None:
        last = last_status = time.monotonic()
        try:
            for state in self._states():
                calibrated = self.tracker.calibration.calibrated if self.tracker else False
                pose = rig(state, self.opts.rig, calibrated)
                if self.receiver is not None:
                    pose = merge(pose, self.receiver.snapshot())
                self.hub.publish(pose)
                self.summary.frames += 1
                self.summary.found += state.found
                self.last_found = state.found
                now = time.monotonic()
                self.fps = 0.9 * self.fps + 0.1 / max(now - last, 1e-6) if self.fps else 1.0 / max(now - last, 1e-6)
                last = now
                if now - last_status >= 1.0:          # the page's panel, once a second
                    last_status = now
                    self._send_status()
                if self.stop_event.is_set() or (self.opts.frames and self.summary.frames >= self.opts.frames):
                    break
        except Exception as e:  # the source broke mid-run: report it in the summary, stop cleanly
            self.summary.error = f"{type(e).__name__}: {e}"
        finally:
            self.stop_event.set()
            self.source.close()                     # (thread-safe: waits for a read in flight)

    def start(self) -> None:
        # Everything loaded so far (models, modules, the server) lives as long as the bridge:
        # moved out of the collector's sight, a full collection no longer walks its ~69,000
        # objects. Measured with `bench --capture`: a full collection stopped the tracker for
        # 23–32 ms (a hitch in the avatar's motion every minute or so), frozen for 2–3 ms.
        gc.collect()
        gc.freeze()
        self.thread.start()

    def status_text(self) -> str:
        parts = [self.source.name, f"{self.fps:5.1f} fps"]
        if self.tracker is not None:
            parts.append(f"face {'yes' if self.last_found else 'no '}")
            parts.append(f"{self.tracker.pipeline.runtime} {self.track_ms:4.1f} ms")
        hub = self.hub.status()
        if hub:
            parts.append(hub)
        if self.receiver is not None:
            parts.append(self.receiver.status())
        if self.capture is not None:
            parts.append(self.capture.status())
        parts.append(f"frame {self.summary.frames}")
        return " | ".join(parts)

    def stop(self) -> None:
        self.stop_event.set()
        self.source.close()
        if self.capture is not None:              # camera, then browser: no frame of a closing page
            self.capture.close()
        self.thread.join(1.5)
        self.hub.close(timeout=0.5)
        if self.receiver is not None:
            self.receiver.close()


def run_bridge(opts: RunOptions, status: StatusLine | None = None) -> RunSummary:
    status = status or StatusLine()
    bridge = Bridge(opts, status)
    bridge.start()
    try:
        while not bridge.stop_event.wait(0.1):
            status.update(bridge.status_text())
    except KeyboardInterrupt:
        bridge.summary.interrupted = True
    finally:
        bridge.stop()
        status.end()
    return bridge.summary

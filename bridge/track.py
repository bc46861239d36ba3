"""``openvtuber track``: run the face pipeline on a source, print a live status line,
optionally write the ``--jsonl`` record and show a preview window."""
from __future__ import annotations

import contextlib
import statistics
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from ..tracking.calibration import Calibration
from ..tracking.frames import BadFrame
from ..tracking.pipeline import FaceObservation, FacePipeline
from ..tracking.sources import open_source
from ..tracking.tracker import FaceTracker
from .preview import Preview, PreviewUnavailable
from .records import JsonlWriter, make_record
from .status import StatusLine


@dataclass
class TrackOptions:
    source: str = "auto"
    jsonl: str | None = None
    frames: int | None = None
    preview: bool = False
    runtime: str = "auto"
    threads: int = 1
    loop: bool = False
    landmarks: bool = False
    realtime: bool | None = None
    calibrate: bool = False


@dataclass
class TrackSummary:
    frames: int = 0
    found: int = 0
    dropped: int = 0
    skipped: int = 0
    detector_runs: int = 0
    median_ms: float = 0.0
    interrupted: bool = False

    def line(self) -> str:
        pct = 100.0 * self.found / self.frames if self.frames else 0.0
        s = (f"tracked {self.frames} frames: face found on {self.found} ({pct:.1f}%), "
             f"detector ran on {self.detector_runs}, median {self.median_ms:.2f} ms/frame")
        if self.dropped:
            s += f", {self.dropped} bad frames dropped"
        if self.skipped:
            s += f", {self.skipped} files skipped"
        return s + (" (stopped)" if self.interrupted else "")


class _Rate:
    """Frames per second over the last second or so (exponential average of intervals)."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.interval = 0.0

    def tick(self) -> float:
        now = time.monotonic()
        if self.last is not None:
            dt = now - self.last
            self.interval = dt if self.interval == 0 else 0.9 * self.interval + 0.1 * dt
        self.last = now
        return 1.0 / self.interval if self.interval > 0 else 0.0


CALIBRATION_FRAMES = 30          # ≈ 1 s of a neutral face at 30 fps


def load_calibration(warn) -> Calibration:  # noqa: ANN001 - a message callback
    """The saved calibration, or the defaults (with one line) when the file is damaged."""
    try:
        return Calibration.load()
    except ValueError as e:
        warn(f"{e}; using the defaults")
        return Calibration.default()


def saving_calibration(say):  # noqa: ANN001 - a message callback
    """``on_calibrated`` callback: save, and say where; a folder that cannot be written only
    costs the saving, never the session."""
    def _saved(cal: Calibration) -> None:
        try:
            say(f"calibrated on {cal.frames} frames, saved to {cal.save()}")
        except OSError as e:
            say(f"calibrated on {cal.frames} frames (used now, not saved: {e.strerror or e})")
    return _saved


def _open_output(path: str | None) -> contextlib.AbstractContextManager[TextIO | None]:
    if path is None:
        return contextlib.nullcontext(None)
    if path == "-":
        return contextlib.nullcontext(sys.stdout)
    return open(path, "w", encoding="utf-8")


def run_track(opts: TrackOptions, status: StatusLine | None = None) -> TrackSummary:
    """Track until the source ends, ``frames`` are done, or Ctrl-C. Raises SourceError etc.
    for problems found at start (the CLI turns them into one line)."""
    status = status or StatusLine()
    pipeline = FacePipeline(opts.runtime, opts.threads)     # models first: fail before a camera turns on
    source = open_source(opts.source, loop=opts.loop, realtime=opts.realtime, on_status=status.message)
    pipeline.read_stills(source.independent_frames)
    tracker = FaceTracker(pipeline, calibration=load_calibration(status.message))
    stills = source.independent_frames
    if opts.calibrate:
        if stills:
            status.message("--calibrate needs a camera, video or demo source, not still images: skipped")
        else:
            status.message("calibrating: look at the camera with a relaxed face for a second")
            tracker.calibrate(CALIBRATION_FRAMES)
            tracker.on_calibrated = saving_calibration(status.message)
    preview = None
    if opts.preview:
        try:
            preview = Preview()
        except PreviewUnavailable as e:
            status.message(str(e))
    summary = TrackSummary()
    times: list[float] = []
    rate = _Rate()
    shown_errors: set[str] = set()
    try:
        with _open_output(opts.jsonl) as out:
            writer = JsonlWriter(out) if out is not None else None
            for frame in source:
                obs: FaceObservation | None
                try:
                    obs = pipeline.process(frame.image)
                except BadFrame as e:
                    obs = None
                    summary.dropped += 1
                    if str(e) not in shown_errors and len(shown_errors) < 5:
                        shown_errors.add(str(e))
                        status.message(f"dropped frame {frame.index}: {e}")
                summary.frames += 1
                if obs is not None:
                    times.append(obs.times.total)
                state = tracker.update(obs or FaceObservation(False), frame.t, frame.index, frame.path, stills)
                summary.found += state.found
                if writer:
                    writer.write(make_record(frame, state, opts.landmarks))
                fps = rate.tick()
                ms = obs.times.total if obs is not None else 0.0
                face = "yes" if state.found else "no "
                text = (f"{source.name} | {fps:5.1f} fps | {ms:4.1f} ms/frame | face {face} | "
                        f"yaw {state.yaw:+5.1f} pitch {state.pitch:+5.1f} roll {state.roll:+5.1f} | "
                        f"{pipeline.runtime} | frame {frame.index}")
                if tracker.calibrating:
                    text += " | calibrating"
                if summary.dropped:
                    text += f" | dropped {summary.dropped}"
                status.update(text)
                if preview is not None and not preview.show(frame.image, obs, state, tracker, text):
                    break
                if opts.frames is not None and summary.frames >= opts.frames:
                    break
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        source.close()
        if preview is not None:
            preview.close()
        status.end()
    if tracker.calibrating:
        status.message("calibration incomplete: it needs about a second of a face; nothing was saved")
    for msg in source.stats.messages[:5]:
        status.message(msg)
    summary.skipped = source.stats.skipped
    summary.detector_runs = pipeline.detector_runs
    summary.median_ms = statistics.median(times) if times else 0.0
    return summary

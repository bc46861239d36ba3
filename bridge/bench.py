"""``openvtuber bench``: per-stage latency of the face pipeline, one thread.

Frames are decoded (or rendered) into memory before timing, so only tracking is
measured. Two modes per runtime: *tracking* (a face was found on the previous frame:
landmarks + two irises) and *detection* (the face was lost: detector first). The BlazeFace
decode is timed separately for the Cython kernel and the numpy fallback.
"""
from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass

import numpy as np

from ..models import decode as decode_mod
from ..models.anchors import INPUT_SIZE, blazeface_anchors
from ..models.runtime import RUNTIMES, litert_available, resolve_runtime
from ..tracking.pipeline import FacePipeline
from ..tracking.frames import BadFrame, normalize_frame
from ..tracking.sources import SourceError, open_source
from ..tracking.tracker import FaceTracker

STAGES = ("detect", "landmarks", "iris", "total", "solvers")


@dataclass
class BenchOptions:
    source: str = "demo"
    frames: int = 300
    runtime: str = "auto"
    json: bool = False
    warmup: int = 10


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"median": float("nan"), "p90": float("nan"), "p99": float("nan")}
    return {"median": round(float(np.median(a)), 4), "p90": round(float(np.percentile(a, 90)), 4),
            "p99": round(float(np.percentile(a, 99)), 4)}


def load_frames(source: str, n: int) -> list[np.ndarray]:
    if source == "demo":
        from ..tracking.sources.demo import DemoSource

        src = DemoSource(frames=n, loop=True, realtime=False)
    else:
        src = open_source(source, loop=True, realtime=False)
    try:
        frames = [f.image for f in itertools.islice(src, n)]
    finally:
        src.close()
    frames = [img for img in frames if _usable(img)]
    if not frames:
        raise SourceError(f"{source}: no usable frame could be read to benchmark")
    return frames


def _usable(image: np.ndarray) -> bool:
    try:
        normalize_frame(image)
    except BadFrame:
        return False
    return True


def time_mode(frames: list[np.ndarray], runtime: str, mode: str, warmup: int) -> dict:
    """Per-stage ms; ``total`` is the pipeline (pre/post-processing included), ``solvers`` the
    FaceTracker's solvers + calibration + filters on top of it."""
    pipe = FacePipeline(runtime, threads=1, tracking=(mode == "tracking"))
    tracker = FaceTracker(pipe)
    for i, img in enumerate(frames[:warmup]):
        tracker.update(pipe.process(img), i / 30.0, i)
    pipe.detector_runs = 0
    per_stage: dict[str, list[float]] = {s: [] for s in STAGES}
    found = 0
    for i, img in enumerate(frames):
        obs = pipe.process(img)
        t0 = time.perf_counter()
        tracker.update(obs, (warmup + i) / 30.0, warmup + i)
        per_stage["solvers"].append((time.perf_counter() - t0) * 1e3)
        found += obs.found
        for s in STAGES[:-1]:
            per_stage[s].append(getattr(obs.times, s))
    out = {s: percentiles(v) for s, v in per_stage.items()}
    out["found"] = found
    out["detector_runs"] = pipe.detector_runs
    return out


def time_decode(frame: np.ndarray, repeat: int = 2000) -> dict[str, dict[str, float]]:
    """Microseconds per call of each decoder on this frame's real network output."""
    import cv2

    from ..models.detector import FaceDetector
    from ..models.roi import fill_input, warp

    det = FaceDetector("auto", threads=1)
    m, *_ = det.letterbox(frame)
    x = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32)
    fill_input(warp(frame, m, INPUT_SIZE, cv2.BORDER_CONSTANT), x[0], 2.0 / 255.0, -1.0)
    boxes, scores = det.model.run(x)
    boxes = np.ascontiguousarray(boxes[0], dtype=np.float32)
    scores = np.ascontiguousarray(scores[0, :, 0], dtype=np.float32)
    anchors = blazeface_anchors()
    result = {}
    for name, fn in (("cython", decode_mod.decode_cython), ("numpy", decode_mod.decode_numpy)):
        if fn is None:
            continue
        samples = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn(boxes, scores, anchors, float(INPUT_SIZE), det.score_thresh, det.iou_thresh)
            samples.append((time.perf_counter() - t) * 1e6)
        result[name] = percentiles(samples)
    return result


def time_rig_and_vmc(frames: list[np.ndarray], repeat: int = 3) -> dict[str, dict[str, float]]:
    """ms per frame of the rig and of the VMC encoding (default VRM 0.x set), on this clip's states."""
    from ..protocols.vmc_encode import encode_frame
    from .rig import RigOptions, rig

    tracker = FaceTracker(FacePipeline("auto", threads=1))
    states = [tracker.update(tracker.pipeline.process(img), i / 30.0, i) for i, img in enumerate(frames)]
    opts = RigOptions()
    rig_ms, enc_ms, both = [], [], []
    for _ in range(repeat):
        for st in states:
            t0 = time.perf_counter()
            pose = rig(st, opts)
            t1 = time.perf_counter()
            encode_frame(pose, st.t or 0.0)
            t2 = time.perf_counter()
            rig_ms.append((t1 - t0) * 1e3)
            enc_ms.append((t2 - t1) * 1e3)
            both.append((t2 - t0) * 1e3)
    return {"rig": percentiles(rig_ms), "vmc_encode": percentiles(enc_ms), "rig_plus_vmc": percentiles(both)}


def run_bench(opts: BenchOptions) -> dict:
    chosen = resolve_runtime(opts.runtime)
    frames = load_frames(opts.source, opts.frames)
    h, w = frames[0].shape[:2]
    runtimes = [r for r in RUNTIMES if r != "litert" or litert_available()]
    report: dict = {"runtime": chosen, "total_ms": None, "source": opts.source, "frames": len(frames),
                    "frame_size": [w, h], "threads": 1, "decoder": decode_mod.BACKEND, "runtimes": {}}
    for rt in runtimes:
        report["runtimes"][rt] = {mode: time_mode(frames, rt, mode, opts.warmup) for mode in ("tracking", "detection")}
    report["total_ms"] = report["runtimes"][chosen]["tracking"]["total"]
    report["decode_us"] = time_decode(frames[0])
    report["outputs_ms"] = time_rig_and_vmc(frames)
    return report


def format_report(r: dict) -> str:
    lines = [f"openvtuber bench: {r['frames']} frames {r['frame_size'][0]}x{r['frame_size'][1]} from {r['source']}, "
             f"one thread, decoder {r['decoder']}",
             f"{'runtime':8} {'mode':10} {'stage':10} {'median':>8} {'p90':>8} {'p99':>8}  (ms)"]
    for rt, modes in r["runtimes"].items():
        for mode, stages in modes.items():
            for s in STAGES:
                p = stages[s]
                lines.append(f"{rt:8} {mode:10} {s:10} {p['median']:8.3f} {p['p90']:8.3f} {p['p99']:8.3f}")
            lines.append(f"{'':8} {mode:10} found {stages['found']}/{r['frames']}, detector ran {stages['detector_runs']}x")
    if "litert" in r["runtimes"] and "opencv" in r["runtimes"]:
        ratio = r["runtimes"]["opencv"]["tracking"]["total"]["median"] / r["runtimes"]["litert"]["tracking"]["total"]["median"]
        lines.append(f"opencv/litert tracking total median ratio: {ratio:.2f}")
    d = r["decode_us"]
    lines.append("decode (µs/call): " + ", ".join(f"{k} median {v['median']:.1f} p99 {v['p99']:.1f}" for k, v in d.items()))
    if "cython" in d and "numpy" in d:
        lines.append(f"numpy/cython decode median ratio: {d['numpy']['median'] / d['cython']['median']:.1f}")
    t = r["total_ms"]
    lines.append(f"{r['runtime']} tracking total: median {t['median']:.3f} ms, p90 {t['p90']:.3f}, p99 {t['p99']:.3f}")
    sv = r["runtimes"][r["runtime"]]["tracking"]["solvers"]
    lines.append(f"solvers + filters on top: median {sv['median']:.3f} ms, p99 {sv['p99']:.3f}")
    o = r["outputs_ms"]
    lines.append(f"rig median {o['rig']['median']:.3f} ms + VMC encode {o['vmc_encode']['median']:.3f} ms = "
                 f"{o['rig_plus_vmc']['median']:.3f} ms (p99 {o['rig_plus_vmc']['p99']:.3f})")
    return "\n".join(lines)


def main_bench(opts: BenchOptions) -> int:
    report = run_bench(opts)
    print(json.dumps(report) if opts.json else format_report(report))
    return 0

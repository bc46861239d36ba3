"""``openvtuber accuracy``: the tracker's figures on real faces and on the synthetic clips.

Real faces are what counts: a folder of photos with head-pose labels (laid out like the
AFLW2000-3D dev set, ``--real DIR``; by default the dev set beside this checkout when it is
there), scored as the dev set's README says: found rate and per-axis MAE over all found
photos and within ±45°. The synthetic clips check shape only (signs, blinks, stillness,
loss and return, solver cost), for a tracker calibrated on a second of neutral face first as
a user would or, with ``--uncalibrated``, for the defaults.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict
from pathlib import Path

from ..tracking import evaluation as ev
from ..tracking import real_faces as rf
from ..tracking.pipeline import FacePipeline
from ..tracking.tracker import FaceTracker

# The AFLW2000-3D dev set where the project's checkout keeps it (../shared/data, research licence).
DEV_SET = Path(__file__).resolve().parents[2] / "shared" / "data" / "aflw2000-dev"


def run_real(folder: Path) -> dict:
    """Every labelled photo of ``folder`` tracked on its own, as ``openvtuber track`` reads stills."""
    faces = rf.read_labels(folder)
    states = rf.track_photos(folder, faces, FaceTracker(FacePipeline(tracking=False, refine_stills=True)))
    report = asdict(rf.score(faces, states))
    for key in ("mae_all", "mae_within"):            # no photo found: null, not NaN, in the JSON
        report[key] = {k: (None if math.isnan(v) else v) for k, v in report[key].items()}
    return {"folder": str(folder), **report}


def run_synthetic(calibrated: bool = True) -> dict:
    make = ev.calibrated_tracker if calibrated else ev.default_tracker
    head = ev.head_accuracy(make())
    gaze = ev.gaze_accuracy(make())
    blink = ev.blink_accuracy(make())
    jitter = ev.static_jitter(make())
    loss = ev.loss_and_return(make())
    _, solver_ms = ev.run_clip(ev.head_sweep(200), make())
    return {
        "calibrated": calibrated,
        "head": asdict(head), "gaze": asdict(gaze),
        "blink": {**asdict(blink), "worst_minimum": max(blink.blink_minima)},
        "jitter": asdict(jitter), "loss": asdict(loss),
        "solver_ms_median": statistics.median(solver_ms),
    }


def format_real(r: dict) -> str:
    nan = lambda d: {k: math.nan if v is None else v for k, v in d.items()}  # noqa: E731
    report = rf.RealReport(r["photos"], r["found"], nan(r["mae_all"]), r["within"], nan(r["mae_within"]))
    return rf.format_report(report, f"real faces ({r['folder']})")


def format_synthetic(r: dict) -> str:
    h, g, b, j, lo = r["head"], r["gaze"], r["blink"], r["jitter"], r["loss"]
    f = lambda d: ", ".join(f"{k} {v:.2f}" for k, v in d.items())  # noqa: E731
    return "\n".join([
        f"synthetic clips at 30 fps ({'calibrated' if r['calibrated'] else 'uncalibrated'}): shape, not accuracy",
        f"head (600 frames, yaw ±45 pitch ±30 roll ±30): correlation {f(h['corr'])}; slope {f(h['slope'])}; "
        f"sign errors {h['sign_errors']}; found {100 * h['found']:.1f}%; MAE° {f(h['mae'])}; "
        f"translation correlation {f(h['translation_corr'])}",
        f"gaze (450 frames, ±20 yaw ±15 pitch, head ±25): correlation {f(g['corr'])}; sign errors {g['sign_errors']}; "
        f"MAE° {f(g['mae'])}",
        f"blink ({b['frames']} frames, 20 blinks + 6 winks per side): per-frame correct {100 * b['accuracy']:.1f}%, "
        f"worst blink minimum {b['worst_minimum']:.2f}, winks on the wrong eye {b['wrong_eye_winks']}, "
        f"false closures in the 25° look-down {b['false_in_look_down']}",
        f"static face, noise σ=2: angle std° {f(j['angle_std'])}; openness std {f(j['openness_std'])}",
        f"face gone 1 s: largest step {lo['max_step']:.2f}°/frame, found again after {lo['refound_after']} frames, "
        f"largest angle at the end of the loss {lo['neutral_at_end_of_loss']:.2f}°",
        f"solvers + filters: median {r['solver_ms_median']:.3f} ms/frame",
    ])


def main_accuracy(as_json: bool = False, uncalibrated: bool = False, real: str | None = None) -> int:
    """``real``: a labelled folder (only its table); without, the dev set if present and the
    synthetic clips."""
    out: dict = {}
    lines: list[str] = []
    folder = Path(real) if real else DEV_SET
    if real or folder.is_dir():
        out["real"] = run_real(folder)
        lines.append(format_real(out["real"]))
    else:
        lines.append(f"real faces: no labelled folder at {folder} (give one with --real DIR)")
    if not real:
        out["synthetic"] = run_synthetic(calibrated=not uncalibrated)
        lines.append(format_synthetic(out["synthetic"]))
    print(json.dumps(out) if as_json else "\n".join(lines))
    return 0

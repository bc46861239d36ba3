"""``openvtuber accuracy``: the solvers' figures on the synthetic clips with known answers.

Prints head/gaze MAE, blink classification, static jitter, loss-and-return behaviour and
the solver+filter cost per frame, for a calibrated tracker (a second of neutral face
first, as a user would) and, with ``--uncalibrated``, for the defaults.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict

from ..tracking import evaluation as ev


def run_accuracy(calibrated: bool = True) -> dict:
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


def format_accuracy(r: dict) -> str:
    h, g, b, j, lo = r["head"], r["gaze"], r["blink"], r["jitter"], r["loss"]
    f = lambda d: ", ".join(f"{k} {v:.2f}" for k, v in d.items())  # noqa: E731
    return "\n".join([
        f"openvtuber accuracy ({'calibrated' if r['calibrated'] else 'uncalibrated'}), synthetic clips at 30 fps",
        f"head (600 frames, yaw ±45 pitch ±30 roll ±30): MAE° {f(h['mae'])}; sign errors {h['sign_errors']}; "
        f"found {100 * h['found']:.1f}%; translation correlation {f(h['translation_corr'])}",
        f"gaze (450 frames, ±20 yaw ±15 pitch, head ±25): MAE° {f(g['mae'])}; sign errors {g['sign_errors']}",
        f"blink ({b['frames']} frames, 20 blinks + 6 winks per side): per-frame correct {100 * b['accuracy']:.1f}%, "
        f"worst blink minimum {b['worst_minimum']:.2f}, winks on the wrong eye {b['wrong_eye_winks']}, "
        f"false closures in the 25° look-down {b['false_in_look_down']}",
        f"static face, noise σ=2: angle std° {f(j['angle_std'])}; openness std {f(j['openness_std'])}",
        f"face gone 1 s: largest step {lo['max_step']:.2f}°/frame, found again after {lo['refound_after']} frames, "
        f"largest angle at the end of the loss {lo['neutral_at_end_of_loss']:.2f}°",
        f"solvers + filters: median {r['solver_ms_median']:.3f} ms/frame",
    ])


def main_accuracy(as_json: bool = False, uncalibrated: bool = False) -> int:
    report = run_accuracy(calibrated=not uncalibrated)
    print(json.dumps(report) if as_json else format_accuracy(report))
    return 0

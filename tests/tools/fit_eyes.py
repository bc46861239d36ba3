"""Measure the eye constants on real faces: the AFLW2000-3D dev set only.

Run from the repo root with the project venv:
    .venv/bin/python tests/tools/fit_eyes.py [--dev ../shared/data/aflw2000-dev]
It rewrites the ``eye_*`` and ``gaze_gain`` entries of ``tracking/solvers/response.json``
(after ``fit_head.py``: the view yaw comes from the head fit) and prints what it measured.

* ``eye_ratio_near``/``eye_ratio_far`` at ``eye_ratio_yaw``: the median lid ratio of the eye
  turned toward / away from the camera per 10° of head yaw, over the frontal median. Most
  dev-set photos show open eyes, and a median does not mind the few that do not.
* ``eye_lean``: where the far eye stops being readable: from the last yaw at which its median
  is still 0.9 of the near eye's to the first at which it is down to 0.7.
* ``eye_closed_fraction``: what a blink reads at webcam frame rates. A blink lasts 3–4 frames
  and its deepest frame is blurred, so the lid ratio seldom reaches a shut eye's (~0.1 of open);
  the median, over the blinks of the two package videos (chosen by looking, both eyes), of the
  deepest frame's ratio over the eye's open ratio. At that ratio an eye reads shut.
* ``gaze_gain``: people photographed with the head turned a little tend to look at the camera,
  so the iris offset (both eyes, neutral removed) per unit sine of head yaw is −gain; median
  over photos turned 8–30° with pitch within 20°. The iris moves on the same sphere either way,
  so pitch takes the same gain. (Sideways, a parallax of the iris against the corners would
  scale with the same sine as the look at the camera: the two cannot be told apart here, and
  the gain measured is their net.)
* ``gaze_parallax``: under the same assumption the vertical offset falls with the head's pitch by
  less than the gain; the difference is the iris standing in front of the eye corners.
* ``gaze_yaw_rise``: what is left of the vertical offset, once the look at the camera and the
  parallax are taken off, per unit sine² of head yaw (the corner line tilts on a turned head),
  median over photos turned more than 20°.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from fetch_media import media_path

from openvtuber.bridge.accuracy import DEV_SET
from openvtuber.tracking.calibration import Calibration
from openvtuber.tracking.pipeline import FacePipeline
from openvtuber.tracking.real_faces import read_labels
from openvtuber.tracking.solvers.response import RESPONSE_FILE, read_entries, write_entries
from openvtuber.tracking.sources import open_source
from openvtuber.tracking.sources.images import ImageFolderSource
from openvtuber.tracking.tracker import FaceTracker

BIN = 10.0
# (video, frames with open eyes for the reference, blinks as (first, last + 1) frame), by looking
BLINKS = {"pexels_woman": ((300, 380), [(246, 251), (286, 291), (384, 390)]),
          "webcam_man": ((130, 420), [(424, 432)])}


def measurements(dev: Path) -> np.ndarray:
    """Per found photo: view yaw, label pitch, right and left lid ratio, iris offsets (4), view pitch."""
    tracker = FaceTracker(FacePipeline(tracking=False, refine_stills=True))
    rows = []
    for face in read_labels(dev):
        image = ImageFolderSource.read(dev / face.file)
        raw = tracker.measure(tracker.pipeline.process(image), still=True) if image is not None else None
        if raw is not None:
            rows.append((raw.view_yaw, face.angles[1], raw.right.ratio, raw.left.ratio, *raw.right.offset,
                         *raw.left.offset, raw.view_pitch))
    return np.array(rows)


def blink_depth() -> float:
    """Median over the chosen blinks (both eyes) of the deepest lid ratio over the open ratio."""
    depths = []
    for name, ((a, b), blinks) in BLINKS.items():
        path = media_path(name)
        if path is None:
            raise SystemExit(f"{name} is not fetched: run `make media` first")
        tracker, ratios = FaceTracker(), []
        source = open_source(str(path))
        for frame in source:
            tracker.process(frame)
            raw = tracker.last_raw
            ratios.append((raw.right.ratio, raw.left.ratio) if raw is not None else (np.nan, np.nan))
        source.close()
        ratios = np.array(ratios)
        open_ratio = np.nanmedian(ratios[a:b], axis=0)
        for first, end in blinks:
            depths.extend(np.nanmin(ratios[first:end], axis=0) / open_ratio)
    print("blink depths (deepest ratio over open): " + ", ".join(f"{d:.2f}" for d in depths))
    return float(np.median(depths))


def crossing(xs: np.ndarray, ys: np.ndarray, level: float) -> float:
    """The first x at which ys falls to ``level`` (linear between bins)."""
    for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]):
        if y0 >= level > y1:
            return float(x0 + (x1 - x0) * (y0 - level) / (y0 - y1))
    raise ValueError(f"the far eye never falls to {level} of the near eye")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", type=Path, default=DEV_SET)
    args = ap.parse_args()
    m = measurements(args.dev)
    yaw, pitch, rr, rl = m[:, 0], m[:, 1], m[:, 2], m[:, 3]
    near = np.where(yaw >= 0, rr, rl)
    far = np.where(yaw >= 0, rl, rr)
    front = np.median(np.r_[rr[np.abs(yaw) < BIN], rl[np.abs(yaw) < BIN]])
    centres, ratio_near, ratio_far, far_over_near = [0.0], [1.0], [1.0], [1.0]
    for lo in np.arange(0.0, 70.0, BIN):
        b = (np.abs(yaw) >= lo) & (np.abs(yaw) < lo + BIN)
        if b.sum() < 8:
            break
        centres.append(lo + BIN / 2)
        ratio_near.append(float(np.median(near[b]) / front))
        ratio_far.append(float(np.median(far[b]) / front))
        ok = b & (near > 0)
        far_over_near.append(float(np.median(far[ok] / near[ok])))
        print(f"|yaw| {lo:2.0f}–{lo + BIN:2.0f}°: {b.sum():3d} photos, near eye {ratio_near[-1]:.2f}, "
              f"far eye {ratio_far[-1]:.2f}, far/near {far_over_near[-1]:.2f}")
    lean = (crossing(np.array(centres), np.array(far_over_near), 0.9),
            crossing(np.array(centres), np.array(far_over_near), 0.7))
    cal = Calibration.default()
    dx = 0.5 * ((m[:, 4] - cal.gaze_right[0]) + (m[:, 6] - cal.gaze_left[0]))
    sel = (np.abs(yaw) > 8) & (np.abs(yaw) < 30) & (np.abs(pitch) < 20)
    gain = float(-np.median(dx[sel] / np.sin(np.radians(yaw[sel]))))
    # vertically the offset falls with the head's pitch by less than the gain: the rest is the
    # iris standing in front of the eye corners (parallax), seen from above or below
    dy = 0.5 * ((m[:, 5] - cal.gaze_right[1]) + (m[:, 7] - cal.gaze_left[1]))
    vp = m[:, 8]
    sel_p = (np.abs(yaw) < 20) & (np.abs(vp) > 8) & (np.abs(vp) < 30)
    parallax = gain + float(np.median(dy[sel_p] / np.sin(np.radians(vp[sel_p]))))
    # a turned head tilts the corner line (the corners sit at different depths): the iris reads
    # as rising whichever way the head turns, with the square of the sine of the yaw; what is
    # left once the look at the camera and the parallax are taken off
    rest = dy - (parallax - gain) * np.sin(np.radians(vp))
    sel_r = (np.abs(yaw) > 20) & (np.abs(vp) < 20)
    rise = float(np.median(rest[sel_r] / np.sin(np.radians(yaw[sel_r])) ** 2))
    closed = blink_depth()
    print(f"far eye leans on the near one from {lean[0]:.1f}° to {lean[1]:.1f}°; "
          f"gaze gain {gain:.3f} from {int(sel.sum())} photos, vertical parallax {parallax:.3f} from {int(sel_p.sum())}, "
          f"rise {rise:.3f} from {int(sel_r.sum())}; an eye reads shut at {closed:.2f} of open")
    resp = read_entries()
    resp.update({
        "eye_ratio_yaw": centres, "eye_ratio_near": [round(v, 3) for v in ratio_near],
        "eye_ratio_far": [round(v, 3) for v in ratio_far], "eye_lean": [round(v, 1) for v in lean],
        "gaze_gain": [round(gain, 4), round(gain, 4)], "gaze_parallax": round(parallax, 4),
        "gaze_yaw_rise": round(rise, 4), "eye_closed_fraction": round(closed, 3),
        "eye_source": f"tests/tools/fit_eyes.py on {args.dev.name} ({len(m)} found photos) and the blinks "
                      f"of the package videos",
    })
    write_entries(resp)
    print(f"wrote {RESPONSE_FILE}")


if __name__ == "__main__":
    main()

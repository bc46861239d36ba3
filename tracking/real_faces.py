"""Accuracy on real photographs with head-pose labels (a folder laid out like the AFLW2000-3D
dev set in ``../shared/data/aflw2000-dev``: images plus ``labels.csv``).

Real faces are the truth the solvers answer to; the synthetic head only checks signs and
timing. Scoring follows the dev set's README exactly, so figures compare with the hold-out's:
each photo is tracked on its own; photos with no face count against the found rate; for the
others the reported angles are recomposed as R = Ry(yaw)·Rx(−pitch)·Rz(−roll), decomposed in
the dataset's order R = Rx(−p)·Ry(y)·Rz(−r), and compared with its ``aflw_order_*`` labels
(differences wrapped to ±180°), over all found photos and over those whose three labels are
within ±45°.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .solvers.geometry import matrix_from_ypr
from .sources.base import Frame
from .sources.images import ImageFolderSource
from .state import FaceState

LABELS_FILE = "labels.csv"
AXES = ("yaw", "pitch", "roll")
WITHIN_DEG = 45.0


class LabelsError(ValueError):
    """A labelled folder that cannot be scored: one line saying why."""


@dataclass(frozen=True)
class LabelledFace:
    """One photo: its file name, its label in the project's convention and in the dataset's order."""

    file: str
    angles: tuple[float, float, float]
    aflw: tuple[float, float, float]


def read_labels(folder: str | Path) -> list[LabelledFace]:
    """The folder's ``labels.csv``; a missing file or column raises ``LabelsError`` in one line."""
    path = Path(folder) / LABELS_FILE
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise LabelsError(f"{path}: cannot read the labels ({e.strerror or e})") from None
    out = []
    for n, row in enumerate(rows, start=2):
        try:
            if not row["file"]:
                raise ValueError("no file name")
            out.append(LabelledFace(row["file"], tuple(float(row[k]) for k in AXES),
                                    tuple(float(row[f"aflw_order_{k}"]) for k in AXES)))
        except (KeyError, TypeError, ValueError):
            raise LabelsError(f"{path}:{n}: needs file, yaw, pitch, roll and aflw_order_* numbers") from None
    if not out:
        raise LabelsError(f"{path}: no labelled photos")
    return out


def aflw_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) of a person-frame rotation in the dataset's order Rx(−p)·Ry(y)·Rz(−r)."""
    (r00, r01, r02), (_, _, r12), (_, _, r22) = rotation.tolist()
    yaw = math.asin(max(-1.0, min(1.0, r02)))
    return math.degrees(yaw), math.degrees(math.atan2(r12, r22)), math.degrees(math.atan2(r01, r00))


def angle_errors(state: FaceState, face: LabelledFace) -> tuple[float, float, float]:
    """Signed error per axis in the dataset's order, wrapped to ±180°."""
    got = aflw_angles(matrix_from_ypr(state.yaw, state.pitch, state.roll))
    return tuple((g - t + 180.0) % 360.0 - 180.0 for g, t in zip(got, face.aflw))


def within(face: LabelledFace, limit: float = WITHIN_DEG) -> bool:
    return all(abs(a) <= limit for a in face.aflw)


@dataclass
class RealReport:
    """Found rate and mean absolute errors (degrees) per axis, over all found photos and over
    those within ±45°."""

    photos: int
    found: int
    mae_all: dict[str, float]
    within: int
    mae_within: dict[str, float]

    @property
    def found_rate(self) -> float:
        return self.found / self.photos if self.photos else 0.0

    @staticmethod
    def mean(mae: dict[str, float]) -> float:
        return sum(mae.values()) / len(mae) if mae else math.nan


def score(faces: list[LabelledFace], states: list[FaceState | None]) -> RealReport:
    """Score one state per labelled photo (``None`` or not found: a miss)."""
    errs, inside = [], []
    for face, st in zip(faces, states):
        if st is None or not st.found:
            continue
        e = angle_errors(st, face)
        errs.append(e)
        if within(face):
            inside.append(e)
    mae = lambda rows: ({k: float(v) for k, v in zip(AXES, np.abs(np.array(rows)).mean(axis=0))}  # noqa: E731
                        if rows else {k: math.nan for k in AXES})
    return RealReport(len(faces), len(errs), mae(errs), len(inside), mae(inside))


def track_photos(folder: str | Path, faces: list[LabelledFace], tracker) -> list[FaceState | None]:  # noqa: ANN001
    """Each labelled photo tracked on its own (``None`` where the file does not decode; a photo
    the pipeline cannot use is a miss). ``tracker``: a ``FaceTracker`` whose pipeline reads
    stills (``tracking=False``)."""
    states: list[FaceState | None] = []
    for i, face in enumerate(faces):
        image = ImageFolderSource.read(Path(folder) / face.file)
        states.append(None if image is None else tracker.process(Frame(i, None, image, path=face.file), independent=True))
    return states


def format_report(r: RealReport, title: str) -> str:
    """The table of the issue: found rate, per-axis MAE over all found, and within ±45°."""
    f = lambda d: " / ".join(f"{d[k]:.2f}" for k in AXES)  # noqa: E731
    return "\n".join([
        f"{title}: {r.photos} photos, face found on {r.found} ({100 * r.found_rate:.1f}%)",
        f"  MAE° yaw / pitch / roll, all found ({r.found}):    {f(r.mae_all)}  (mean {r.mean(r.mae_all):.2f})",
        f"  MAE° yaw / pitch / roll, within ±45° ({r.within}): {f(r.mae_within)}  (mean {r.mean(r.mae_within):.2f})",
    ])

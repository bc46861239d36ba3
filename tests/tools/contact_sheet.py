"""Contact sheets of the synthetic head, for a person to look at.

Writes ``tests/artifacts/contact_sheet.png`` (12 poses, 4 × 3, each labelled) and
``tests/artifacts/contact_sheet_landmarks.png`` (the same frames with the ground-truth
landmarks in green and what our pipeline finds in red, tracking along a 12-frame ramp from
the neutral pose as it would in a live stream; iris centres as a blue cross (truth) and a
yellow ring (network)). Run: ``python tests/tools/contact_sheet.py``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from openvtuber.tracking.pipeline import FacePipeline
from openvtuber.tracking.sources.synthetic import FacePose, SyntheticFace

POSES = [
    FacePose(),
    FacePose(yaw=45),
    FacePose(yaw=-45),
    FacePose(pitch=30),
    FacePose(pitch=-30),
    FacePose(roll=30),
    FacePose(yaw=20, roll=-30),
    FacePose(eye_close_left=1, eye_close_right=1),
    FacePose(eye_close_right=1, mouth_open=0.3),
    FacePose(gaze_left_yaw=25, gaze_right_yaw=25),
    FacePose(gaze_left_yaw=-20, gaze_right_yaw=-20, gaze_left_pitch=15, gaze_right_pitch=15),
    FacePose(yaw=-20, pitch=10, mouth_open=1.0),
]
TILE = 300
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "artifacts"


def ramp(pose: FacePose, k: float) -> FacePose:
    """The pose ``k`` of the way from neutral (every field interpolated)."""
    neutral = FacePose()
    return FacePose(**{f: getattr(neutral, f) + k * (getattr(pose, f) - getattr(neutral, f))
                       for f in vars(neutral)})


def label(pose: FacePose) -> list[str]:
    lines = [f"yaw {pose.yaw:+.0f} pitch {pose.pitch:+.0f} roll {pose.roll:+.0f}"]
    extra = []
    if pose.eye_close_left or pose.eye_close_right:
        extra.append(f"close L{pose.eye_close_left:.1f} R{pose.eye_close_right:.1f}")
    if any((pose.gaze_left_yaw, pose.gaze_left_pitch, pose.gaze_right_yaw, pose.gaze_right_pitch)):
        extra.append(f"gaze {pose.gaze_left_yaw:+.0f}/{pose.gaze_left_pitch:+.0f}")
    if pose.mouth_open:
        extra.append(f"mouth {pose.mouth_open:.1f}")
    if extra:
        lines.append(" ".join(extra))
    return lines


def caption(tile: np.ndarray, lines: list[str]) -> None:
    for i, text in enumerate(lines):
        org = (6, 18 + 18 * i)
        for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(tile, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.48, colour, thickness,
                        cv2.LINE_AA)


def crop(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    x0, y0 = (w - TILE) // 2, h // 2 - TILE // 2 - 20
    return image[y0:y0 + TILE, x0:x0 + TILE].copy(), np.array([x0, y0])


def overlay(tile: np.ndarray, offset: np.ndarray, truth, obs) -> None:
    for x, y in truth.landmarks - offset:
        cv2.circle(tile, (int(x), int(y)), 1, (0, 220, 0), -1)
    if obs.found:
        for x, y in obs.landmarks[:, :2] - offset:
            cv2.circle(tile, (int(x), int(y)), 1, (0, 0, 255), -1)
        for eye in (obs.right_eye, obs.left_eye):
            x, y = eye.centre - offset
            cv2.circle(tile, (int(round(x)), int(round(y))), 3, (0, 255, 255), 1, cv2.LINE_AA)
    for iris in (truth.iris_right, truth.iris_left):
        x, y = (iris - offset).round().astype(int)
        cv2.drawMarker(tile, (int(x), int(y)), (255, 80, 0), cv2.MARKER_CROSS, 6, 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-landmarks", action="store_true", help="skip the overlay sheet")
    args = ap.parse_args(argv)
    face = SyntheticFace()
    plain, marked = [], []
    for pose in POSES:
        image, truth = face.render(pose)
        tile, offset = crop(image)
        if not args.no_landmarks:
            pipe = FacePipeline(tracking=True)
            for k in range(1, 12):
                pipe.process(face.render(ramp(pose, k / 12))[0])
            obs = pipe.process(image)
            over = tile.copy()
            overlay(over, offset, truth, obs)
            err = (np.linalg.norm(obs.landmarks[:, :2] - truth.landmarks, axis=1).mean()
                   if obs.found else float("nan"))
            caption(over, label(pose) + [f"mean landmark error {err:.1f} px"])
            marked.append(over)
        caption(tile, label(pose))
        plain.append(tile)
    args.out.mkdir(parents=True, exist_ok=True)
    def grid(tiles: list[np.ndarray]) -> np.ndarray:
        return np.vstack([np.hstack(tiles[r * 4:r * 4 + 4]) for r in range(3)])
    cv2.imwrite(str(args.out / "contact_sheet.png"), grid(plain), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if marked:
        cv2.imwrite(str(args.out / "contact_sheet_landmarks.png"), grid(marked),
                    [cv2.IMWRITE_PNG_COMPRESSION, 9])
    for name in ("contact_sheet.png", "contact_sheet_landmarks.png"):
        path = args.out / name
        if path.exists():
            print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

"""Record MediaPipe FaceMesh's own landmarks on the test images, as the reference for
``tests/test_mediapipe_agreement.py``.

MediaPipe is NOT a dependency of the project: run this once, in a throw-away virtualenv,
whenever the images in ``tests/data/reference/`` change, and commit the small ``.npz``
it writes. From the repository root::

    python3.11 -m venv /tmp/vmp                       # mediapipe 0.10.21 has wheels for 3.9–3.12
    /tmp/vmp/bin/pip install mediapipe==0.10.21
    /tmp/vmp/bin/python tests/tools/mediapipe_reference.py
    rm -rf /tmp/vmp

(The images themselves come from ``tests/tools/make_reference_images.py``, run in the
project's own venv.) Output: ``tests/data/reference/mediapipe_0.10.21.npz`` holding

* ``mediapipe_version`` — the version that produced it (the script refuses any other);
* ``names`` (N,) — image file names, sorted; every other per-image array is in this order;
* ``sha256`` (N,) — SHA-256 of each image file's bytes, so the test notices images that
  changed without the reference being regenerated;
* ``pixels_sha256`` (N,) — SHA-256 of the decoded BGR pixels (this OpenCV's JPEG decoder),
  so a test can tell a decoder difference from a file change;
* ``image_size`` (N, 2) — (width, height);
* ``landmarks`` (N, 468, 2) float32 — ``refine_landmarks=False`` (the plain face_landmark
  network, the one the project runs), in pixels: normalized x × width, y × height;
* ``iris_right_eye`` (N, 2) float32 — the iris centre of the person's OWN RIGHT eye
  (image left in an unmirrored photo; the eye around face landmarks 33/133), from
  ``refine_landmarks=True``: that is MediaPipe's point 468;
* ``iris_left_eye`` (N, 2) float32 — the person's own left eye (around 362/263):
  MediaPipe's point 473;
* ``refined_iris`` (N, 10, 2) float32 — all of MediaPipe's points 468..477 (refine=True:
  centre then 4 rim points, right eye first).

refine=True runs a different landmark network (the attention mesh); its 468 face points
are not stored (the script prints their mean distance from refine=False's per image).

The 468/473 assignment is not assumed: it is checked per image (each centre must lie
nearer the midpoint of its own eye's corners). Images where either configuration finds
no face are dropped from the reference and listed on stderr; the script fails if fewer
than ``MIN_IMAGES`` remain. Images are read with OpenCV and fed to MediaPipe as RGB.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np

MEDIAPIPE_VERSION = "0.10.21"
REF_DIR = Path(__file__).resolve().parents[1] / "data" / "reference"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MIN_IMAGES = 20
RIGHT_EYE_CORNERS = (33, 133)    # the person's right eye
LEFT_EYE_CORNERS = (362, 263)    # the person's left eye
IRIS_RIGHT_EYE, IRIS_LEFT_EYE = 468, 473


def run_mesh(face_mesh_cls, rgb: np.ndarray, refine: bool) -> np.ndarray | None:
    """(N, 3) pixels (x, y, z·width) of the first face, or None."""
    h, w = rgb.shape[:2]
    # a fresh graph per image and configuration: no state carries between images
    with face_mesh_cls(static_image_mode=True, max_num_faces=1, refine_landmarks=refine,
                       min_detection_confidence=0.5) as fm:
        res = fm.process(rgb)
    if not res.multi_face_landmarks:
        return None
    return np.array([[p.x * w, p.y * h, p.z * w] for p in res.multi_face_landmarks[0].landmark],
                    dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=REF_DIR, help="image folder (default: tests/data/reference)")
    args = ap.parse_args(argv)

    import mediapipe as mp

    if mp.__version__ != MEDIAPIPE_VERSION:
        raise SystemExit(f"mediapipe {mp.__version__} is installed: the reference is for {MEDIAPIPE_VERSION}")
    face_mesh_cls = mp.solutions.face_mesh.FaceMesh

    files = sorted(p for p in args.dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    rows: dict[str, list] = {k: [] for k in ("names", "sha256", "pixels_sha256", "image_size", "landmarks",
                                             "iris_right_eye", "iris_left_eye", "refined_iris")}
    dropped = []
    for path in files:
        data = path.read_bytes()
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot decode {path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        plain = run_mesh(face_mesh_cls, rgb, refine=False)
        refined = run_mesh(face_mesh_cls, rgb, refine=True)
        if plain is None or refined is None or plain.shape[0] != 468 or refined.shape[0] != 478:
            why = "refine=False" if plain is None else "refine=True" if refined is None else "odd point count"
            dropped.append(f"{path.name}: no face ({why})")
            continue
        # which refined iris belongs to which eye: measured, not assumed
        mid_r = refined[list(RIGHT_EYE_CORNERS), :2].mean(axis=0)
        mid_l = refined[list(LEFT_EYE_CORNERS), :2].mean(axis=0)
        ir, il = refined[IRIS_RIGHT_EYE, :2], refined[IRIS_LEFT_EYE, :2]
        if not (np.linalg.norm(ir - mid_r) < np.linalg.norm(ir - mid_l)
                and np.linalg.norm(il - mid_l) < np.linalg.norm(il - mid_r)):
            raise SystemExit(f"{path.name}: point {IRIS_RIGHT_EYE} is not at the right eye (33/133) — "
                             "the iris index convention differs from this script's")
        h, w = bgr.shape[:2]
        rows["names"].append(path.name)
        rows["sha256"].append(hashlib.sha256(data).hexdigest())
        rows["pixels_sha256"].append(hashlib.sha256(np.ascontiguousarray(bgr).tobytes()).hexdigest())
        rows["image_size"].append((w, h))
        rows["landmarks"].append(plain[:, :2])
        rows["iris_right_eye"].append(ir)
        rows["iris_left_eye"].append(il)
        rows["refined_iris"].append(refined[468:478, :2])
        gap = np.linalg.norm(plain[:, :2] - refined[:468, :2], axis=1).mean()
        print(f"{path.name:32s} {w}×{h}  iris R ({ir[0]:7.2f}, {ir[1]:7.2f})  L ({il[0]:7.2f}, {il[1]:7.2f})"
              f"  plain-vs-attention mesh {gap:.2f} px")

    for line in dropped:
        print(f"dropped {line}", file=sys.stderr)
    if len(rows["names"]) < MIN_IMAGES:
        raise SystemExit(f"only {len(rows['names'])} images with a face: at least {MIN_IMAGES} needed")
    out = args.dir / f"mediapipe_{MEDIAPIPE_VERSION}.npz"
    np.savez_compressed(
        out,
        mediapipe_version=np.array(mp.__version__),
        names=np.array(rows["names"]),
        sha256=np.array(rows["sha256"]),
        pixels_sha256=np.array(rows["pixels_sha256"]),
        image_size=np.array(rows["image_size"], dtype=np.int32),
        landmarks=np.array(rows["landmarks"], dtype=np.float32),
        iris_right_eye=np.array(rows["iris_right_eye"], dtype=np.float32),
        iris_left_eye=np.array(rows["iris_left_eye"], dtype=np.float32),
        refined_iris=np.array(rows["refined_iris"], dtype=np.float32),
    )
    print(f"{len(rows['names'])} images ({len(dropped)} dropped) → {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

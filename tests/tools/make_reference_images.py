"""Write the fixed test images that ``tests/test_mediapipe_agreement.py`` compares on.

Run it in the project's own virtualenv, from the repository root::

    python tests/tools/make_reference_images.py

It (re)writes every image in ``tests/data/reference/`` and deletes any other image
there. The output is deterministic for a given OpenCV / scikit-image build (fixed
transforms, seeded noise). After changing the image set, regenerate the MediaPipe
reference with ``tests/tools/mediapipe_reference.py`` (its docstring says how): the
agreement test compares each image's SHA-256 with the one stored in the reference and
fails until both are regenerated.

Sources (nothing is downloaded):

* real photos shipped inside installed packages:
  - ``skimage.data.astronaut()`` (Eileen Collins, NASA, public domain): the bulk of the
    set, under flips, in-plane rotations, scales, crops, canvases of other aspect
    ratios, photometric changes, blur and noise;
  - ``skimage.data.camera()`` (the "cameraman", a small three-quarter face, grayscale);
  - ``skimage.data.lfw_subset()`` (25×25 grayscale faces from Labeled Faces in the Wild;
    four different people, upscaled ×8 onto a padded canvas: blurry but detectable);
  - ``grace_hopper.jpg`` from matplotlib's sample data (US Navy photo, public domain;
    an older face with glasses). matplotlib is not a project dependency: the file is
    found in this interpreter's matplotlib, else pass ``--grace-hopper PATH`` (any
    mediapipe install has it: mediapipe depends on matplotlib), else the run fails
    unless ``--skip-missing`` drops those images.
* synthetic faces from ``openvtuber.tracking.sources.synthetic`` (this project's renderer
  of a textured head at a commanded pose): yaw ±30°, pitch ±20°, roll ±20°, a gaze shift
  with a half-closed eye, an open mouth, and a frame on a photo background with noise;
  see ``synthetic_images``.

Images are JPEG (quality 90), at most 480 px on the long side; the folder stays well
under 1.5 MB (the script fails above ``MAX_TOTAL_BYTES``).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

OUT_DIR = Path(__file__).resolve().parents[1] / "data" / "reference"
JPEG_QUALITY = 90
MAX_SIDE = 480
MAX_TOTAL_BYTES = 1_200_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# The astronaut's face in skimage.data.astronaut() (512×512): centre and size in pixels.
ASTRO_FACE = (225.0, 122.0)
# Grace Hopper's face in matplotlib's grace_hopper.jpg (512×600).
HOPPER_FACE = (264.0, 232.0)
# The cameraman's face in skimage.data.camera() (512×512).
CAMERA_FACE = (228.0, 160.0)
# lfw_subset(): indices of four different people's faces (the first 100 entries are faces).
LFW_FACES = (1, 18, 26, 36)


# --------------------------------------------------------------------------- helpers
def to_bgr(rgb_or_gray: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb_or_gray)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a[:, :, 2::-1])


def view(img: np.ndarray, centre: tuple[float, float], size: tuple[int, int], zoom: float = 1.0,
         angle_deg: float = 0.0, at: tuple[float, float] | None = None, flip: bool = False,
         border: int = cv2.BORDER_REPLICATE, fill: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """A ``size`` = (w, h) canvas showing ``img`` zoomed by ``zoom`` and rotated by
    ``angle_deg`` (counter-clockwise on screen) about ``centre``, which lands at ``at``
    (default: the canvas centre). ``flip`` mirrors the source first (centre mirrored too)."""
    w, h = size
    if flip:
        img = np.ascontiguousarray(img[:, ::-1])
        centre = (img.shape[1] - centre[0], centre[1])
    at = at if at is not None else (w / 2.0, h / 2.0)
    m = cv2.getRotationMatrix2D(centre, angle_deg, zoom)
    m[0, 2] += at[0] - centre[0]
    m[1, 2] += at[1] - centre[1]
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR,
                          borderMode=border, borderValue=fill)


def contrast(img: np.ndarray, gain: float, bias: float) -> np.ndarray:
    return np.clip(img.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)


def gamma(img: np.ndarray, g: float) -> np.ndarray:
    lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut)


def gray3(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def noisy(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img.astype(np.float32) + rng.normal(0.0, sigma, img.shape), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- sources
def grace_hopper_path(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit if explicit.is_file() else None
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        p = Path(root) / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        if p.is_file():
            return p
    return None


def astronaut_images() -> dict[str, np.ndarray]:
    from skimage import data

    a = to_bgr(data.astronaut())
    c = ASTRO_FACE
    out = {
        # the face at its native resolution, head-and-shoulders framing
        "astro_native": view(a, c, (360, 360)),
        "astro_flip": view(a, c, (360, 360), flip=True),
        "astro_rot_p25": view(a, c, (360, 360), angle_deg=25),
        "astro_rot_m25": view(a, c, (360, 360), angle_deg=-25),
        "astro_rot_p12_flip": view(a, c, (360, 360), angle_deg=12, flip=True),
        # scales: large face (upsampled), small face in a webcam-shaped canvas
        "astro_zoom2": view(a, c, (400, 400), zoom=2.0),
        "astro_small_4x3": view(a, c, (480, 360), zoom=0.7, at=(150, 130), border=cv2.BORDER_CONSTANT,
                                    fill=(40, 40, 40)),
        # other aspect ratios: landscape and portrait canvases, face off-centre
        "astro_landscape_4x3": view(a, c, (480, 360), zoom=0.9, at=(330, 150)),
        "astro_portrait_3x4": view(a, c, (360, 480), zoom=1.2, at=(170, 170)),
        "astro_corner_crop": view(a, c, (320, 320), zoom=1.0, at=(95, 90)),
        "astro_whole_512": cv2.resize(a, (MAX_SIDE, MAX_SIDE), interpolation=cv2.INTER_AREA),
        # photometric changes
        "astro_dark_lowcontrast": contrast(view(a, c, (360, 360)), 0.45, 10),
        "astro_bright_highcontrast": contrast(view(a, c, (360, 360)), 1.5, -30),
        "astro_gamma": gamma(view(a, c, (360, 360)), 1.8),
        "astro_gray3": gray3(view(a, c, (360, 360), angle_deg=-10)),
        "astro_blur": cv2.GaussianBlur(view(a, c, (360, 360), zoom=1.3), (0, 0), 2.0),
        "astro_noise": noisy(view(a, c, (360, 360)), 14.0, seed=20240501),
    }
    return out


def hopper_images(path: Path) -> dict[str, np.ndarray]:
    h = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if h is None:
        raise SystemExit(f"cannot read {path}")
    c = HOPPER_FACE
    return {
        "hopper_native": view(h, c, (400, 400), zoom=0.8),
        "hopper_flip_rot_m20": view(h, c, (400, 400), zoom=0.8, angle_deg=-20, flip=True),
        "hopper_small_4x3": view(h, c, (480, 360), zoom=0.45, at=(300, 160)),
        "hopper_gray3_rot_p15": gray3(view(h, c, (360, 360), zoom=0.7, angle_deg=15)),
    }


def other_real_images() -> dict[str, np.ndarray]:
    from skimage import data

    out = {"camera_man": view(to_bgr(data.camera()), CAMERA_FACE, (320, 320), zoom=1.5)}
    lfw = data.lfw_subset()
    for i in LFW_FACES:
        face = cv2.resize(to_bgr(lfw[i]), (200, 200), interpolation=cv2.INTER_CUBIC)
        out[f"lfw_{i:03d}_x8"] = cv2.copyMakeBorder(face, 60, 60, 60, 60, cv2.BORDER_REPLICATE)
    return out


def synthetic_images() -> dict[str, np.ndarray]:
    """SYNTHETIC POSES — rendered faces from ``openvtuber.tracking.sources.synthetic``.

    Eight poses: yaw ±30°, pitch ±20°, roll ±20°, a gaze shift (both eyes), a half-closed
    eye, an open mouth, and one on the photo background with pixel noise and dimmer light.
    Rendered at 640×480 (the renderer's webcam default, head 0.6 m away), then either
    cropped to a 360×360 head-and-shoulders window at native resolution, like the astronaut
    views, or (the photo-background frame) the whole frame resized to 480×360.
    """
    from openvtuber.tracking.sources.synthetic import FacePose, SyntheticFace

    plain = SyntheticFace(width=640, height=480)
    # its own renderer: the noise is seeded by (seed, render count), so one render each
    photo = SyntheticFace(width=640, height=480, background="photo", noise=6.0, light=0.85, seed=7)
    crop = (140, 80, 360, 360)     # x, y, w, h: the head (centre ≈ (320, 265)) under any of these poses
    poses = {
        "synth_yaw_p30": (plain, FacePose(yaw=30.0), crop),
        "synth_yaw_m30_mouth_open": (plain, FacePose(yaw=-30.0, mouth_open=0.7), crop),
        "synth_pitch_p20": (plain, FacePose(pitch=20.0), crop),
        "synth_pitch_m20": (plain, FacePose(pitch=-20.0), crop),
        "synth_roll_p20": (plain, FacePose(roll=20.0, yaw=-10.0), crop),
        "synth_roll_m20_gaze": (plain, FacePose(roll=-20.0, gaze_left_yaw=15.0, gaze_right_yaw=15.0), crop),
        "synth_gaze_shift_half_closed": (plain, FacePose(yaw=10.0, gaze_left_yaw=-20.0, gaze_right_yaw=-20.0,
                                                          gaze_left_pitch=-8.0, gaze_right_pitch=-8.0,
                                                          eye_close_left=0.5), crop),
        "synth_photo_noise": (photo, FacePose(yaw=15.0, pitch=-8.0, roll=8.0, x=0.04, mouth_open=0.3), None),
    }
    out = {}
    for name, (face, pose, box) in poses.items():
        img, truth = face.render(pose)
        x, y, w, h = box if box is not None else (0, 0, img.shape[1], img.shape[0])
        lm = truth.landmarks
        # the whole face inside the frame, with a margin
        assert (lm.min(axis=0) >= (x + 16, y + 16)).all() and (lm.max(axis=0) <= (x + w - 16, y + h - 16)).all(), name
        if box is not None:
            out[name] = np.ascontiguousarray(img[y:y + h, x:x + w])
        else:
            # 640×480 → 480×360: the long side limit of the set
            out[name] = cv2.resize(img, (MAX_SIDE, MAX_SIDE * img.shape[0] // img.shape[1]),
                                   interpolation=cv2.INTER_AREA)
    return out


# --------------------------------------------------------------------------- main
def build(grace_hopper: Path | None, skip_missing: bool) -> dict[str, np.ndarray]:
    images: dict[str, np.ndarray] = {}
    images.update(astronaut_images())
    gh = grace_hopper_path(grace_hopper)
    if gh is not None:
        images.update(hopper_images(gh))
    elif not skip_missing:
        raise SystemExit("grace_hopper.jpg not found: install matplotlib here, pass --grace-hopper PATH "
                         "(e.g. from a mediapipe venv's matplotlib/mpl-data/sample_data/), or --skip-missing")
    else:
        print("note: grace_hopper.jpg not found: its images are skipped", file=sys.stderr)
    images.update(other_real_images())
    images.update(synthetic_images())
    return images


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default: tests/data/reference)")
    ap.add_argument("--grace-hopper", type=Path, default=None, help="path of matplotlib's grace_hopper.jpg")
    ap.add_argument("--skip-missing", action="store_true", help="drop images whose source photo is missing")
    args = ap.parse_args(argv)

    images = build(args.grace_hopper, args.skip_missing)
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.iterdir():
        if old.suffix.lower() in IMAGE_SUFFIXES and old.stem not in images:
            old.unlink()
    total = 0
    for name, img in sorted(images.items()):
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
        assert max(img.shape[:2]) <= MAX_SIDE, (name, img.shape)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise SystemExit(f"cannot encode {name}")
        path = args.out / f"{name}.jpg"
        path.write_bytes(buf.tobytes())
        total += len(buf)
        print(f"{path.name:32s} {img.shape[1]:4d}×{img.shape[0]:<4d} {len(buf) / 1024:6.1f} KiB")
    print(f"{len(images)} images, {total / 1024:.0f} KiB in {args.out}")
    if total > MAX_TOTAL_BYTES:
        raise SystemExit(f"the image set is {total} bytes: over the {MAX_TOTAL_BYTES}-byte budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())

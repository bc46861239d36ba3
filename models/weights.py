"""Model files: where they live, what they must hash to, and how `make install` gets them.

The three MediaPipe networks (Apache-2.0) ship inside the ``mediapipe==0.10.21`` wheel
on PyPI. Install time fetches that wheel with ``pip download --no-deps`` (a pinned
platform tag, so the same bytes every time), extracts the three ``.tflite`` files and
checks their SHA-256. Run time never downloads: a missing or corrupt file is an error
that names ``make install``.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

MEDIAPIPE_VERSION = "0.10.21"
# Any platform's wheel carries the same data files; pinning one tag keeps the fetch
# deterministic whatever machine runs the install.
WHEEL_PLATFORM = "manylinux_2_28_x86_64"
WHEEL_PYTHON = "3.11"


@dataclass(frozen=True)
class ModelFile:
    """One network file inside the mediapipe wheel."""

    name: str
    wheel_path: str
    sha256: str


MODEL_FILES: dict[str, ModelFile] = {
    m.name: m
    for m in (
        ModelFile("face_detection_short_range", "mediapipe/modules/face_detection/face_detection_short_range.tflite",
                  "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
        ModelFile("face_landmark", "mediapipe/modules/face_landmark/face_landmark.tflite",
                  "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
        ModelFile("iris_landmark", "mediapipe/modules/iris_landmark/iris_landmark.tflite",
                  "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f"),
    )
}


class ModelFileError(RuntimeError):
    """A model file is missing or does not match its checksum."""


def model_dir() -> Path:
    """The git-ignored cache folder holding the model files (``OPENVTUBER_MODEL_DIR`` overrides)."""
    env = os.environ.get("OPENVTUBER_MODEL_DIR")
    return Path(env) if env else Path(__file__).resolve().parent / "weights"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_verified: dict[Path, float] = {}


def model_path(name: str) -> Path:
    """Path of a verified model file; raises ``ModelFileError`` with the fix in one sentence."""
    spec = MODEL_FILES[name]
    path = model_dir() / f"{name}.tflite"
    if not path.is_file():
        raise ModelFileError(f"model file {path} is missing: run `make install` to fetch it")
    mtime = path.stat().st_mtime
    if _verified.get(path) != mtime:
        if _sha256(path) != spec.sha256:
            raise ModelFileError(f"model file {path} is corrupt (checksum mismatch): run `make install` to fetch it again")
        _verified[path] = mtime
    return path


def missing_or_corrupt(dest: Path | None = None) -> list[str]:
    """Names of model files that are absent or fail their checksum in ``dest``."""
    dest = dest or model_dir()
    bad = []
    for spec in MODEL_FILES.values():
        p = dest / f"{spec.name}.tflite"
        if not p.is_file() or _sha256(p) != spec.sha256:
            bad.append(spec.name)
    return bad


def fetch(dest: Path | None = None, wheel: Path | None = None) -> list[str]:
    """Make sure every model file is in ``dest``; fetch the mediapipe wheel only if needed.

    ``wheel`` points at an already downloaded wheel (offline installs). Returns the names
    that were (re)written.
    """
    dest = dest or model_dir()
    todo = missing_or_corrupt(dest)
    if not todo:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="openvtuber-wheel-") as tmp:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--platform", WHEEL_PLATFORM, "--python-version", WHEEL_PYTHON,
                   "--implementation", "cp", "-d", tmp, "-q", f"mediapipe=={MEDIAPIPE_VERSION}"]
            subprocess.run(cmd, check=True)
            wheel = next(Path(tmp).glob("mediapipe-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for name in todo:
                spec = MODEL_FILES[name]
                part = Path(tmp) / f"{name}.part"
                with zf.open(spec.wheel_path) as src, part.open("wb") as out:
                    shutil.copyfileobj(src, out)
                got = _sha256(part)
                if got != spec.sha256:
                    raise ModelFileError(f"{spec.wheel_path} in {wheel.name} hashes to {got}, expected {spec.sha256}")
                os.replace(part, dest / f"{name}.tflite")
    return todo


def main(argv: list[str] | None = None) -> int:
    """``python -m openvtuber.models.weights``: fetch and verify (used by ``make install``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=None, help="target folder (default: the package cache)")
    ap.add_argument("--wheel", type=Path, default=None, help="use this mediapipe wheel instead of downloading")
    args = ap.parse_args(argv)
    try:
        written = fetch(args.dest, args.wheel)
    except (ModelFileError, subprocess.CalledProcessError, OSError, KeyError, StopIteration,
            zipfile.BadZipFile) as e:
        print(f"openvtuber: could not fetch the model files: {e}", file=sys.stderr)
        return 1
    where = args.dest or model_dir()
    print(f"model files in {where}: " + ("fetched " + ", ".join(written) if written else "all present and verified"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

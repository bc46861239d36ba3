"""User models: a ``.pmx`` or a ``.zip`` of a model folder, dropped on the page, unpacked
safely into the user data folder and validated before the page may load it.

Hostile archives are expected: absolute names, ``..``, symlinks, lying sizes and zip
bombs are refused with one line; nothing is written outside the new model's folder, and
a half-unpacked folder never becomes visible (unpacked next to it, then renamed).
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..protocols.pmx import PmxError, read_pmx, standard_report

MAX_UPLOAD = 200 * 1024 * 1024        # bytes of the file the page sends
MAX_UNPACKED = 1024 * 1024 * 1024     # bytes once unpacked
MAX_ENTRIES = 5000
MAX_RATIO = 200                        # uncompressed / compressed, per entry (zip bombs)


class ModelStoreError(ValueError):
    """An upload that cannot become a model; the message is one line."""


@dataclass
class StoredModel:
    name: str
    pmx: Path
    report: dict


def models_dir() -> Path:
    """``OPENVTUBER_DATA_DIR``/models, else the platform's user data folder."""
    env = os.environ.get("OPENVTUBER_DATA_DIR")
    if env:
        return Path(env) / "models"
    from platformdirs import user_data_dir

    return Path(user_data_dir("openvtuber", appauthor=False)) / "models"


def _safe_name(filename: str) -> str:
    stem = re.sub(r"[^\w\-]+", "_", PurePosixPath(filename.replace("\\", "/")).stem, flags=re.UNICODE).strip("_.")
    return (stem or "model")[:48]


def _entry_path(name: str) -> PurePosixPath | None:
    """A zip member's relative path, or None when it could escape the folder."""
    name = name.replace("\\", "/")
    p = PurePosixPath(name)
    if not name or p.is_absolute() or re.match(r"^[A-Za-z]:", name) or "\x00" in name or ".." in p.parts:
        return None
    return p


def _unpack_zip(archive: Path, dest: Path) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelStoreError(f"not a readable zip file ({e})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ENTRIES:
            raise ModelStoreError(f"the zip holds {len(infos)} entries: at most {MAX_ENTRIES}")
        total = 0
        for info in infos:
            rel = _entry_path(info.filename)
            if rel is None:
                raise ModelStoreError(f"the zip entry {info.filename!r} points outside the model folder")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ModelStoreError(f"the zip entry {info.filename!r} is a symbolic link")
            if info.is_dir():
                continue
            total += info.file_size
            if total > MAX_UNPACKED:
                raise ModelStoreError(f"the zip unpacks to more than {MAX_UNPACKED // 2**20} MB")
            if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
                raise ModelStoreError(f"the zip entry {info.filename!r} is compressed suspiciously well (a zip bomb?)")
            target = dest.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with zf.open(info) as src, target.open("wb") as out:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > info.file_size:          # the header lied about the size
                            raise ModelStoreError(f"the zip entry {info.filename!r} is larger than it says")
                        out.write(chunk)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as e:
                raise ModelStoreError(f"the zip entry {info.filename!r} cannot be read ({e})") from None


def _find_pmx(folder: Path) -> Path:
    found = sorted((p for p in folder.rglob("*") if p.suffix.lower() == ".pmx" and p.is_file()),
                   key=lambda p: (len(p.relative_to(folder).parts), str(p)))
    if not found:
        raise ModelStoreError("no .pmx model in the upload")
    top = [p for p in found if len(p.relative_to(folder).parts) == len(found[0].relative_to(folder).parts)]
    if len(top) > 1:
        raise ModelStoreError("several .pmx models at the same level: upload one model at a time "
                              f"({', '.join(p.name for p in top[:4])})")
    return found[0]


def install(upload: Path, filename: str, store: Path | None = None) -> StoredModel:
    """Turn an uploaded file (``filename`` as the user named it) into a stored, validated model."""
    store = store or models_dir()
    store.mkdir(parents=True, exist_ok=True)
    if upload.stat().st_size > MAX_UPLOAD:
        raise ModelStoreError(f"the upload is larger than {MAX_UPLOAD // 2**20} MB")
    name = _safe_name(filename)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=store))
    try:
        if filename.lower().endswith(".zip"):
            _unpack_zip(upload, work)
        elif filename.lower().endswith(".pmx"):
            shutil.copyfile(upload, work / f"{name}.pmx")
        else:
            raise ModelStoreError(f"{filename!r}: expected a .pmx model or a .zip of its folder")
        pmx = _find_pmx(work)
        try:
            report = standard_report(read_pmx(pmx))
        except PmxError as e:
            raise ModelStoreError(f"{pmx.name}: {e}") from None
        final = store / name
        n = 1
        while final.exists():
            n += 1
            final = store / f"{name}-{n}"
        os.replace(work, final)
        return StoredModel(final.name, final / pmx.relative_to(work), report)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def list_models(store: Path | None = None) -> list[StoredModel]:
    """Stored user models (those whose folder still holds one readable .pmx)."""
    store = store or models_dir()
    out = []
    if store.is_dir():
        for folder in sorted(p for p in store.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                pmx = _find_pmx(folder)
                out.append(StoredModel(folder.name, pmx, {}))
            except ModelStoreError:
                continue
    return out

"""Model files: checksummed fetch from the mediapipe wheel, clear errors when absent."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from openvtuber.models import weights
from openvtuber.models.weights import MODEL_FILES, ModelFileError


def _fake_wheel(tmp: Path, corrupt: str | None = None) -> Path:
    """A zip laid out like the mediapipe wheel, holding the real (installed) model bytes."""
    wheel = tmp / "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for spec in MODEL_FILES.values():
            data = weights.model_path(spec.name).read_bytes()
            if spec.name == corrupt:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            zf.writestr(spec.wheel_path, data)
    return wheel


def test_installed_models_verify():
    for name in MODEL_FILES:
        assert weights.model_path(name).stat().st_size > 100_000
    assert weights.missing_or_corrupt() == []


def test_missing_model_names_make_install(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENVTUBER_MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelFileError, match="make install"):
        weights.model_path("face_landmark")


def test_corrupt_model_names_make_install(tmp_path, monkeypatch):
    src = weights.model_path("iris_landmark").read_bytes()
    (tmp_path / "iris_landmark.tflite").write_bytes(src[:-10])
    monkeypatch.setenv("OPENVTUBER_MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelFileError, match="corrupt.*make install"):
        weights.model_path("iris_landmark")


def test_fetch_extracts_and_verifies_from_wheel(tmp_path):
    wheel = _fake_wheel(tmp_path)
    dest = tmp_path / "models"
    assert sorted(weights.fetch(dest, wheel)) == sorted(MODEL_FILES)
    assert weights.missing_or_corrupt(dest) == []
    assert weights.fetch(dest, wheel) == []          # idempotent: nothing rewritten


def test_fetch_refuses_a_wheel_with_wrong_bytes(tmp_path):
    wheel = _fake_wheel(tmp_path, corrupt="face_landmark")
    dest = tmp_path / "models"
    with pytest.raises(ModelFileError, match="expected"):
        weights.fetch(dest, wheel)
    assert not (dest / "face_landmark.tflite").exists()


def test_fetch_cli_reports_failure_in_one_line(tmp_path, capsys):
    bad = tmp_path / "not-a-wheel.whl"
    bad.write_bytes(b"garbage")
    assert weights.main(["--dest", str(tmp_path / "m"), "--wheel", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("openvtuber: could not fetch the model files") and "\n" not in err

"""Panel settings persist in the config folder; a damaged file never stops the bridge."""
from __future__ import annotations

import pytest

from openvtuber.bridge.page_settings import PageSettings


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENVTUBER_CONFIG_DIR", str(tmp_path))


def test_round_trip():
    assert PageSettings.load() == PageSettings()
    PageSettings(mirror=False, smoothing=0.55).save()
    assert PageSettings.load() == PageSettings(mirror=False, smoothing=0.55)


@pytest.mark.parametrize("content", ['{"mirror": "yes"}', '{"smoothing": 7}', '{"smoothing": NaN}', "[]", "{oops"])
def test_damaged_file_gives_defaults_and_one_line(tmp_path, content):
    (tmp_path / "page_settings.json").write_text(content)
    said: list[str] = []
    assert PageSettings.load(said.append) == PageSettings()
    assert len(said) == 1 and "page_settings.json" in said[0] and "\n" not in said[0]


def test_unwritable_folder_only_costs_persistence(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("OPENVTUBER_CONFIG_DIR", str(blocker / "sub"))
    assert PageSettings(mirror=False).save() is None

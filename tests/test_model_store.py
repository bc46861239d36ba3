"""User model uploads: a .pmx or a zip of a model folder, unpacked safely and validated."""
from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from openvtuber.bridge.model_store import MAX_ENTRIES, ModelStoreError, install, list_models

AVATAR = Path(__file__).resolve().parents[1] / "renderer" / "models" / "openvtuber" / "openvtuber.pmx"
needs_avatar = pytest.mark.skipif(not AVATAR.is_file(), reason="bundled avatar not generated (make install)")


def _zip(tmp_path: Path, entries: dict[str, bytes], name: str = "model.zip", symlink: str | None = None) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, data in entries.items():
            zf.writestr(n, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


@needs_avatar
def test_a_zipped_model_folder_is_stored_and_reported(tmp_path):
    store = tmp_path / "store"
    up = _zip(tmp_path, {"My Model/my.pmx": AVATAR.read_bytes(), "My Model/tex/face.png": b"\x89PNG..."})
    m = install(up, "My Model.zip", store)
    assert m.pmx == store / "My_Model" / "My Model" / "my.pmx" and m.pmx.is_file()
    assert (m.pmx.parent / "tex" / "face.png").is_file()
    assert m.report["ok"] and m.report["bones"]["頭"] == "頭"
    again = install(up, "My Model.zip", store)              # same name: a new folder, nothing overwritten
    assert again.name == "My_Model-2"
    assert [s.name for s in list_models(store)] == ["My_Model", "My_Model-2"]
    assert not [p for p in store.iterdir() if p.name.startswith(".")]   # no half-unpacked leftovers


@needs_avatar
def test_a_bare_pmx_is_stored(tmp_path):
    src = tmp_path / "x.pmx"
    src.write_bytes(AVATAR.read_bytes())
    m = install(src, "../../evil name.pmx", tmp_path / "store")
    assert m.pmx.parent.parent == tmp_path / "store" and m.name == "evil_name"


@pytest.mark.parametrize("entries,symlink,needle", [
    ({"../escape.pmx": b"x"}, None, "outside the model folder"),
    ({"/abs/model.pmx": b"x"}, None, "outside the model folder"),
    ({"C:/win/model.pmx": b"x"}, None, "outside the model folder"),
    ({"a\\..\\..\\b.pmx": b"x"}, None, "outside the model folder"),
    ({"ok.txt": b"x"}, "link.pmx", "symbolic link"),
    ({"bomb.pmx": b"\0" * (8 << 20)}, None, "zip bomb"),
    ({"readme.txt": b"no model here"}, None, "no .pmx"),
    ({"a.pmx": b"x", "b.pmx": b"y"}, None, "several .pmx"),
    ({"m.pmx": b"PMX garbage"}, None, "m.pmx:"),
], ids=["dotdot", "absolute", "drive", "backslashes", "symlink", "bomb", "no-model", "two-models", "not-pmx"])
def test_hostile_uploads_are_refused_in_one_line(tmp_path, entries, symlink, needle):
    store = tmp_path / "store"
    up = _zip(tmp_path, entries, symlink=symlink)
    with pytest.raises(ModelStoreError) as e:
        install(up, "evil.zip", store)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not any(store.iterdir())                           # nothing left behind
    assert not (tmp_path / "escape.pmx").exists()


def test_too_many_entries_and_not_a_zip(tmp_path):
    up = _zip(tmp_path, {f"f{i}.txt": b"" for i in range(MAX_ENTRIES + 1)})
    with pytest.raises(ModelStoreError, match="entries"):
        install(up, "many.zip", tmp_path / "store")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ModelStoreError, match="zip"):
        install(junk, "junk.zip", tmp_path / "store")
    with pytest.raises(ModelStoreError, match="expected a .pmx"):
        install(junk, "photo.jpg", tmp_path / "store")

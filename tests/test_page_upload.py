"""Dropping a model on the page: POST /upload, the model list, switching, and refusals."""
from __future__ import annotations

import asyncio
import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

RENDERER = Path(__file__).resolve().parents[1] / "renderer"
THREE = RENDERER / "node_modules" / "three" / "build" / "three.module.js"
AVATAR = RENDERER / "models" / "openvtuber" / "openvtuber.pmx"
pytestmark = pytest.mark.skipif(not (THREE.is_file() and AVATAR.is_file()),
                                reason="needs renderer/node_modules and the bundled avatar (make install)")


def _arun(coro):
    with ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


@pytest.fixture()
def server(tmp_path, monkeypatch):
    from openvtuber.bridge.server import PageServer

    monkeypatch.setenv("OPENVTUBER_DATA_DIR", str(tmp_path / "data"))
    seen = []
    srv = PageServer(port=0, on_command=seen.append).start()
    srv.seen = seen
    yield srv
    srv.close()


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in entries.items():
            zf.writestr(n, d)
    return buf.getvalue()


async def _post(srv, name: str, body: bytes, origin: str | None = "own") -> tuple[int, dict]:
    import aiohttp

    headers = {"Origin": f"http://127.0.0.1:{srv.port}"} if origin == "own" else ({"Origin": origin} if origin else {})
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{srv.port}/upload", params={"name": name}, data=body,
                          headers=headers) as r:
            return r.status, await r.json()


async def _get(srv, path: str) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{srv.port}/{path}") as r:
            return await r.json()


def test_upload_switch_and_list(server):
    status, body = _arun(_post(server, "Kawaii Model.zip", _zip({"Kawaii/kawaii.pmx": AVATAR.read_bytes()})))
    assert status == 200 and body["ok"] and body["name"] == "Kawaii_Model" and body["report"]["ok"]
    cfg = _arun(_get(server, "config.json"))
    assert cfg["model"] == "/model/kawaii.pmx" and cfg["report"]["bones"]["頭"] == "頭"
    assert _arun(_get(server, "models.json")) == {"models": ["bundled", "Kawaii_Model"], "current": "Kawaii_Model"}
    assert [c.cmd for c in server.seen] == ["model"]          # the bridge hears it (to remember it)
    assert server.select_model("bundled") and _arun(_get(server, "config.json"))["model"] == "/model/openvtuber.pmx"
    assert not server.select_model("no-such-model")


@pytest.mark.parametrize("origin", ["http://evil.example", None])
def test_upload_from_a_foreign_page_is_refused(server, origin):
    status, body = _arun(_post(server, "x.zip", _zip({"x.pmx": AVATAR.read_bytes()}), origin=origin))
    assert status == 403 and not body["ok"]
    assert _arun(_get(server, "models.json"))["models"] == ["bundled"]


def test_hostile_or_oversized_uploads_are_refused(server, monkeypatch):
    from openvtuber.bridge import model_store

    status, body = _arun(_post(server, "evil.zip", _zip({"../../escape.pmx": b"x"})))
    assert status == 400 and "outside the model folder" in body["error"]
    status, body = _arun(_post(server, "photo.jpg", b"\xff\xd8\xff"))
    assert status == 400 and "expected a .pmx" in body["error"]
    monkeypatch.setattr(model_store, "MAX_UPLOAD", 1000)
    status, body = _arun(_post(server, "big.pmx", b"\0" * 5000))
    assert status == 413
    assert _arun(_get(server, "config.json"))["model"] == "/model/openvtuber.pmx"   # still the bundled one


def test_the_panel_adds_a_model_and_every_page_switches_to_it(server, tmp_path):
    import os
    import shutil
    import time

    chromium = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
    if chromium is None:
        pytest.skip("needs Chromium (/usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    upload = tmp_path / "Friend.zip"
    upload.write_bytes(_zip({"Friend/friend.pmx": AVATAR.read_bytes()}))
    args = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=args)
        try:
            pages = [b.new_page(viewport={"width": 480, "height": 360}) for _ in range(2)]
            for pg in pages:
                pg.goto(f"http://127.0.0.1:{server.port}/")
            ready = "() => !!(window.openvtuber && window.openvtuber.ready && window.openvtuber.stats().connected)"

            def wait(pg, js, timeout=20.0):
                end = time.monotonic() + timeout
                while not pg.evaluate(js):
                    assert time.monotonic() < end, js
                    time.sleep(0.1)

            for pg in pages:
                wait(pg, ready)
                wait(pg, "() => document.querySelectorAll('#model option').length === 1")
            pages[0].set_input_files("#upload", str(upload))
            for pg in pages:                               # the other open page follows too
                wait(pg, "() => [...document.querySelectorAll('#model option')].map(o => o.value).join() "
                         "=== 'bundled,Friend'")
                wait(pg, "() => document.getElementById('model').value === 'Friend'")
                wait(pg, "() => !!window.openvtuber.bones()['頭']")
            assert "every standard bone and morph found" in pages[0].inner_text("#report")
            pages[1].select_option("#model", "bundled")    # the picker switches back, for both
            wait(pages[0], "() => document.getElementById('model').value === 'bundled'")
            assert _arun(_get(server, "config.json"))["model"] == "/model/openvtuber.pmx"
        finally:
            b.close()

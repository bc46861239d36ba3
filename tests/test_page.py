"""The three.js page in real headless Chromium, fed by the real page server.

Asserts what a user would see: the model drawn, bones read back from the page after a
pose went through ``PageOutput`` → ``/ws``, morphs changing the pixels where the eyes and
mouth are, a transparent OBS mode; and that the server refuses what it must (paths out
of its roots, foreign WebSocket origins, oversized messages) while serving on.
"""
from __future__ import annotations

import asyncio
import io
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from openvtuber.bridge.page_out import PageOutput, encode_pose
from openvtuber.bridge.server import RENDERER_DIR, Command, PageServer, parse_command, split_raw_path
from openvtuber.protocols.pose import AvatarPose
from openvtuber.tracking.solvers.geometry import quat_from_ypr

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
THREE = RENDERER_DIR / "node_modules" / "three" / "build" / "three.module.js"
CLI = [sys.executable, "-m", "openvtuber.bridge.cli"]
ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

needs_three = pytest.mark.skipif(not THREE.is_file(), reason="three.js not installed: run `npm ci` in renderer/")


# ---- a small PMX built here, so the test knows where everything is -----------------------------

def _text(s: str) -> bytes:
    b = s.encode("utf-16-le")
    return struct.pack("<i", len(b)) + b


def _box(lo, hi):
    """24 vertices (4 per face, flat normals, each flagged top/bottom) and 12 outward-wound triangles."""
    def corner(ix, iy, iz):
        return ((lo[0], hi[0])[ix], (lo[1], hi[1])[iy], (lo[2], hi[2])[iz]), iy == 1
    faces = [((1, 0, 0), [(1, 0, 0), (1, 1, 0), (1, 1, 1), (1, 0, 1)]),
             ((-1, 0, 0), [(0, 0, 1), (0, 1, 1), (0, 1, 0), (0, 0, 0)]),
             ((0, 1, 0), [(0, 1, 0), (0, 1, 1), (1, 1, 1), (1, 1, 0)]),
             ((0, -1, 0), [(0, 0, 1), (0, 0, 0), (1, 0, 0), (1, 0, 1)]),
             ((0, 0, 1), [(1, 0, 1), (1, 1, 1), (0, 1, 1), (0, 0, 1)]),
             ((0, 0, -1), [(0, 0, 0), (0, 1, 0), (1, 1, 0), (1, 0, 0)])]
    verts, tris = [], []
    for n, quad in faces:
        base = len(verts)
        verts += [(*corner(*c), n) for c in quad]
        a, b, c = (np.array(corner(*quad[i])[0], float) + 1e-3 * np.array(quad[i]) for i in range(3))
        outward = np.dot(np.cross(b - a, c - a), n) >= 0        # (offset keeps flat boxes decidable)
        tris += [tuple(base + i for i in t) for t in ([(0, 1, 2), (0, 2, 3)] if outward else [(0, 2, 1), (0, 3, 2)])]
    return verts, tris


ENGLISH = {"センター": "center", "上半身": "UpperBody", "首": "Neck", "頭": "Head", "左目": "Eye_L", "右目": "Eye_R",
           "まばたき": "blink", "あ": "A"}


def build_test_pmx(path: Path, english: bool = False) -> None:
    """A bust: torso, neck, head, two dark eyes, a mouth that opens with あ; eyes close with まばたき.

    MMD data is left-handed with the model facing −Z; MMDLoader turns it to face +Z. With
    ``english`` every bone and morph has an English name instead (as many exported models do).
    """
    rename = (lambda n: ENGLISH[n]) if english else (lambda n: n)  # noqa: E731
    bones = [("センター", (0, 0, 0), -1), ("上半身", (0, 10, 0), 0), ("首", (0, 14.5, 0), 1),
             ("頭", (0, 15.5, 0), 2), ("左目", (1.0, 17.8, -1.5), 3), ("右目", (-1.0, 17.8, -1.5), 3)]
    bone_index = {name: i for i, (name, _, _) in enumerate(bones)}
    parts = [  # material, bone, box
        ("body", "上半身", ((-3.5, 8, -1.5), (3.5, 14.5, 1.5)), (0.25, 0.35, 0.8)),
        ("skin", "首", ((-0.8, 14.0, -0.8), (0.8, 15.8, 0.8)), (1.0, 0.85, 0.75)),
        ("skin", "頭", ((-2.2, 15.5, -2.0), (2.2, 19.8, 2.0)), (1.0, 0.85, 0.75)),
        ("eye", "左目", ((0.45, 17.3, -2.25), (1.55, 18.3, -2.0)), (0.05, 0.05, 0.1)),
        ("eye", "右目", ((-1.55, 17.3, -2.25), (-0.45, 18.3, -2.0)), (0.05, 0.05, 0.1)),
        ("mouth", "頭", ((-0.9, 16.45, -2.2), (0.9, 16.45, -2.0)), (0.7, 0.05, 0.1)),
    ]
    materials = ["body", "skin", "eye", "mouth"]
    colours = {m: c for m, _, _, c in parts}
    verts, tris_by_mat, blink, aa = [], {m: [] for m in materials}, [], []
    for mat, bone, (lo, hi), _ in parts:
        v, t = _box(lo, hi)
        base = len(verts)
        for j, (p, top, n) in enumerate(v):
            verts.append((p, n, bone_index[bone]))
            if mat == "eye":              # まばたき: both lids meet in the middle
                blink.append((base + j, (0, -0.5 if top else 0.5, 0)))
            if mat == "mouth":            # あ: the flat mouth opens 1.2 units tall
                aa.append((base + j, (0, 0.3 if top else -0.9, 0)))
        tris_by_mat[mat] += [tuple(base + i for i in tri) for tri in t]
    out = bytearray(b"PMX " + struct.pack("<f", 2.0) + bytes([8, 0, 0, 4, 1, 1, 1, 1, 1]))
    out += _text("テスト") + _text("test") + _text("") + _text("")
    out += struct.pack("<i", len(verts))
    for p, n, b in verts:
        out += struct.pack("<3f3f2fBbf", *p, *n, 0.5, 0.5, 0, b, 1.0)
    faces = [i for m in materials for tri in tris_by_mat[m] for i in tri]
    out += struct.pack("<i", len(faces)) + struct.pack(f"<{len(faces)}i", *faces)
    out += struct.pack("<i", 0)                                   # textures
    out += struct.pack("<i", len(materials))
    for m in materials:
        r, g, b = colours[m]
        flags = 0x10 if m in ("body", "skin") else 0x00
        out += _text(m) + _text(m) + struct.pack("<4f3ff3fB4ffbbBBb", r, g, b, 1.0, 0, 0, 0, 5.0, r * 0.5, g * 0.5,
                                                 b * 0.5, flags, 0, 0, 0, 1, 0.6, -1, -1, 0, 1, 0)
        out += _text("") + struct.pack("<i", 3 * len(tris_by_mat[m]))
    out += struct.pack("<i", len(bones))
    for name, pos, parent in bones:
        out += _text(rename(name)) + _text(name) + struct.pack("<3fbiH3f", *pos, parent, 0, 0x001A, 0, 1, 0)
    out += struct.pack("<i", 2)
    for name, offsets in (("まばたき", blink), ("あ", aa)):
        out += _text(rename(name)) + _text(name) + struct.pack("<BBi", 1 if name == "まばたき" else 3, 1, len(offsets))
        for vi, d in offsets:
            out += struct.pack("<i3f", vi, *d)
    out += struct.pack("<i", 0) + struct.pack("<i", 0) + struct.pack("<i", 0)   # frames, rigid bodies, joints
    path.write_bytes(bytes(out))


# ---- pure parts ------------------------------------------------------------------------------

def test_panel_commands_are_parsed_strictly():
    assert parse_command('{"cmd":"calibrate"}') == Command("calibrate")
    assert parse_command('{"cmd":"mirror","value":false}') == Command("mirror", False)
    assert parse_command('{"cmd":"smoothing","value":0.5}') == Command("smoothing", 0.5)
    for bad in ("", "nope", "[]", '{"cmd":"mirror","value":1}', '{"cmd":"smoothing","value":2}',
                '{"cmd":"smoothing","value":NaN}', '{"cmd":"smoothing","value":true}', '{"cmd":"rm -rf"}',
                "[" * 100000):
        assert parse_command(bad) is None, bad


def test_paths_are_split_safely():
    assert split_raw_path("/") == [""]
    assert split_raw_path("/model/%E9%A0%AD/tex.png") == ["model", "頭", "tex.png"]
    for bad in ("/../etc/passwd", "/%2e%2e/x", "/model/..%2f..%2fpyproject.toml", "/model/a%2fb", "/model/a%5cb",
                "/model\\..\\x", "/model/%00x", "/model/.hidden", "/model//x", "/model/", "/model/%ff"):
        assert split_raw_path(bad) is None, bad


def test_pose_messages_are_compact_and_finite():
    pose = AvatarPose(t=1.234567891, frame=7, found=True,
                      bones={"頭": (0.1234567, 0.0, 0.0, 0.99236), "首": (math.nan, 0, 0, 1)},
                      morphs={"まばたき": 0.333333333, "あ": math.inf})
    text = encode_pose(pose)
    assert " " not in text and "頭" in text                       # compact, names as UTF-8
    msg = json.loads(text)
    assert msg["type"] == "pose" and msg["frame"] == 7 and msg["found"] is True and msg["t"] == 1.23457
    assert msg["bones"]["首"] == [0.0, 0.0, 0.0, 1.0]             # NaN never reaches the page
    assert abs(math.hypot(*msg["bones"]["頭"]) - 1) < 1e-4
    assert msg["morphs"] == {"まばたき": 0.33333, "あ": 0.0}


def test_bridge_applies_panel_commands(tmp_path, monkeypatch):
    from openvtuber.bridge.page_settings import PageSettings
    from openvtuber.bridge.run import Bridge, RunOptions
    from openvtuber.bridge.status import StatusLine

    monkeypatch.setenv("OPENVTUBER_CONFIG_DIR", str(tmp_path))

    class Tracker:
        on_calibrated = None
        asked: list[int] = []

        def calibrate(self, frames: int) -> None:
            self.asked.append(frames)

    bridge = Bridge.__new__(Bridge)          # only the command handler, no source or threads
    bridge.opts, bridge.status, bridge.tracker = RunOptions(), StatusLine(io.StringIO()), Tracker()
    bridge.page_settings = PageSettings()
    bridge._calibrate_request = threading.Event()
    bridge._command(Command("mirror", False))
    assert bridge.opts.rig.mirror is False
    assert PageSettings.load() == PageSettings(mirror=False)          # survives a restart
    bridge._command(Command("calibrate"))
    assert bridge._calibrate_request.is_set()          # the tracker thread starts it between frames
    bridge._command(Command("smoothing", 0.7))        # the page's own easing: only remembered
    assert PageSettings.load() == PageSettings(mirror=False, smoothing=0.7)
    bridge.tracker = None                              # replays have no tracker: calibrate is ignored
    bridge._command(Command("calibrate"))


# ---- fixtures: one server and one browser for the module --------------------------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("model")
    build_test_pmx(d / "test.pmx")
    outside = tmp_path_factory.mktemp("outside") / "secret.txt"
    outside.write_text("TOPSECRET\n")
    (d / "secret.txt").symlink_to(outside)                # a link in the model folder pointing out of it
    return d


@pytest.fixture(scope="module")
def server(model_dir):
    if not THREE.is_file():
        pytest.skip("three.js not installed: run `npm ci` in renderer/")
    commands: list[Command] = []
    srv = PageServer(model=model_dir / "test.pmx", port=0, on_command=commands.append).start()
    srv.commands_seen = commands
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or not THREE.is_file():
        pytest.skip("needs Chromium (/usr/bin/chromium) and renderer/node_modules (npm ci in renderer/)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """A page on the server, recording console errors and every request it makes."""

    def __init__(self, browser, url: str):
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": 640, "height": 480})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url)
        self.page.wait_for_function("() => window.openvtuber && window.openvtuber.ready && "
                                    "window.openvtuber.stats().connected", timeout=20000)

    def eval(self, js: str):
        return self.page.evaluate(js)

    def shot(self, transparent: bool = False) -> np.ndarray:
        from PIL import Image

        png = self.page.screenshot(omit_background=transparent)
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))

    def wait(self, js: str, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(js)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.05)


def _arun(coro):
    """``asyncio.run`` on a thread of its own (Playwright's sync API holds this thread's loop)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


def _angle(q1, q2) -> float:
    return math.degrees(2 * math.acos(min(1.0, abs(float(np.dot(q1, q2))))))


def _send(server, bones=None, morphs=None, frame=[0]) -> None:  # noqa: B006 - a frame counter
    frame[0] += 1
    PageOutput(server).send(AvatarPose(t=frame[0] / 30, frame=frame[0], found=True, bones=bones or {},
                                       morphs=morphs or {}))


def _settle(pg: Page, server, bones: dict, tol: float = 1.0) -> dict:
    """Send ``bones`` (repeatedly, as the tracker would) until the page shows them within ``tol``°."""
    deadline = time.monotonic() + 5
    while True:
        _send(server, bones)
        got = pg.eval("window.openvtuber.bones()")
        if all(_angle(got[n], q) < tol for n, q in bones.items()) or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.fixture(scope="module")
def page(browser, server):
    pg = Page(browser, server.url)
    yield pg
    pg.page.close()


# ---- the page --------------------------------------------------------------------------------

def test_page_loads_from_the_bridge_only_and_draws_the_model(page, server):
    origin = server.url.rstrip("/")
    assert page.errors == []
    foreign = [u for u in page.requests if not (u.startswith(origin + "/") or u.startswith(("data:", "blob:")))]
    assert foreign == [], foreign
    assert any("/three/build/three.module.js" in u for u in page.requests)
    img = page.shot()
    bg = img[5, -5, :3].astype(int)                            # top-right corner: background
    centre = img[200:280, 280:360, :3].astype(int)
    assert (np.abs(centre - bg).sum(axis=2) > 40).mean() > 0.8    # the avatar fills the centre
    assert set(page.eval("Object.keys(window.openvtuber.bones())")) >= {"頭", "首", "左目", "右目", "上半身"}


def test_head_and_gaze_arrive_as_local_rotations(page, server):
    cases = [{"頭": quat_from_ypr(30, 0, 0)}, {"頭": quat_from_ypr(0, 20, 0)}, {"頭": quat_from_ypr(0, 0, -15)},
             {"頭": quat_from_ypr(-20, 10, 5), "首": quat_from_ypr(-10, 5, 2)},
             {"左目": quat_from_ypr(15, -10, 0), "右目": quat_from_ypr(-12, 8, 0)}]
    before = page.shot()
    for bones in cases:
        got = _settle(page, server, bones)
        for name, q in bones.items():
            assert _angle(got[name], q) < 1.0, (name, got[name], q)
    # the head really turned on screen: yaw 30° moves the face's pixels
    _settle(page, server, {"頭": quat_from_ypr(30, 0, 0), "首": (0, 0, 0, 1), "左目": (0, 0, 0, 1), "右目": (0, 0, 0, 1)})
    turned = page.shot()
    assert np.abs(turned[:, :, :3].astype(int) - before[:, :, :3]).sum(axis=2).astype(bool).mean() > 0.02
    _settle(page, server, {"頭": (0, 0, 0, 1)})
    assert page.errors == []


def _region_change(a: np.ndarray, b: np.ndarray, cx: float, cy: float, rx: int, ry: int) -> float:
    y0, x0 = int(cy) - ry, int(cx) - rx
    pa, pb = a[y0:y0 + 2 * ry, x0:x0 + 2 * rx, :3].astype(int), b[y0:y0 + 2 * ry, x0:x0 + 2 * rx, :3].astype(int)
    return float((np.abs(pa - pb).sum(axis=2) > 60).mean())


def test_blink_and_mouth_morphs_change_the_right_pixels(page, server):
    rest = {n: (0, 0, 0, 1) for n in ("頭", "首", "左目", "右目", "上半身")}
    _settle(page, server, rest)
    _send(server, rest, {"まばたき": 0.0, "あ": 0.0})
    page.wait("Object.values(window.openvtuber.morphs()).every(w => w < 0.01)")
    neutral = page.shot()
    eye_l, eye_r, head = (page.eval(f"window.openvtuber.screen('{n}')") for n in ("左目", "右目", "頭"))
    mouth = ((eye_l[0] + eye_r[0]) / 2, head[1] + (eye_l[1] - head[1]) * 0.38)
    ex, ey = abs(eye_l[0] - eye_r[0]) / 2, abs(eye_l[1] - head[1])

    _send(server, rest, {"まばたき": 1.0, "あ": 0.0})
    assert page.wait("window.openvtuber.morphs()['まばたき'] > 0.99")
    closed = page.shot()
    for eye in (eye_l, eye_r):
        assert _region_change(neutral, closed, eye[0], eye[1], int(ex * 0.4), int(ey * 0.15)) > 0.3
    assert _region_change(neutral, closed, *mouth, int(ex * 0.6), int(ey * 0.1)) < 0.02

    _send(server, rest, {"まばたき": 0.0, "あ": 1.0})
    assert page.wait("window.openvtuber.morphs()['あ'] > 0.99 && window.openvtuber.morphs()['まばたき'] < 0.01")
    open_mouth = page.shot()
    assert _region_change(neutral, open_mouth, *mouth, int(ex * 0.6), int(ey * 0.1)) > 0.3
    assert _region_change(neutral, open_mouth, eye_l[0], eye_l[1], int(ex * 0.4), int(ey * 0.15)) < 0.02
    _send(server, rest, {"まばたき": 0.0, "あ": 0.0})


def test_panel_sends_commands_and_follows_settings(page, server):
    server.commands_seen.clear()
    page.page.click("#calibrate")
    page.page.uncheck("#mirror")
    page.page.fill("#smoothing", "0.5")
    deadline = time.monotonic() + 5
    while len(server.commands_seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.commands_seen[:3] == [Command("calibrate"), Command("mirror", False), Command("smoothing", 0.5)]
    assert server.settings == {"mirror": False, "smoothing": 0.5}
    page.page.check("#mirror")
    page.page.fill("#smoothing", "0.2")
    page.wait("window.openvtuber.stats().connected")
    assert page.errors == []


def test_transparent_mode_has_no_background_and_no_ui(browser, server):
    pg = Page(browser, server.url + "?transparent=1")
    try:
        img = pg.shot(transparent=True)
        h, w = img.shape[:2]
        for y, x in ((0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (5, 5), (5, w - 6)):
            assert img[y, x, 3] == 0, (y, x, img[y, x])
        assert img[h // 2, w // 2, 3] == 255                   # the avatar itself is opaque
        assert pg.page.is_hidden("#panel")
        assert pg.errors == []
    finally:
        pg.page.close()


# ---- what the server must refuse -------------------------------------------------------------

def _raw_get(port: int, path: str, host: str | None = None) -> tuple[int, bytes]:
    """A request with exactly this path on the wire (clients normalise ``..`` away)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\nConnection: close\r\n\r\n"
                  .encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_server_refuses_paths_outside_what_it_serves(server, model_dir):
    port = server.port
    bad = ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/model/..%2f..%2fpyproject.toml",
           "/model/../../../etc/passwd", "/model/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/model/..\\..\\pyproject.toml",
           "/model/%5c..%5c..%5cpyproject.toml", "/model/test.pmx%00.png", "/model/secret.txt", "/model/",
           "/model", "/three/package.json", "/three/../../../pyproject.toml", "/three/build/", "/package.json",
           "/pmx_writer.py", "/node_modules/three/build/three.module.js", "/.gitignore", "/three/examples/fonts/LICENSE",
           "//etc/passwd", "/model/%252e%252e/test.pmx"]
    for path in bad:
        status, body = _raw_get(port, path)
        assert status in (400, 403, 404, 405), (path, status)
        assert b"root:" not in body and b"TOPSECRET" not in body and b"[project]" not in body, path
    status, _ = _raw_get(port, "/", host="evil.example")          # DNS rebinding
    assert status == 403
    status, body = _raw_get(port, "/model/test.pmx")             # still serving
    assert status == 200 and body[:4] == b"PMX "
    status, body = _raw_get(port, "/three/build/three.module.js")
    assert status == 200 and b"REVISION" in body


def test_mime_types(server):
    import urllib.request

    base = server.url.rstrip("/")
    for path, mime in (("/", "text/html"), ("/main.js", "text/javascript"), ("/style.css", "text/css"),
                       ("/three/build/three.module.js", "text/javascript"), ("/model/test.pmx", "application/octet-stream"),
                       ("/config.json", "application/json")):
        with urllib.request.urlopen(base + path) as r:
            assert r.headers["Content-Type"].startswith(mime), path
            assert r.headers.get("X-Content-Type-Options") == "nosniff", path


async def _ws_checks(server) -> None:
    import aiohttp

    url = f"http://127.0.0.1:{server.port}/ws"
    own = f"http://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession() as session:
        for origin in ("http://evil.example", "null", f"http://127.0.0.1:{server.port + 1}", None):
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await session.ws_connect(url, origin=origin) if origin else await session.ws_connect(url)
            assert e.value.status == 403
        before = server.oversize
        ws = await session.ws_connect(url, origin=own, max_msg_size=0)
        try:                                                   # the server may hang up mid-send
            await ws.send_str("x" * (10 * 1024 * 1024))
            msg = await asyncio.wait_for(ws.receive(), 10)
            while msg.type == aiohttp.WSMsgType.TEXT:           # the settings greeting may come first
                msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING,
                                aiohttp.WSMsgType.ERROR)
        except ConnectionError:
            pass
        await ws.close()
        for _ in range(50):
            if server.oversize > before:
                break
            await asyncio.sleep(0.05)
        assert server.oversize == before + 1
        # junk is dropped and counted, the connection lives on and poses still arrive
        ws = await session.ws_connect(url, origin=f"http://localhost:{server.port}")
        rejected = server.rejected_messages
        await ws.send_str("not json")
        await ws.send_bytes(b"\x00\x01")
        await ws.send_str('{"cmd":"mirror","value":"yes"}')
        await asyncio.sleep(0.2)
        assert server.rejected_messages == rejected + 3
        commands = server.commands                             # a flood is cut to 50 per second
        for _ in range(200):
            await ws.send_str('{"cmd":"smoothing","value":0.2}')
        await asyncio.sleep(0.3)
        assert server.commands - commands <= 50 and server.rejected_messages >= rejected + 3 + 150
        _send(server, {"頭": (0, 0, 0, 1)})
        while True:
            msg = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            if msg["type"] == "pose":
                break
        assert msg["bones"]["頭"] == [0, 0, 0, 1]
        await ws.close()


def test_websocket_refuses_foreign_origins_and_huge_messages(server):
    _arun(_ws_checks(server))
    status, _ = _raw_get(server.port, "/")
    assert status == 200


def test_a_frozen_page_never_holds_up_the_others(server):
    """A client that stops reading loses poses; broadcast never blocks and others stay current."""
    import aiohttp

    frozen = socket.create_connection(("127.0.0.1", server.port))
    frozen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    frozen.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{server.port}\r\n\r\n").encode())
    assert b" 101 " in frozen.recv(4096)

    async def live() -> dict:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"http://127.0.0.1:{server.port}/ws", origin=f"http://127.0.0.1:{server.port}")
            morphs = {f"m{i}": 0.5 for i in range(3000)}          # ≈ 40 KB per message
            for i in range(300):                                   # ≈ 12 MB: far more than socket buffers hold
                _send(server, {"頭": (0, 0, 0, 1)}, {**morphs, "last": i / 299})
            last = None
            while last != 1.0:
                msg = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
                if msg["type"] == "pose":
                    last = msg["morphs"]["last"]
            await ws.close()
            return {"dropped": server.dropped}

    try:
        result = _arun(live())
        assert result["dropped"] > 0                              # the frozen client's queue shed poses
    finally:
        frozen.close()


def test_token_required_off_loopback(model_dir, browser):
    srv = PageServer(model=model_dir / "test.pmx", host="127.0.0.2", port=0).start()
    try:
        assert srv.token and f"?token={srv.token}" in srv.url
        import urllib.error
        import urllib.request

        base = f"http://127.0.0.2:{srv.port}"
        for path in ("/", "/main.js", "/model/test.pmx", f"/?token={srv.token}x"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(base + path)
            assert e.value.code == 403
        with urllib.request.urlopen(f"{base}/?token={srv.token}") as r:
            cookie = r.headers["Set-Cookie"].split(";")[0]
            assert "HttpOnly" in r.headers["Set-Cookie"]
        req = urllib.request.Request(base + "/model/test.pmx", headers={"Cookie": cookie})
        with urllib.request.urlopen(req) as r:
            assert r.read(4) == b"PMX "
        pg = Page(browser, srv.url)            # the page carries the token on: cookie, config.json, /ws
        try:
            _send(srv, {"頭": quat_from_ypr(20, 0, 0)})
            assert pg.errors == [] and pg.wait("window.openvtuber.stats().messages > 0")
        finally:
            pg.page.close()
    finally:
        srv.close()


# ---- the command line ------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_three
def test_cli_run_page_serves_poses_and_takes_commands(model_dir, tmp_path):
    import aiohttp

    port = _free_port()
    env = {**os.environ, "OPENVTUBER_CONFIG_DIR": str(tmp_path)}
    proc = subprocess.Popen([*CLI, "run", "--page", "--no-vcam", "--source", "demo", "--no-vmc", "--http-port", str(port),
                             "--model", str(model_dir / "test.pmx")], stderr=subprocess.PIPE, text=True, env=env)
    try:
        # the test model has no 両目: said once, in one line, and it still runs
        assert proc.stderr.readline().strip() == \
            "model test.pmx lacks the bones 両目: those parts of the pose are not shown"
        line = proc.stderr.readline()
        assert line.strip() == f"page: http://127.0.0.1:{port}/", line

        async def talk() -> dict:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/config.json") as r:
                    assert (await r.json())["model"] == "/model/test.pmx"
                ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws", origin=f"http://127.0.0.1:{port}")
                await ws.send_str('{"cmd":"mirror","value":false}')
                while True:
                    msg = json.loads((await asyncio.wait_for(ws.receive(), 30)).data)
                    if msg["type"] == "pose" and msg["found"]:
                        await ws.close()
                        return msg

        msg = _arun(talk())
        assert set(msg["bones"]) >= {"頭", "首", "左目", "右目"} and "まばたき" in msg["morphs"]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    # the panel's mirror choice was saved for the next run
    assert json.loads((tmp_path / "page_settings.json").read_text())["mirror"] is False


@needs_three
def test_cli_page_errors_are_one_line(model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([*CLI, "run", "--page", "--source", "demo", "--no-vmc", "--http-port", str(port),
                               "--model", str(model_dir / "test.pmx")], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "already in use" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run([*CLI, "run", "--page", "--no-vmc", "--model", str(model_dir / "missing.pmx")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "no such file" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_english_named_models_resolve_through_aliases(browser, tmp_path):
    build_test_pmx(tmp_path / "english.pmx", english=True)
    srv = PageServer(model=tmp_path / "english.pmx", port=0).start()
    try:
        pg = Page(browser, srv.url)
        try:
            assert set(pg.eval("Object.keys(window.openvtuber.bones())")) >= {"頭", "首", "左目", "右目", "上半身"}
            assert set(pg.eval("Object.keys(window.openvtuber.morphs())")) == {"まばたき", "あ"}
            got = _settle(pg, srv, {"頭": quat_from_ypr(0, 0, 25), "右目": quat_from_ypr(-10, 0, 0)})
            assert _angle(got["頭"], quat_from_ypr(0, 0, 25)) < 1.0 and _angle(got["右目"], quat_from_ypr(-10, 0, 0)) < 1.0
            _send(srv, {}, {"まばたき": 1.0})
            assert pg.wait("window.openvtuber.morphs()['まばたき'] > 0.99") and pg.errors == []
        finally:
            pg.page.close()
    finally:
        srv.close()


def test_a_broken_model_is_one_clear_message_on_the_page(browser, tmp_path):
    (tmp_path / "broken.pmx").write_bytes(b"PMX " + b"\xff" * 64)
    srv = PageServer(model=tmp_path / "broken.pmx", port=0).start()
    try:
        page = browser.new_page()
        try:
            page.goto(srv.url)
            page.wait_for_function("() => window.openvtuber && window.openvtuber.stats().error", timeout=10000)
            assert "broken.pmx" in page.eval_on_selector("#error", "e => e.textContent")
            assert page.is_visible("#error") and not page.evaluate("window.openvtuber.ready")
        finally:
            page.close()
        assert _raw_get(srv.port, "/")[0] == 200
    finally:
        srv.close()


# ---- the bundled avatar, once its generator has written it -----------------------------------

BUNDLED = RENDERER_DIR / "models" / "openvtuber" / "openvtuber.pmx"


def test_bundled_avatar_loads_and_follows_the_head(browser):
    if not BUNDLED.is_file():
        pytest.skip("bundled avatar not generated yet (renderer/models/openvtuber/openvtuber.pmx)")
    srv = PageServer(port=0).start()
    try:
        pg = Page(browser, srv.url)
        try:
            assert pg.errors == []
            assert set(pg.eval("Object.keys(window.openvtuber.bones())")) >= {"頭", "首", "左目", "右目"}
            assert set(pg.eval("Object.keys(window.openvtuber.morphs())")) >= {"まばたき", "あ"}
            neutral = pg.shot()
            bg = neutral[5, -5, :3].astype(int)
            assert (np.abs(neutral[200:280, 280:360, :3].astype(int) - bg).sum(axis=2) > 40).mean() > 0.5
            eye_l, eye_r = pg.eval("window.openvtuber.screen('左目')"), pg.eval("window.openvtuber.screen('右目')")
            sep = abs(eye_l[0] - eye_r[0])            # eye bones sit deep in the head: look at the whole eye band
            _send(srv, {}, {"まばたき": 1.0})
            assert pg.wait("window.openvtuber.morphs()['まばたき'] > 0.99")
            closed = pg.shot()
            assert _region_change(neutral, closed, (eye_l[0] + eye_r[0]) / 2, eye_l[1], int(sep * 1.2), int(sep * 0.5)) > 0.05
            _send(srv, {}, {"まばたき": 0.0})
            for q in (quat_from_ypr(30, 0, 0), quat_from_ypr(0, 15, -10)):
                got = _settle(pg, srv, {"頭": q, "左目": quat_from_ypr(10, 5, 0)})
                assert _angle(got["頭"], q) < 1.0 and _angle(got["左目"], quat_from_ypr(10, 5, 0)) < 1.0
            assert pg.errors == []
        finally:
            pg.page.close()
    finally:
        srv.close()


def test_mirror_toggle_flips_the_avatar_end_to_end(browser, tmp_path):
    """A recording of a head turned 30° to the person's left, replayed through the real bridge:
    mirrored, the avatar's head turns to its own right (negative yaw about +Y in three.js);
    the panel's mirror toggle flips it to its own left."""
    if not (RENDERER_DIR / "models" / "openvtuber" / "openvtuber.pmx").is_file():
        pytest.skip("bundled avatar not generated yet (make install)")
    rec = tmp_path / "turned.jsonl"
    base = {"found": True, "confidence": 1.0, "yaw": 30.0, "pitch": 0.0, "roll": 0.0, "x": 0.0, "y": 0.0, "z": 0.6,
            "gaze_left_yaw": 0.0, "gaze_left_pitch": 0.0, "gaze_right_yaw": 0.0, "gaze_right_pitch": 0.0,
            "eye_open_left": 1.0, "eye_open_right": 1.0, "mouth_open": 0.0, "smile": 0.0,
            "brow_left": 0.0, "brow_right": 0.0, "path": None}
    rec.write_text("".join(json.dumps({**base, "frame": i, "t": i / 30}) + "\n" for i in range(900)))
    port = _free_port()
    env = {**os.environ, "OPENVTUBER_CONFIG_DIR": str(tmp_path)}
    proc = subprocess.Popen([*CLI, "run", "--page", "--source", f"replay:{rec}", "--no-vmc", "--http-port", str(port)],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        while "page:" not in (line := proc.stderr.readline()):
            assert line, "the bridge stopped before serving the page"
        page = Page(browser, f"http://127.0.0.1:{port}/")
        head_yaw = "() => { const q = window.openvtuber.bones()['頭']; return q ? 2 * Math.atan2(q[1], q[3]) * 180 / Math.PI : null; }"
        assert page.wait(f"() => ({head_yaw})() < -5", timeout=15)         # mirrored by default
        page.page.click("#mirror")                                        # the panel's Mirror box
        assert page.wait(f"() => ({head_yaw})() > 5", timeout=15)          # the toggle reached the rig
        assert not page.errors
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)


def test_a_model_without_a_head_bone_is_reported_and_still_renders(browser, tmp_path):
    """頭 renamed to 顔 (same length, so the file stays valid): the panel says what is missing,
    the page still draws the model and follows what it can (the neck)."""
    build_test_pmx(tmp_path / "full.pmx")
    data = (tmp_path / "full.pmx").read_bytes()
    name = struct.pack("<i", 2) + "頭".encode("utf-16-le")          # the bone's name: length 2, then UTF-16
    assert name in data                                             # (the bone, and its display frame entry)
    (tmp_path / "headless.pmx").write_bytes(data.replace(name, struct.pack("<i", 2) + "顔".encode("utf-16-le")))
    srv = PageServer(model=tmp_path / "headless.pmx", port=0).start()
    try:
        assert "頭" in srv.model_report["missing_required_bones"]
        pg = Page(browser, srv.url)
        try:
            report = pg.page.eval_on_selector("#report", "e => e.textContent")
            assert report.startswith("model lacks:") and "頭" in report.split()
            assert "頭" not in pg.eval("window.openvtuber.bones()")
            got = _settle(pg, srv, {"首": quat_from_ypr(20, 0, 0)})
            assert _angle(got["首"], quat_from_ypr(20, 0, 0)) < 1.0
            img = pg.shot()
            h, w = img.shape[:2]
            centre = img[h // 4: 3 * h // 4, w // 3: 2 * w // 3, :3].astype(int)
            background = img[2, w // 2, :3].astype(int)
            assert (np.abs(centre - background).sum(axis=2) > 60).mean() > 0.05     # the model is drawn
            assert pg.errors == []
        finally:
            pg.page.close()
    finally:
        srv.close()


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    return s


def _packets(sock: socket.socket, seconds: float) -> int:
    n, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sock.recv(65536)
            n += 1
        except socket.timeout:
            pass
    return n


@needs_three
def test_panel_shows_the_tracker_calibrates_it_and_moves_vmc(browser, tmp_path):
    """The real bridge (demo source) and the real page: the panel shows the tracker's rate and
    time, its Calibrate button calibrates the tracker (the calibration file appears), a VMC
    target typed in the panel takes effect at once, a bad one is marked, and the new target
    is used again after a restart."""
    first, second = _udp(), _udp()
    port = _free_port()
    env = {**os.environ, "OPENVTUBER_CONFIG_DIR": str(tmp_path)}

    def start(*vmc: str) -> subprocess.Popen:
        return subprocess.Popen([*CLI, "run", "--no-vcam", "--source", "demo", "--http-port", str(port), *vmc],
                                stderr=subprocess.PIPE, text=True, env=env)

    proc = start("--vmc", f"127.0.0.1:{first.getsockname()[1]}")
    try:
        while "page:" not in proc.stderr.readline():
            pass
        pg = Page(browser, f"http://127.0.0.1:{port}/")
        try:
            status = pg.wait("(s => s.startsWith('tracker') && s)(window.openvtuber.stats().status)", 10)
            assert status and re.match(r"tracker \d+ fps · \d+\.\d ms · face (found|not found) · page", status), status
            assert pg.eval("document.getElementById('vmc').value") == f"127.0.0.1:{first.getsockname()[1]}"
            assert _packets(first, 0.5) > 5
            pg.page.click("#calibrate")
            deadline = time.monotonic() + 15
            while not (tmp_path / "calibration.json").is_file() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert (tmp_path / "calibration.json").is_file(), "Calibrate did not reach the tracker"
            pg.page.fill("#vmc", f"127.0.0.1:{second.getsockname()[1]}")
            pg.page.press("#vmc", "Enter")
            assert pg.wait(f"window.openvtuber.stats().bridge.vmc === '127.0.0.1:{second.getsockname()[1]}'", 5)
            assert _packets(second, 0.5) > 5
            _packets(first, 0.3)                                          # what was already on its way
            assert _packets(first, 0.5) == 0
            pg.page.fill("#vmc", "127.0.0.1:notaport")
            pg.page.press("#vmc", "Enter")
            assert pg.wait("document.getElementById('vmc').classList.contains('bad')", 5)
            assert "port must be a number" in pg.eval("document.getElementById('vmc').title")
            assert _packets(second, 0.5) > 5                              # the good target stays
            assert pg.errors == []
        finally:
            pg.page.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    assert json.loads((tmp_path / "page_settings.json").read_text())["vmc"] == f"127.0.0.1:{second.getsockname()[1]}"
    proc = start()                                                  # no --vmc: the panel's choice
    try:
        assert _packets(second, 8) > 10
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
        first.close()
        second.close()

"""The page server: the three.js page, three.js itself, one model folder, and ``/ws``.

aiohttp on its own asyncio loop in a daemon thread, so the tracker thread never waits on
a browser. What it serves is a short allow-list, nothing else:

* ``/`` (= ``/index.html``), ``/main.js``, ``/style.css`` from ``renderer/``;
* ``/three/build/…`` and ``/three/examples/jsm/…`` from ``renderer/node_modules/three/``
  (the import map points there: no CDN);
* ``/model/…`` from the chosen model's folder (default the bundled avatar);
* ``/config.json``: which model file to load and the current panel settings;
* ``/ws``: poses out (``broadcast``), panel commands in (``on_command``);
* ``/capture``: frames in from the bridge's own off-screen page (``enable_capture``), which
  alone knows the random capture key; ``/background`` is the virtual camera's backdrop image.

Every path is hostile until parsed (DESIGN.md "Bad input"): percent-decoded segment by
segment, ``..``/dot-files/backslashes/NUL/encoded slashes refused, then resolved (symlinks
included) and required to stay inside its root. WebSocket upgrades must come from the
page's own origin; messages over 64 KiB close that connection (counted). Each client
has a drop-oldest queue: a frozen page loses poses, never delays anyone else.

Bound to 127.0.0.1 unless asked; on any other address a random token is required
(``?token=…`` on the page URL, then a same-site cookie for the page's own requests).
"""
from __future__ import annotations

import asyncio
import base64
import collections
import errno
import hashlib
import json
import math
import os
import re
import secrets
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote, unquote_to_bytes

from aiohttp import WSMsgType, web

from .page_out import PageServerError

RENDERER_DIR = Path(__file__).resolve().parents[1] / "renderer"
DEFAULT_MODEL = RENDERER_DIR / "models" / "openvtuber" / "openvtuber.pmx"
DEFAULT_HTTP_PORT = 8741
MAX_WS_MESSAGE = 64 * 1024
MAX_CLIENTS = 32
MAX_COMMANDS_PER_S = 50          # a panel sends a few; more is a runaway script (dropped, counted)
CLIENT_QUEUE = 4
PAGE_FILES = {"index.html", "main.js", "capture.js", "capture_worker.js", "style.css"}
THREE_SUBTREES = (("build",), ("examples", "jsm"))
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TOKEN_COOKIE = "openvtuber_token"
MODEL_FILE_TYPES = {".pmx", ".pmd", ".vmd", ".png", ".bmp", ".jpg", ".jpeg", ".gif", ".webp", ".tga", ".dds",
                    ".spa", ".sph", ".txt"}

MIME = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".json": "application/json", ".wasm": "application/wasm",
    ".pmx": "application/octet-stream", ".pmd": "application/octet-stream",
    ".vmd": "application/octet-stream", ".vpd": "application/octet-stream",
    ".png": "image/png", ".bmp": "image/bmp", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
    ".gif": "image/gif", ".webp": "image/webp", ".tga": "image/x-tga", ".dds": "application/octet-stream",
}
_SNIFF = ((b"BM", "image/bmp"), (b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"), (b"GIF8", "image/gif"))
_IMPORTMAP = re.compile(rb"<script type=\"importmap\">(.*?)</script>", re.S)


@dataclass
class Command:
    """A panel command from the page: ``calibrate``, ``mirror`` (bool), ``smoothing`` (0..1),
    ``model`` (a stored model's name, or ``bundled``), ``vmc`` ("HOST:PORT", checked by the bridge)."""
    cmd: str
    value: object = None


def parse_command(text: str) -> Command | None:
    """A panel command from hostile JSON text, or None when it is not one we accept."""
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(msg, dict):
        return None
    cmd, value = msg.get("cmd"), msg.get("value")
    if cmd == "calibrate":
        return Command("calibrate")
    if cmd == "mirror" and isinstance(value, bool):
        return Command("mirror", value)
    if cmd == "smoothing" and isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value) and 0.0 <= value <= 1.0:
        return Command("smoothing", float(value))
    if cmd == "model" and isinstance(value, str) and 0 < len(value) <= 64:
        return Command("model", value)
    if cmd == "vmc" and isinstance(value, str) and 0 < len(value.strip()) <= 255:
        return Command("vmc", value.strip())
    return None


def resolve_model(path: str | Path | None) -> Path:
    """The ``.pmx``/``.pmd`` to serve, checked now so a typo fails at start with one line."""
    if path is None:
        if not DEFAULT_MODEL.is_file():
            raise PageServerError(f"the bundled avatar {DEFAULT_MODEL} is missing: generate it "
                                  "(python renderer/generate.py) or pass --model PATH.pmx")
        return DEFAULT_MODEL.resolve()
    p = Path(path).expanduser()
    if p.suffix.lower() not in (".pmx", ".pmd"):
        raise PageServerError(f"--model {path}: expected a .pmx (or .pmd) MMD model file")
    if not p.is_file():
        raise PageServerError(f"--model {path}: no such file")
    return p.resolve()


def model_report(path: Path) -> dict | None:
    """Which standard bones/morphs the model has (``protocols.pmx``), for the panel and the
    start-up line. A file the bounded reader refuses is reported, never fatal: the page's
    own loader gets its chance and shows its error. PMD files are not read (None)."""
    if path.suffix.lower() != ".pmx":
        return None
    from ..protocols.pmx import PmxError, read_pmx, standard_report

    try:
        return standard_report(read_pmx(path))
    except (PmxError, OSError) as e:
        return {"ok": False, "error": str(e), "missing_required_bones": [], "missing_required_morphs": []}


def safe_join(root: Path, rel_segments: list[str]) -> Path | None:
    """``root``/segments if it is a regular file inside ``root`` after resolving symlinks."""
    if not rel_segments:
        return None
    try:
        target = root.joinpath(*rel_segments).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    if not target.is_relative_to(root) or not target.is_file():
        return None
    return target


def split_raw_path(raw_path: str) -> list[str] | None:
    """Percent-decode a raw URL path into segments; None for anything suspicious.

    Refused: backslashes (raw or encoded), NUL and control characters, encoded slashes,
    ``.``/``..`` and any dot-file segment, invalid UTF-8, empty inner segments.
    """
    path = raw_path.split("?", 1)[0]
    if not path.startswith("/") or "\\" in path:
        return None
    parts = path[1:].split("/")
    out = []
    for i, raw in enumerate(parts):
        try:
            seg = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return None
        if seg == "" and i == len(parts) - 1 and i > 0:
            return None                          # a trailing slash names a directory: no listings
        if (seg == "" and len(parts) > 1) or seg.startswith(".") or "/" in seg or "\\" in seg \
                or any(ord(c) < 32 or ord(c) == 127 for c in seg):
            return None
        out.append(seg)
    return out


def _mime(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in (".spa", ".sph"):                  # MMD sphere maps: usually BMP, sometimes PNG/JPEG renamed
        try:
            head = path.open("rb").read(4)
        except OSError:
            head = b""
        return next((m for magic, m in _SNIFF if head.startswith(magic)), "image/bmp")
    return MIME.get(ext, "application/octet-stream")


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    queue: collections.deque = field(default_factory=lambda: collections.deque(maxlen=CLIENT_QUEUE))
    control: collections.deque = field(default_factory=lambda: collections.deque(maxlen=16))   # settings, model
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    window_t: float = 0.0          # incoming rate limit: MAX_COMMANDS_PER_S per one-second window
    window_n: int = 0
    capture: bool = False          # the bridge's own off-screen page (not a viewer)


class PageServer:
    """Serves the page and fans poses out to its WebSocket clients.

    ``start()`` binds (raising ``PageServerError`` with one line when it cannot) and
    returns once the socket listens; ``broadcast(text)`` may be called from any thread and
    never blocks; ``on_command(Command)`` runs on the server's loop thread (keep it quick).
    """

    def __init__(self, model: str | Path | None = None, host: str = "127.0.0.1", port: int = DEFAULT_HTTP_PORT,
                 on_command: Callable[[Command], None] | None = None, renderer_dir: Path | None = None,
                 token: str | None = None):
        self.renderer_dir = (renderer_dir or RENDERER_DIR).resolve()
        self.three_dir = self.renderer_dir / "node_modules" / "three"
        if not (self.three_dir / "build" / "three.module.js").is_file():
            raise PageServerError(f"three.js is not installed in {self.renderer_dir}/node_modules: "
                                  "run `npm ci` in renderer/ (make install does it)")
        self.model = resolve_model(model)
        self.model_dir = self.model.parent
        self.model_report = model_report(self.model)
        self.host = host
        self.port = port
        self.loopback = host in LOOPBACK
        self.token = token if token is not None else (None if self.loopback else secrets.token_urlsafe(18))
        self.on_command = on_command
        self.settings: dict[str, object] = {"mirror": True, "smoothing": 0.2}
        self.messages_out = 0
        self.commands = 0
        self.rejected_messages = 0      # bad JSON / unknown commands: dropped and counted
        self.oversize = 0               # > 64 KiB: connection closed, counted
        self.rejected_upgrades = 0      # foreign Origin / missing token
        self.refused_paths = 0
        self._clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._csp = self._content_security_policy()
        self._rate_t, self._rate_n, self.rate = time.monotonic(), 0, 0.0
        self.capture_key: str | None = None
        self.capture_config: dict | None = None
        self._capture_sink = None
        self._capture_image: Path | None = None
        self._capture_ws: web.WebSocketResponse | None = None
        self.capture_refused = 0

    def enable_capture(self, sink, fps: float, background: str, image: Path | None = None) -> None:
        """Accept frames for ``sink`` (a ``capture.FrameSink``) on ``/capture`` (before or after
        ``start``); the page to open is ``capture_url``. The key in that URL is the only way in."""
        self.capture_key = secrets.token_urlsafe(18)
        self._capture_sink = sink
        self._capture_image = image
        self.capture_config = {"width": sink.width, "height": sink.height, "fps": fps, "background": background,
                               "image": "/background" if image is not None else None}

    @property
    def capture_url(self) -> str:
        query = f"capture={self.capture_key}" + (f"&token={self.token}" if self.token else "")
        return f"http://{self._address()}/?{query}"

    # ---- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The page's address as a user opens it."""
        return f"http://{self._address()}/" + (f"?token={self.token}" if self.token else "")

    def _address(self) -> str:
        """``host:port`` for a browser on this machine (a wildcard bind shows the loopback address)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return (f"[{host}]" if ":" in host else host) + f":{self.port}"

    def start(self) -> "PageServer":
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as e:   # noqa: BLE001 - handed to the starting thread
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=main, name="page-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            e = failure[0]
            if isinstance(e, OSError) and e.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                why = {errno.EADDRINUSE: "is already in use (another openvtuber?); pick another with --http-port N",
                       errno.EACCES: "is not allowed for this user; pick one above 1024 with --http-port N",
                       errno.EADDRNOTAVAIL: "is not an address of this machine (--host)"}[e.errno]
                raise PageServerError(f"page server {self.host}:{self.port} {why}") from None
            if isinstance(e, OSError):
                raise PageServerError(f"page server {self.host}:{self.port}: {e.strerror or e}") from None
            raise e
        return self

    async def _start(self) -> None:
        app = web.Application(client_max_size=MAX_WS_MESSAGE)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/capture", self._capture)
        app.router.add_post("/upload", self._upload)
        app.router.add_route("*", "/{tail:.*}", self._static)
        # a stalled download or a silent client must not hold Ctrl-C for aiohttp's default 60 s
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.25)
        await self._runner.setup()
        # POSIX SO_REUSEADDR only lets a restart bind past the last run's TIME_WAIT connections (a
        # listener still in use is refused all the same); on Windows it would let two servers share
        # the port, so there it stays off
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=sys.platform != "win32")
        await site.start()
        if self.port == 0:               # tests: the OS picked a free port
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        closing = [c.ws.close() for c in list(self._clients)]
        if self._capture_ws is not None and not self._capture_ws.closed:
            closing.append(self._capture_ws.close())
        if closing:                      # all at once: frozen pages must not add up
            await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=0.25)
        if self._runner is not None:
            await self._runner.cleanup()

    def close(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(1.0)

    # ---- broadcasting ----------------------------------------------------------------

    def broadcast(self, text: str) -> None:
        """Queue ``text`` for every client; thread-safe, never blocks, drops the oldest."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._fanout, text)
        except RuntimeError:             # loop closing
            pass
        self._rate_n += 1
        now = time.monotonic()
        if now - self._rate_t >= 1.0:
            self.rate = self._rate_n / (now - self._rate_t)
            self._rate_t, self._rate_n = now, 0

    def _fanout(self, text: str, control: bool = False) -> None:
        """Poses may be dropped (only the newest matters); control messages (settings, model)
        ride a queue of their own so a slow page never loses one behind the poses."""
        for c in self._clients:
            q = c.control if control else c.queue
            if not control and len(q) == q.maxlen:
                c.dropped += 1
            q.append(text)
            c.wake.set()
        self.messages_out += 1

    def send_status(self, status: dict) -> None:
        """The bridge's status for every open panel (thread-safe; a control message, never dropped)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        text = json.dumps({"type": "status", **status}, allow_nan=False)
        try:
            loop.call_soon_threadsafe(self._fanout, text, True)
        except RuntimeError:
            pass

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def dropped(self) -> int:
        return sum(c.dropped for c in self._clients)

    def status(self) -> str:
        viewers = sum(not c.capture for c in self._clients)
        s = f"page {viewers} client{'s' if viewers != 1 else ''} {self.rate:4.0f} msg/s"
        bad = self.rejected_messages + self.oversize + self.rejected_upgrades
        return s + (f" ({bad} refused)" if bad else "")

    # ---- HTTP ------------------------------------------------------------------------

    def _content_security_policy(self) -> str:
        try:
            html = (self.renderer_dir / "index.html").read_bytes()
        except OSError:
            html = b""
        hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(m).digest()).decode()}'"
                          for m in _IMPORTMAP.findall(html))
        return ("default-src 'self'; script-src 'self' " + hashes + "; style-src 'self'; "
                "img-src 'self' data: blob:; connect-src 'self' ws: data: blob:; object-src 'none'; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

    def _host_ok(self, request: web.Request) -> bool:
        """On loopback, refuse requests for other host names (DNS rebinding)."""
        if not self.loopback:
            return True
        return request.host in (f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}")

    def _token_ok(self, request: web.Request) -> bool:
        if not self.token:
            return True
        given = request.query.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
        return secrets.compare_digest(given.encode(), self.token.encode())

    def _refuse(self, status: int = 404) -> web.Response:
        self.refused_paths += 1
        return web.Response(status=status, text="not found\n" if status == 404 else "forbidden\n",
                            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})

    def _file(self, path: Path, page: bool = False) -> web.FileResponse:
        headers = {"Content-Type": _mime(path), "X-Content-Type-Options": "nosniff",
                   "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"}
        if page:
            headers["Content-Security-Policy"] = self._csp
        else:
            headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return web.FileResponse(path, headers=headers)

    async def _static(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return self._refuse(405)
        if not self._host_ok(request) or not self._token_ok(request):
            return self._refuse(403)
        segs = split_raw_path(request.raw_path)
        if segs is None:
            return self._refuse()
        if segs == [""]:
            segs = ["index.html"]
        head, rest = segs[0], segs[1:]
        if not rest and head in PAGE_FILES:
            # a worker runs under the CSP its own script came with: the capture worker gets the page's
            resp = self._file(self.renderer_dir / head, page=head in ("index.html", "capture_worker.js"))
            if head == "index.html" and self.token:
                resp.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="Strict", path="/")
            return resp
        if not rest and head == "models.json":
            from .model_store import list_models

            names = ["bundled"] + [m.name for m in list_models()]
            return web.json_response({"models": names, "current": self.model_name},
                                     headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
        if not rest and head == "config.json":
            return web.json_response({"model": "/model/" + quote(self.model.name), "settings": self.settings,
                                      "report": self.model_report, "capture": self.capture_config},
                                     headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
        if not rest and head == "background" and self._capture_image is not None:
            return self._file(self._capture_image)
        if head == "three":
            if not any(tuple(rest[:len(sub)]) == sub and len(rest) > len(sub) for sub in THREE_SUBTREES):
                return self._refuse()
            target = safe_join(self.three_dir, rest)
        elif head == "model":
            # only what a model needs: an HTML file dropped in a zip must never run on our origin
            ok = bool(rest) and Path(rest[-1]).suffix.lower() in MODEL_FILE_TYPES
            target = safe_join(self.model_dir, rest) if ok else None
        else:
            target = None
        if target is None:
            return self._refuse()
        return self._file(target)

    # ---- user models -----------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """``bundled``, a stored model's name (its folder in the store), or a --model file's stem."""
        if self.model == DEFAULT_MODEL.resolve():
            return "bundled"
        from .model_store import models_dir

        try:
            return self.model.relative_to(models_dir().resolve()).parts[0]
        except ValueError:
            return self.model.stem

    def use_model(self, pmx: Path, report: dict | None = None) -> None:
        """Serve another model and tell every open page to load it (server thread only)."""
        self.model = pmx.resolve()
        self.model_dir = self.model.parent
        self.model_report = report if report else model_report(self.model)
        self._fanout(json.dumps({"type": "model", "model": "/model/" + quote(self.model.name),
                                 "name": self.model_name, "report": self.model_report}), control=True)

    def select_model(self, name: str) -> bool:
        """Switch to ``bundled`` or a stored model by name; False when there is no such model."""
        from .model_store import list_models

        if name == "bundled" and DEFAULT_MODEL.is_file():
            self.use_model(DEFAULT_MODEL)
            return True
        for m in list_models():
            if m.name == name:
                self.use_model(m.pmx)
                return True
        return False

    async def _switch_model(self, name: str, cmd: Command) -> None:
        from .model_store import list_models

        loop = asyncio.get_running_loop()
        if name == "bundled" and DEFAULT_MODEL.is_file():
            pmx = DEFAULT_MODEL
        else:
            pmx = next((m.pmx for m in await loop.run_in_executor(None, list_models) if m.name == name), None)
        if pmx is None:
            self.rejected_messages += 1
            return
        report = await loop.run_in_executor(None, model_report, pmx)
        self.use_model(pmx, report)
        if self.on_command is not None:
            self.on_command(cmd)

    async def _upload(self, request: web.Request) -> web.Response:
        """``POST /upload?name=FILE`` with the file as the body: a .pmx or a .zip of a model folder.
        Same checks as the WebSocket (host, token, the page's own Origin); the body is streamed to
        a temporary file with a hard size cap, then unpacked and validated off the event loop."""
        from .model_store import MAX_UPLOAD, ModelStoreError, install

        if not self._host_ok(request) or not self._token_ok(request) or not self._origin_ok(request):
            self.rejected_upgrades += 1
            return web.json_response({"ok": False, "error": "forbidden"}, status=403)
        name = request.query.get("name", "")
        if not name or len(name) > 255:
            return web.json_response({"ok": False, "error": "name the file: /upload?name=MODEL.zip"}, status=400)
        if (request.content_length or 0) > MAX_UPLOAD:
            return web.json_response({"ok": False, "error": f"larger than {MAX_UPLOAD // 2**20} MB"}, status=413)
        fd, tmp = tempfile.mkstemp(prefix="openvtuber-upload-")
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := await request.content.read(1 << 20):
                    size += len(chunk)
                    if size > MAX_UPLOAD:
                        return web.json_response({"ok": False, "error": f"larger than {MAX_UPLOAD // 2**20} MB"},
                                                 status=413)
                    out.write(chunk)
            try:
                stored = await asyncio.get_running_loop().run_in_executor(None, install, Path(tmp), name)
            except ModelStoreError as e:
                return web.json_response({"ok": False, "error": str(e)}, status=400)
            self.use_model(stored.pmx, stored.report)
            if self.on_command is not None:
                self.on_command(Command("model", self.model_name))
            return web.json_response({"ok": True, "name": self.model_name, "report": stored.report})
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    # ---- WebSocket -------------------------------------------------------------------

    def _origin_ok(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin", "")
        allowed = {f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}", f"http://[::1]:{self.port}"}
        if not self.loopback:
            allowed.add(f"http://{request.host}")     # the page as the remote machine loaded it (token checked too)
        return origin in allowed

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if not self._host_ok(request) or not self._token_ok(request) or not self._origin_ok(request) \
                or len(self._clients) >= MAX_CLIENTS:
            self.rejected_upgrades += 1
            return web.Response(status=403, text="forbidden\n")
        ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE, heartbeat=20.0, compress=False)
        await ws.prepare(request)
        key = request.query.get("capture", "")
        client = _Client(ws, capture=bool(self.capture_key and key
                                          and secrets.compare_digest(key.encode(), self.capture_key.encode())))
        self._clients.add(client)
        client.control.append(json.dumps({"type": "settings", **self.settings}))
        client.wake.set()
        sender = asyncio.ensure_future(self._send_loop(client))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    now = time.monotonic()
                    if now - client.window_t >= 1.0:
                        client.window_t, client.window_n = now, 0
                    client.window_n += 1
                    if client.window_n > MAX_COMMANDS_PER_S:
                        self.rejected_messages += 1
                        continue
                    self._handle_text(msg.data)
                elif msg.type == WSMsgType.ERROR:      # e.g. over 64 KiB: aiohttp closes with 1009
                    if getattr(msg.data, "code", None) == 1009 or ws.close_code == 1009:
                        self.oversize += 1
                    break
                else:                              # binary frames are not part of the protocol
                    self.rejected_messages += 1
        finally:
            self._clients.discard(client)
            client.wake.set()
            sender.cancel()
            if not ws.closed:
                await ws.close()
        return ws

    async def _capture(self, request: web.Request) -> web.StreamResponse:
        """Frames from the capture page: same host/origin/token checks as ``/ws`` plus the key."""
        sink, key = self._capture_sink, self.capture_key
        given = request.query.get("key", "")
        if sink is None or not key or not secrets.compare_digest(given.encode(), key.encode()) \
                or not self._host_ok(request) or not self._token_ok(request) or not self._origin_ok(request):
            self.capture_refused += 1
            return web.Response(status=403, text="forbidden\n")
        old, self._capture_ws = self._capture_ws, None
        if old is not None and not old.closed:      # a restarted browser replaces a stuck one
            await old.close()
        # aiohttp refuses a message whose size equals max_msg_size: one byte of room
        ws = web.WebSocketResponse(max_msg_size=sink.message_size + 1, heartbeat=20.0, compress=False)
        await ws.prepare(request)
        self._capture_ws = ws
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    sink.offer(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    sink.note_stats(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    sink.rejected += 1
                    break
                else:
                    sink.rejected += 1
        finally:
            if self._capture_ws is ws:
                self._capture_ws = None
        return ws

    async def _send_loop(self, client: _Client) -> None:
        ws = client.ws
        try:
            while not ws.closed:
                await client.wake.wait()
                client.wake.clear()
                while (client.control or client.queue) and not ws.closed:
                    await ws.send_str((client.control or client.queue).popleft())
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass

    def _handle_text(self, text: str) -> None:
        cmd = parse_command(text)
        if cmd is None:
            self.rejected_messages += 1
            return
        self.commands += 1
        if cmd.cmd == "model":
            if cmd.value != self.model_name:          # reading a model is file I/O: off the event loop
                asyncio.ensure_future(self._switch_model(str(cmd.value), cmd))
            return
        if cmd.cmd in ("mirror", "smoothing"):
            self.settings[cmd.cmd] = cmd.value
            self._fanout(json.dumps({"type": "settings", **self.settings}), control=True)   # every open panel
        if self.on_command is not None:
            try:
                self.on_command(cmd)
            except Exception:  # noqa: BLE001 - a failing handler must not drop the connection
                self.rejected_messages += 1

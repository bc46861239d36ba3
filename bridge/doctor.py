"""``openvtuber doctor``: one table of what works on this machine and how to fix what does not.

Each check is a small function returning ``Row``s: ok (✓), warn (!: optional, e.g. no
webcam or no virtual camera) or fail (✗: ``openvtuber run`` cannot work). A check that
raises becomes a ✗ row with a one-line reason: the doctor never crashes. The exit code is
0 when nothing failed, 1 otherwise. Checks run in a few threads so the whole command stays
within a few seconds (the slow ones are the pipeline's first frame and the browser).
"""
from __future__ import annotations

import glob
import json
import platform
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable

from .browser import BROWSER_ARGS, SWIFTSHADER_ARGS, browser_install_hint, find_browser
from .vcam import OBS_FIX, V4L2LOOPBACK_FIX

OK, WARN, FAIL = "ok", "warn", "fail"
SYMBOLS = {OK: "✓", WARN: "!", FAIL: "✗"}
ASCII_SYMBOLS = {OK: "ok", WARN: "!", FAIL: "X"}

DEFAULT_HTTP_PORT = 8741
DEFAULT_VMC_IN_PORT = 39540



@dataclass
class Row:
    check: str
    status: str          # ok / warn / fail
    detail: str          # what was found
    fix: str = ""        # what to do about it (empty when ok)


Check = Callable[[], "Row | Iterable[Row]"]


# ---- Python and packages ---------------------------------------------------------------------------

# (distribution, required, fix)
PACKAGES = (
    ("numpy", True, "pip install numpy (or `make install`)"),
    ("opencv-python-headless", True, "pip install 'opencv-python-headless<5' (or `make install`)"),
    ("ai-edge-litert", False, "pip install ai-edge-litert (faster; OpenCV DNN is used without it)"),
    ("scikit-image", True, "pip install scikit-image (or `make install`)"),
    ("scipy", True, "pip install scipy (or `make install`)"),
    ("platformdirs", True, "pip install platformdirs (or `make install`)"),
    ("python-osc", True, "pip install python-osc (or `make install`)"),
    ("aiohttp", True, "pip install aiohttp (or `make install`)"),
)


def check_python() -> Row:
    v = sys.version_info
    text = f"{v.major}.{v.minor}.{v.micro} ({sys.executable})"
    if v < (3, 10):
        return Row("python", FAIL, text, "install Python 3.10 or newer")
    return Row("python", OK, text)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_packages() -> list[Row]:
    rows = []
    for dist, required, fix in PACKAGES:
        if dist == "opencv-python-headless":
            v = _version(dist) or _version("opencv-python") or _version("opencv-contrib-python")
        else:
            v = _version(dist)
        if v is not None:
            rows.append(Row(f"package {dist}", OK, v))
        elif dist == "ai-edge-litert" and sys.platform == "win32":
            rows.append(Row(f"package {dist}", OK, "not on Windows: OpenCV DNN runs the models"))
        else:
            rows.append(Row(f"package {dist}", FAIL if required else WARN, "not installed", fix))
    return rows


# ---- models and runtime ----------------------------------------------------------------------------

def check_models() -> Row:
    from ..models.weights import MODEL_FILES, missing_or_corrupt, model_dir

    bad = missing_or_corrupt()
    if bad:
        return Row("model files", FAIL, f"missing or corrupt in {model_dir()}: {', '.join(bad)}",
                   "run `make install` (or `python -m openvtuber.models.weights`) to fetch them")
    return Row("model files", OK, f"{len(MODEL_FILES)} files, SHA-256 ok ({model_dir()})")


def check_runtime() -> Row:
    """Run the whole pipeline (detector, landmarks, irises) on one demo frame."""
    from ..tracking.pipeline import FacePipeline
    from ..tracking.sources.demo import DemoSource

    src = DemoSource(frames=1, loop=False)
    try:
        image = next(iter(src)).image
    finally:
        src.close()
    pipe = FacePipeline("auto", threads=1, tracking=False)
    pipe.process(image)                      # first run: allocation and delegate set-up
    ms = float("inf")
    for _ in range(5):                       # best of a few: the other checks run meanwhile
        t = time.perf_counter()
        obs = pipe.process(image)
        ms = min(ms, (time.perf_counter() - t) * 1e3)
    name = {"litert": "LiteRT (XNNPACK)", "opencv": "OpenCV DNN"}.get(pipe.runtime, pipe.runtime)
    if not obs.found:
        return Row("inference runtime", FAIL, f"{name}: no face found on the demo frame ({ms:.1f} ms)",
                   "reinstall (`make install`); run `openvtuber bench` for details")
    fix = "" if pipe.runtime == "litert" or sys.platform == "win32" else "pip install ai-edge-litert for ~2x speed"
    return Row("inference runtime", OK, f"{name}: {ms:.1f} ms for one frame (detect + landmarks + irises)", fix)


# ---- cameras ---------------------------------------------------------------------------------------

def _v4l2_names() -> dict[str, str]:
    """/dev/videoN → the driver's card name (Linux)."""
    names = {}
    for p in sorted(glob.glob("/sys/class/video4linux/video*/name")):
        try:
            names["/dev/" + Path(p).parent.name] = Path(p).read_text(errors="replace").strip()
        except OSError:
            pass
    return names


def _is_loopback(name: str) -> bool:
    low = name.lower()
    return "dummy" in low or "loopback" in low or "openvtuber" in low


def check_cameras() -> Row:
    fix = ("plug in a webcam (on Linux: are you in the 'video' group?); "
           "`openvtuber run` uses the demo face meanwhile")
    found = []
    if sys.platform.startswith("linux"):
        names = _v4l2_names()
        devices = sorted(glob.glob("/dev/video*"), key=lambda d: (len(d), d))
        cams = [d for d in devices if not _is_loopback(names.get(d, ""))]
        if not cams:
            what = "no /dev/video* device" if not devices else "only virtual cameras: " + ", ".join(devices)
            return Row("camera", WARN, what, fix)
        indices = [int(d[len("/dev/video"):]) for d in cams if d[len("/dev/video"):].isdigit()]
        indices = [i for i in indices if i <= 3] or indices[:1]
        labels = {i: names.get(f"/dev/video{i}", "") for i in indices}
    else:
        indices = [0, 1, 2, 3]
        labels = {}
    import cv2

    for i in indices:
        cap = cv2.VideoCapture(i)
        try:
            if cap.isOpened():
                ok, frame = cap.read()
                if ok and frame is not None:
                    h, w = frame.shape[:2]
                    label = f" {labels[i]}" if labels.get(i) else ""
                    found.append(f"{i}{label} ({w}x{h})")
        finally:
            cap.release()
    if not found:
        return Row("camera", WARN, f"no camera opened (tried {', '.join(map(str, indices))})", fix)
    return Row("camera", OK, "; ".join(found))


# ---- browser and WebGL -----------------------------------------------------------------------------

WEBGL_PAGE = """<!doctype html><canvas id=c width=4 height=4></canvas><script>
const gl = document.getElementById('c').getContext('webgl', {preserveDrawingBuffer: true});
window.result = {ok: false, renderer: ''};
if (gl) {
  gl.clearColor(1.0, 0.5, 0.0, 1.0); gl.clear(gl.COLOR_BUFFER_BIT);
  const px = new Uint8Array(4); gl.readPixels(1, 1, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  window.result = {ok: true, pixel: Array.from(px),
                   renderer: info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER)};
}
</script>"""


def _webgl_once(pw, browser: str, args: list[str]) -> dict:
    b = pw.chromium.launch(executable_path=browser, args=args, timeout=6_000)
    try:
        page = b.new_page()
        page.set_content(WEBGL_PAGE, timeout=5_000)
        return page.evaluate("window.result")
    finally:
        b.close()


def check_browser(override: str | None = None) -> list[Row]:
    browser = find_browser(override)
    if browser is None:
        what = f"{override}: not found" if override else "no Chrome, Chromium or Edge found"
        return [Row("browser", WARN, what, browser_install_hint() + " (needed for the virtual camera)"),
                Row("WebGL", WARN, "not checked: no browser", "")]
    rows = [Row("browser", OK, browser)]
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        rows.append(Row("WebGL", WARN, "not checked: playwright is not installed",
                        "pip install playwright (the browser itself is the one above; no `playwright install`)"))
        return rows
    with sync_playwright() as pw:
        tried = []
        for label, args in (("default flags", BROWSER_ARGS), ("SwiftShader", BROWSER_ARGS + SWIFTSHADER_ARGS)):
            try:
                res = _webgl_once(pw, browser, args)
            except Exception as e:  # noqa: BLE001 - a browser that fails to start is a row, not a crash
                tried.append(f"{label}: {str(e).strip().splitlines()[0][:120]}")
                continue
            px = res.get("pixel") or [0, 0, 0]
            if res.get("ok") and px[0] >= 250 and 120 <= px[1] <= 135 and px[2] <= 5:
                rows.append(Row("WebGL", OK, f"{label}: {res.get('renderer') or 'unknown renderer'}, "
                                             f"pixel read back"))
                return rows
            tried.append(f"{label}: " + ("no WebGL context" if not res.get("ok") else f"pixel {res.get('pixel')}"))
    rows.append(Row("WebGL", WARN, "; ".join(tried),
                    "update the browser or its graphics driver; the virtual camera needs WebGL"))
    return rows


# ---- virtual camera --------------------------------------------------------------------------------

def check_virtual_camera() -> list[Row]:
    rows = []
    try:
        import pyvirtualcam  # noqa: F401
        rows.append(Row("pyvirtualcam", OK, _version("pyvirtualcam") or "installed"))
    except ImportError:
        rows.append(Row("pyvirtualcam", WARN, "not installed", "pip install pyvirtualcam (for the virtual camera)"))
    if sys.platform.startswith("linux"):
        loop = [f"{dev} ({name})" for dev, name in _v4l2_names().items() if _is_loopback(name)]
        if loop:
            rows.append(Row("virtual camera device", OK, ", ".join(loop)))
        else:
            rows.append(Row("virtual camera device", WARN, "no v4l2loopback device", V4L2LOOPBACK_FIX))
    else:
        rows.append(Row("virtual camera device", WARN if rows[0].status != OK else OK,
                        "OBS Virtual Camera (found by pyvirtualcam when you start the camera)", OBS_FIX))
        if rows[-1].status == OK:
            rows[-1].fix = f"if pyvirtualcam cannot find it: {OBS_FIX}"
    return rows


# ---- ports and config ------------------------------------------------------------------------------

def _can_bind(kind: int, port: int) -> str | None:
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", port))
        return None
    except OSError as e:
        return e.strerror or str(e)
    finally:
        s.close()


def _run_settings() -> dict:
    """The `run` values the config file sets (bad file: the built-in defaults)."""
    try:
        from . import config
        from .cli import build_parser

        parser = build_parser()
        config.apply(parser, "run")
        return vars(parser.parse_args(["run"]))
    except Exception:  # noqa: BLE001 - the config row reports the file's problem
        return {"http_port": DEFAULT_HTTP_PORT, "vmc_in": None, "page": True, "vcam": True}


def check_ports() -> list[Row]:
    settings = _run_settings()
    http = settings.get("http_port") or DEFAULT_HTTP_PORT
    vmc_in = settings.get("vmc_in") or DEFAULT_VMC_IN_PORT
    rows = []
    for label, kind, port, proto, needed, fix in (
            ("page port", socket.SOCK_STREAM, http, "TCP", bool(settings.get("page") or settings.get("vcam")),
             "stop the program using it or pick another: --http-port N (or http_port in openvtuber.toml)"),
            ("VMC-in port", socket.SOCK_DGRAM, vmc_in, "UDP", bool(settings.get("vmc_in")),
             "stop the program using it or pick another: --vmc-in N (or vmc_in in openvtuber.toml)")):
        err = _can_bind(kind, port)
        if err is None:
            rows.append(Row(label, OK, f"127.0.0.1:{port}/{proto} is free"))
        else:
            rows.append(Row(label, FAIL if needed else WARN, f"127.0.0.1:{port}/{proto}: {err}", fix))
    return rows


def check_config() -> Row:
    from . import config
    from .cli import build_parser

    path = config.config_path()
    if not path.is_file():
        return Row("config file", OK, f"{path} (none: built-in defaults)",
                   "")
    try:
        _, warnings = config.load_all(build_parser(), path)
    except config.ConfigError as e:
        return Row("config file", FAIL, str(e), f"fix or delete {path}; `openvtuber config` shows the values")
    if warnings:
        return Row("config file", WARN, f"{path}: {warnings[0]}" + (f" (+{len(warnings) - 1} more)"
                                                                    if len(warnings) > 1 else ""),
                   "remove or correct the key; `openvtuber config --init` shows all keys in a new file")
    return Row("config file", OK, f"{path} (valid)")


# ---- running the checks ----------------------------------------------------------------------------

def default_checks(browser: str | None = None) -> list[tuple[str, Check]]:
    return [("python", check_python), ("packages", check_packages), ("model files", check_models),
            ("inference runtime", check_runtime), ("camera", check_cameras),
            ("browser", lambda: check_browser(browser)), ("virtual camera", check_virtual_camera),
            ("ports", check_ports), ("config file", check_config)]


def _safe(name: str, fn: Check) -> list[Row]:
    try:
        got = fn()
        return [got] if isinstance(got, Row) else list(got)
    except BaseException as e:  # noqa: BLE001 - a crashed check is a row, never a crash
        if isinstance(e, KeyboardInterrupt):
            raise
        msg = (str(e).strip().splitlines() or [""])[0][:200]
        return [Row(name, FAIL, f"check failed: {type(e).__name__}: {msg}".rstrip(": "),
                    "set OPENVTUBER_DEBUG=1 and report this" if not msg else "see the reason")]


def run_checks(checks: list[tuple[str, Check]], workers: int = 4) -> list[Row]:
    """Every check, concurrently; rows in the order of ``checks``."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_safe, name, fn) for name, fn in checks]
        return [row for f in futures for row in f.result()]


def exit_code(rows: list[Row]) -> int:
    return 1 if any(r.status == FAIL for r in rows) else 0


def format_table(rows: list[Row], symbols: dict[str, str] = SYMBOLS) -> str:
    w = max(len(r.check) for r in rows)
    lines = []
    for r in rows:
        line = f"{symbols[r.status]} {r.check:<{w}}  {r.detail}"
        if r.fix:
            line += f"\n  {'':<{w}}  → {r.fix}"
        lines.append(line)
    failed = sum(r.status == FAIL for r in rows)
    warned = sum(r.status == WARN for r in rows)
    lines.append("")
    lines.append("ready to run" + (f" ({warned} warning{'s' if warned != 1 else ''})" if warned else "")
                 if not failed else f"{failed} problem{'s' if failed != 1 else ''} to fix before `openvtuber run`")
    return "\n".join(lines)


def main_doctor(as_json: bool = False, browser: str | None = None,
                checks: list[tuple[str, Check]] | None = None) -> int:
    t0 = time.monotonic()
    rows = run_checks(checks if checks is not None else default_checks(browser))
    code = exit_code(rows)
    if as_json:
        print(json.dumps({"ok": code == 0, "platform": platform.platform(), "seconds": round(time.monotonic() - t0, 2),
                          "rows": [asdict(r) for r in rows]}, indent=1))
        return code
    text = format_table(rows)
    try:
        print(text)
    except UnicodeEncodeError:                    # a console that cannot show ✓/✗
        print(format_table(rows, ASCII_SYMBOLS).replace("→", "->"))
    return code

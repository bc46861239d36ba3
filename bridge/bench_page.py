"""``openvtuber bench --page``: how fast the avatar page draws in a headless browser.

The bundled avatar at 1280×720 (the OBS browser-source view, ``?transparent=1``), with and
without the toon outline, measured by the page itself (``window.openvtuber.stats()``) over
``seconds`` after a warm-up, in the system's Chrome/Chromium/Edge driven by Playwright
(a test dependency: this is a developer's benchmark). Poses are the demo's, replayed at
30 fps so the skeleton and morphs move as they do live.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass

from .browser import BROWSER_ARGS, find_browser
from .page_out import encode_pose

QUERIES = (("outline on", "transparent=1&outline=1"), ("outline off", "transparent=1&outline=0"))


@dataclass
class PageBenchOptions:
    seconds: float = 10.0
    size: tuple[int, int] = (1280, 720)
    browser: str | None = None
    json: bool = False


def _feed(server, stop: threading.Event) -> None:
    """The demo's performance as poses, 30 a second (rigged from its ground truth: no tracking)."""
    from ..tracking.sources.demo import demo_pose
    from ..tracking.state import FaceState
    from .rig import RigOptions, rig

    opts, n = RigOptions(), 0
    while not stop.wait(1 / 30):
        p = demo_pose(n / 30)
        state = FaceState(t=n / 30, frame=n, found=True, valid=True, yaw=p.yaw, pitch=p.pitch, roll=p.roll,
                          eye_open_left=1 - p.eye_close_left, eye_open_right=1 - p.eye_close_right,
                          gaze_left_yaw=p.gaze_left_yaw, gaze_left_pitch=p.gaze_left_pitch,
                          gaze_right_yaw=p.gaze_right_yaw, gaze_right_pitch=p.gaze_right_pitch,
                          mouth_open=p.mouth_open)
        if server.clients:
            server.broadcast(encode_pose(rig(state, opts, True)))
        n += 1


def bench_page(opts: PageBenchOptions) -> dict:
    from playwright.sync_api import sync_playwright

    from .server import PageServer

    exe = find_browser(opts.browser)
    if exe is None:
        raise RuntimeError("no Chrome, Chromium or Edge found (--browser PATH)")
    server = PageServer(port=0).start()
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(server, stop), daemon=True)
    feeder.start()
    w, h = opts.size
    result: dict = {"size": f"{w}x{h}", "seconds": opts.seconds, "runs": {}}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, args=BROWSER_ARGS + ["--enable-unsafe-swiftshader"])
            try:
                for label, query in QUERIES:
                    page = browser.new_page(viewport={"width": w, "height": h})
                    page.goto(server.url + "?" + query)
                    page.wait_for_function("() => window.openvtuber && window.openvtuber.ready", timeout=60_000)
                    result["gl"] = page.evaluate("""() => { const g = document.createElement('canvas').getContext('webgl2');
                        const i = g && g.getExtension('WEBGL_debug_renderer_info');
                        return g ? String(g.getParameter(i ? i.UNMASKED_RENDERER_WEBGL : g.RENDERER)) : 'no WebGL 2'; }""")
                    time.sleep(2.0)
                    samples = []
                    end = time.monotonic() + opts.seconds
                    while time.monotonic() < end:
                        time.sleep(1.0)
                        samples.append(page.evaluate("() => window.openvtuber.stats().fps"))
                    stats = page.evaluate("() => window.openvtuber.stats()")
                    result["runs"][label] = {"fps": round(sum(samples) / len(samples), 1),
                                             "triangles": stats["timing"].get("triangles"),
                                             "messages": stats["messages"]}
                    page.close()
            finally:
                browser.close()
    finally:
        stop.set()
        server.close()
    return result


def format_page_result(r: dict) -> str:
    lines = [f"avatar page {r['size']} (transparent view), {r['seconds']:g} s each, demo poses at 30/s; "
             f"WebGL: {r.get('gl', '?')[:70]}"]
    for label, run in r["runs"].items():
        lines.append(f"  {label:12s} {run['fps']:5.1f} fps  ({run['triangles']} triangles drawn a frame)")
    return "\n".join(lines)


def main_bench_page(opts: PageBenchOptions) -> int:
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("openvtuber bench --page: needs playwright (pip install playwright; it drives your own "
              "browser, no `playwright install`)", file=sys.stderr)
        return 1
    try:
        result = bench_page(opts)
    except RuntimeError as e:
        print(f"openvtuber bench --page: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result) if opts.json else format_page_result(result))
    return 0

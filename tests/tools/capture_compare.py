"""Compare two ways of getting the avatar page's frames out of headless Chromium (no tracking).

    .venv/bin/python tests/tools/capture_compare.py [--secs 15] [--size 1280x720]

A. CDP screencast (Page.startScreencast, JPEG q85) through Playwright's CDP session, each frame
   acknowledged and decoded with OpenCV, as a screencast-based camera would have to.
B. What `openvtuber run` does: the capture page packs I420 on the GPU side and a worker sends it to
   the bridge's /capture WebSocket (FrameSink counts what arrives).

Both draw the bundled avatar at the same size with the outline off and the same poses (none: idle),
in the same browser build, one after the other. Prints new frames per second that reached Python,
and the CPU (% of one core) the browser used meanwhile.
"""
import argparse, base64, os, time
from pathlib import Path

import cv2
import numpy as np
from playwright.sync_api import sync_playwright

from openvtuber.bridge.browser import find_browser
from openvtuber.bridge.capture import FrameSink
from openvtuber.bridge.server import PageServer

ARGS = ["--no-sandbox", "--headless=new", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its descendants (Linux /proc)."""
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / tick
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return total


def screencast(pw, exe, url, w, h, secs):
    b = pw.chromium.launch(executable_path=exe, args=ARGS)
    pg = b.new_page(viewport={"width": w, "height": h})
    pg.goto(url)
    pg.wait_for_function("() => window.openvtuber && window.openvtuber.ready", timeout=60_000)
    cdp = pg.context.new_cdp_session(pg)
    got, dec = [], []

    def on_frame(ev):
        cdp.send("Page.screencastFrameAck", {"sessionId": ev["sessionId"]})
        t0 = time.perf_counter()
        img = cv2.imdecode(np.frombuffer(base64.b64decode(ev["data"]), np.uint8), cv2.IMREAD_COLOR)
        cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420)          # what the camera wants
        dec.append(time.perf_counter() - t0)
        got.append(time.monotonic())

    cdp.on("Page.screencastFrame", on_frame)
    cdp.send("Page.startScreencast", {"format": "jpeg", "quality": 85, "maxWidth": w, "maxHeight": h})
    pg.wait_for_timeout(3000)
    pid = b_pid(b)
    c0, t0, n0 = cpu_seconds(pid), time.monotonic(), len(got)
    pg.wait_for_timeout(secs * 1000)
    fps = (len(got) - n0) / (time.monotonic() - t0)
    cpu = 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
    b.close()
    return fps, cpu, 1000 * float(np.median(dec))


def b_pid(browser) -> int:
    # Playwright does not expose the pid; the newest chromium child of the driver is ours
    import subprocess
    out = subprocess.run(["pgrep", "-n", "-f", "chromium.*--remote-debugging-pipe"], capture_output=True, text=True)
    return int(out.stdout.split()[0])


def i420_worker(pw, exe, srv, sink, w, h, secs):
    b = pw.chromium.launch(executable_path=exe, args=ARGS)
    pg = b.new_page(viewport={"width": w, "height": h})
    pg.goto(srv.capture_url + "&outline=0")
    t_end = time.monotonic() + 60
    while sink.received < 5 and time.monotonic() < t_end:
        time.sleep(0.1)
    time.sleep(3)
    pid = b_pid(b)
    c0, t0, n0 = cpu_seconds(pid), time.monotonic(), sink.received
    time.sleep(secs)
    fps = (sink.received - n0) / (time.monotonic() - t0)
    cpu = 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
    b.close()
    return fps, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=float, default=15)
    ap.add_argument("--size", default="1280x720")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    exe = find_browser()
    sink = FrameSink(w, h)
    srv = PageServer(port=0)
    srv.start()
    srv.enable_capture(sink, 30, "#00b140")
    try:
        with sync_playwright() as pw:
            fps, cpu, dec = screencast(pw, exe, srv.url + "?outline=0&aa=0", w, h, a.secs)
            print(f"A  CDP screencast JPEG + decode   {fps:5.1f} fps   browser CPU {cpu:4.0f}%   decode+I420 {dec:.1f} ms")
            fps, cpu = i420_worker(pw, exe, srv, sink, w, h, a.secs)
            print(f"B  GPU I420 pack + worker socket  {fps:5.1f} fps   browser CPU {cpu:4.0f}%   (capped at 30)")
    finally:
        srv.close()


if __name__ == "__main__":
    main()

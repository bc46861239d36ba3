"""Measure the avatar page's frame rate in headless Chromium (SwiftShader) for a few configurations.

    .venv/bin/python tests/tools/page_fps.py [--port 8791] [--runs 2] [--secs 10] [QUERY ...]

Each QUERY is a page query string (default: the transparent capture page with and without outline).
Prints median fps over the runs (configurations measured round-robin, a fresh bridge for each, since
a replay source ends), plus the page's own per-frame CPU timings (our JS, and render(): the GL work
runs later in the GPU process, so SwiftShader's cost shows in fps, not in renderMs).
Page knobs: ?aa=0|1 (MSAA; default off when transparent), ?mat=mmd (MMDLoader's own materials).
Example, old defaults vs new:  "transparent=1&outline=1&aa=1&mat=mmd" "transparent=1&outline=1"
The server it starts is its own; it stops it (never `pkill -f openvtuber` on a shared box).
"""
import argparse, statistics, subprocess, sys, time
from pathlib import Path
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--no-sandbox", "--headless=new", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def measure(browser, url, secs):
    pg = browser.new_page(viewport={"width": 1280, "height": 720})
    pg.goto(url)
    for _ in range(300):
        if pg.evaluate("() => !!(window.openvtuber && window.openvtuber.ready)"):
            break
        time.sleep(0.1)
    time.sleep(2)
    pg.evaluate("() => window.openvtuber.stats()")
    time.sleep(secs)
    s = pg.evaluate("() => window.openvtuber.stats()")
    pg.close()
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8791)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--source", default="replay:/tmp/static.jsonl")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("queries", nargs="*", default=["transparent=1&outline=1", "transparent=1&outline=0"])
    a = ap.parse_args()
    exe = str(Path(sys.executable).parent / "openvtuber")
    srv = None

    def start(port):   # a replay source ends: a fresh bridge (and port) for every measurement
        nonlocal srv
        if srv:
            srv.terminate()
            srv.wait(10)
        srv = subprocess.Popen([exe, "run", "--page", "--source", a.source, "--no-vmc", "--http-port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)
        return port

    port = a.port
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=a.chromium, args=ARGS)
            results = {q: [] for q in a.queries}
            for _ in range(a.runs):            # round-robin, so a busy moment hits every configuration
                for q in a.queries:
                    port = start(port + 1)
                    results[q].append(measure(b, f"http://127.0.0.1:{port}/?{q}", a.secs))
            for q, res in results.items():
                fps = [r["fps"] for r in res]
                t = res[-1].get("timing", {})
                print(f"{q:50s} fps median {statistics.median(fps):5.1f}  runs {[round(f, 1) for f in fps]}  "
                      f"js {t.get('jsMs', 0):.2f} ms  render {t.get('renderMs', 0):.2f} ms  "
                      f"tris {t.get('triangles')} calls {t.get('calls')}  dpr {t.get('dpr')}", flush=True)
            b.close()
    finally:
        if srv:
            srv.terminate()
            srv.wait(10)


if __name__ == "__main__":
    main()

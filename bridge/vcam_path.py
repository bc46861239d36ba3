"""The whole virtual-camera path of ``openvtuber run``: device → page server → headless browser.

Order matters for a user without a device or a browser: the camera is opened first and
the browser looked up second, so a machine lacking either gets one line saying what to
do, starts no browser, and keeps tracking, VMC and the page running.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .browser import HeadlessBrowser, browser_install_hint, find_browser, profile_dir
from .capture import FrameSink, HeapTrimmer, check_size, reuse_large_buffers
from .vcam import VcamUnavailable, VirtualCamera, parse_colour

IMAGE_TYPES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
OUTLINE = {"auto": "auto", "on": "1", "off": "0"}
# The browser (and its scheduler autogroup) at the lowest priority: tracking, and so VMC latency,
# comes first; the browser draws with what is left, and the camera repeats a late frame. Measured
# with bench --capture on the 2-core test box, interleaved: frame → VMC p99 8.34–9.41 ms at 19
# against 9.39–10.50 ms at 10, new frames unchanged (25.2 fps each); a kernel trace showed the
# tracker's longest wake-up delay 8.0 → 1.2 ms.
BROWSER_NICE = 19


def parse_size(text: str) -> tuple[int, int]:
    """``1280x720`` → (1280, 720); ValueError with the rule when it is not a size we can carry."""
    try:
        w, h = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise ValueError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    check_size(w, h)
    return w, h


def parse_background(text: str) -> tuple[tuple[int, int, int], Path | None]:
    """A colour (``#rrggbb``) or an image file → (colour of the frames before the page draws, image)."""
    try:
        return parse_colour(text), None
    except ValueError:
        pass
    p = Path(text).expanduser()
    if p.suffix.lower() in IMAGE_TYPES and p.is_file():
        return (0, 0, 0), p.resolve()
    raise ValueError(f"{text!r}: expected a colour as #rrggbb or an image file ({', '.join(sorted(IMAGE_TYPES))})")


class CapturePath:
    """An opened virtual camera, the sink its frames come from, and the browser that draws them."""

    def __init__(self, camera: VirtualCamera, browser: str, background: str, image: Path | None, outline: str,
                 on_message: Callable[[str], None]):
        self.camera = camera
        self.sink = camera.sink
        self.executable = browser
        self.background = background
        self.image = image
        self.outline = outline
        self.on_message = on_message
        self.page = None
        self.browser: HeadlessBrowser | None = None
        self.heap = HeapTrimmer()          # frames fragment the heap; this gives the holes back

    def attach(self, page) -> None:
        """Let ``page`` (a started ``server.PageServer``) take this camera's frames."""
        self.page = page
        page.enable_capture(self.sink, self.camera.fps, self.background, self.image)

    def start(self) -> None:
        url = self.page.capture_url + f"&outline={OUTLINE.get(self.outline, 'auto')}"
        self.browser = HeadlessBrowser(self.executable, url, (self.sink.width, self.sink.height),
                                       last_frame=lambda: self.sink.last_time,
                                       on_message=lambda line: self.on_message(line),   # may be re-pointed
                                       nice=BROWSER_NICE, profile=profile_dir()).start()
        self.camera.start()
        self.heap.start()
        self.on_message(f"virtual camera: {self.camera.name} {self.sink.width}x{self.sink.height} "
                        f"{self.camera.fps:g} fps ({self.camera.fmt}), drawn by {Path(self.executable).name}")

    def status(self) -> str:
        return self.camera.status()

    def close(self) -> None:
        self.heap.close()
        self.camera.close()
        if self.browser is not None:
            self.browser.close()


def open_capture(opts, on_message: Callable[[str], None]) -> CapturePath | None:
    """The capture path for ``RunOptions``, or None (after one line to the user) when this
    machine has no virtual camera device or no browser. Bad option values raise ValueError."""
    w, h = opts.vcam_size
    check_size(w, h)
    colour, image = parse_background(opts.vcam_background)
    sink = FrameSink(w, h)
    camera = VirtualCamera(sink, opts.vcam_fps, colour, opts.vcam_backend, opts.vcam_device)
    try:
        camera.open()
    except VcamUnavailable as e:
        on_message(str(e))
        return None
    exe = find_browser(opts.browser)
    if exe is None:
        camera.close()
        what = f"{opts.browser} not found" if opts.browser else "no Chrome, Chromium or Edge found"
        on_message(f"virtual camera off: {what}; {browser_install_hint()}. VMC and the page keep running")
        return None
    hex_colour = "#%02x%02x%02x" % colour
    reuse_large_buffers()
    return CapturePath(camera, exe, hex_colour, image, opts.vcam_outline, on_message)

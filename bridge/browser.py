"""The system's Chrome/Chromium/Edge, found and run headless for the virtual camera.

We start the browser ourselves as a plain child process (no driver in between: the frames
travel page → our WebSocket, not through a remote-control protocol) in a process group of
its own, so stopping the bridge never leaves a renderer behind. A watchdog restarts it
when it dies or stops delivering frames; the virtual camera repeats its last frame meanwhile.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

# Flags for a quiet, unthrottled headless page. WebGL uses the GPU when the browser can; with no
# usable GPU, --enable-unsafe-swiftshader lets it fall back to SwiftShader (software) instead of
# refusing WebGL. SWIFTSHADER_ARGS force software (the doctor tries both).
BROWSER_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
SWIFTSHADER_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
CAPTURE_ARGS = ["--headless=new", "--mute-audio", "--hide-scrollbars", "--no-default-browser-check",
                "--disable-extensions", "--disable-default-apps", "--disable-translate",
                "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                # the last two ask Chromium not to start its on-device AI model service ~3 min in
                # (+46 MB of RSS, never used here); Chromium 156 starts it anyway, once per
                # profile, which is why the profile is kept (profile_dir)
                "--disable-features=Translate,MediaRouter,OptimizationGuideOnDeviceModel,LogOnDeviceMetricsOnStartup",
                "--enable-unsafe-swiftshader", "--log-level=3"]

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "microsoft-edge",
                 "microsoft-edge-stable", "chrome", "msedge")


def _browser_paths() -> list[Path]:
    if sys.platform == "darwin":
        return [Path("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"),
                Path("/Applications/Chromium.app/Contents/MacOS/Chromium"),
                Path("/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge"),
                Path.home() / "Applications/Google Chrome.app/Contents/MacOS/Google Chrome"]
    if sys.platform == "win32":
        roots = [os.environ.get(k) for k in ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA")]
        rels = ("Google/Chrome/Application/chrome.exe", "Microsoft/Edge/Application/msedge.exe",
                "Chromium/Application/chrome.exe")
        return [Path(r) / rel for r in roots if r for rel in rels]
    return [Path("/usr/bin/chromium"), Path("/usr/bin/chromium-browser"), Path("/usr/bin/google-chrome"),
            Path("/snap/bin/chromium"), Path("/opt/google/chrome/chrome"), Path("/usr/bin/microsoft-edge")]


def find_browser(override: str | None = None) -> str | None:
    """A Chrome/Chromium/Edge executable: ``override`` if given, else PATH, else the usual places."""
    if override:
        p = shutil.which(override) or (override if Path(override).is_file() else None)
        return p
    for name in BROWSER_NAMES:
        p = shutil.which(name)
        if p:
            return p
    for p in _browser_paths():
        if p.is_file():
            return str(p)
    return None


def browser_install_hint() -> str:
    if sys.platform == "darwin":
        return "install Google Chrome (or pass --browser PATH)"
    if sys.platform == "win32":
        return "install Google Chrome or Microsoft Edge (or pass --browser PATH)"
    return "install Chromium (`sudo apt install chromium` or your distribution's package) or pass --browser PATH"




def profile_dir() -> Path:
    """Where the capture browser keeps its profile between runs (``OPENVTUBER_CACHE_DIR``
    overrides). Kept, not thrown away: Chromium measures the machine once per profile, in a
    service it starts ~3 minutes in (+46 MB for as long as it runs), and its GPU shader
    cache makes the first frame come sooner."""
    env = os.environ.get("OPENVTUBER_CACHE_DIR")
    if env:
        return Path(env) / "browser-profile"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("openvtuber", appauthor=False)) / "browser-profile"


def _profile_in_use(path: Path) -> bool:
    """True when a live browser on this machine holds ``path``; a lock left by a killed
    browser does not count. On Linux and macOS the SingletonLock is a symlink naming the
    host and process ("host-pid"); on Windows a file the live browser keeps open."""
    lock = path / "SingletonLock"
    if not lock.is_symlink():
        try:
            lock.unlink(missing_ok=True)
        except OSError:
            return True
        return False
    try:
        host, _, pid = os.readlink(lock).rpartition("-")
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return host == socket.gethostname()


def _clear_locks(path: Path) -> None:
    for lock in ("SingletonLock", "SingletonSocket", "SingletonCookie"):   # left by a killed browser
        try:
            os.unlink(path / lock)
        except OSError:
            pass


class BrowserError(RuntimeError):
    """The browser cannot be started at all (not found, not executable); one line says why."""


def _terminate_group(proc: subprocess.Popen, grace: float = 0.5) -> None:
    """Stop the browser and every process it started (renderer, GPU, zygote), quickly:
    SIGTERM to the group, a short grace, then SIGKILL to whatever is left of it."""
    if sys.platform == "win32":
        if proc.poll() is None:
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True, check=False)
    else:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)              # start_new_session made the pid the group id
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass


def _child_setup(nice: int) -> Callable[[], None] | None:
    """What the browser's process runs before exec (POSIX): a lower priority, so the
    renderer takes the cycles tracking leaves, and on Linux death with its parent — a
    bridge killed with SIGKILL must not leave a browser rendering for nobody."""
    libc = None
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            libc = None

    def setup() -> None:
        if libc is not None:
            libc.prctl(1, signal.SIGKILL)       # PR_SET_PDEATHSIG
        if nice:
            os.nice(nice)
            # A new session is a new scheduler autogroup on Linux desktops, and nice counts only
            # inside a group: lower the group's own weight too, or the browser gets half the CPU.
            try:
                with open("/proc/self/autogroup", "w") as f:
                    f.write(str(nice))
            except OSError:
                pass

    return setup if (libc is not None or nice) else None


class HeadlessBrowser:
    """One headless browser showing ``url``, kept alive by a watchdog thread.

    ``alive()`` is how the watchdog learns that frames still arrive (the capture sink's
    clock); a browser that exits, or shows nothing new for ``stall_s``, is killed and
    started again after a short back-off. ``pid`` is the current browser's process id.
    """

    def __init__(self, executable: str, url: str, size: tuple[int, int], *,
                 last_frame: Callable[[], float] | None = None, on_message: Callable[[str], None] = print,
                 stall_s: float = 5.0, first_frame_s: float = 30.0, nice: int = 0,
                 profile: Path | None = None):
        self.executable = executable
        self.url = url
        self.size = size
        self.last_frame = last_frame or (lambda: 0.0)
        self.on_message = on_message
        self.stall_s = stall_s
        self.first_frame_s = first_frame_s
        self.nice = nice
        self.starts = 0
        self.restarts = 0
        self.proc: subprocess.Popen | None = None
        self.profile = profile                      # kept across runs; None: a throw-away one
        self._profile_path: Path | None = None
        self._temp_profile: tempfile.TemporaryDirectory | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._started_at = 0.0
        self._thread = threading.Thread(target=self._watch, name="browser-watchdog", daemon=True)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def command(self) -> list[str]:
        w, h = self.size
        args = [self.executable, *BROWSER_ARGS, *CAPTURE_ARGS, f"--window-size={w},{h}",
                f"--user-data-dir={self._profile_path or ''}"]
        return args + [self.url]

    def start(self) -> "HeadlessBrowser":
        self._launch()
        self._thread.start()
        return self

    def _launch(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            if self._profile_path is None:      # chosen once: restarts reuse it (and its shader cache)
                self._profile_path = self._choose_profile()
            _clear_locks(self._profile_path)
            kw: dict = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            if sys.platform == "win32":
                kw["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
            else:
                kw["start_new_session"] = True
                kw["preexec_fn"] = _child_setup(self.nice)   # nice is inherited by every child
            try:
                self.proc = subprocess.Popen(self.command(), **kw)
            except OSError as e:
                raise BrowserError(f"cannot start the browser {self.executable}: {e.strerror or e}") from None
            self.starts += 1
            self._started_at = time.monotonic()

    def _choose_profile(self) -> Path:
        """The kept profile unless it cannot be made or another bridge's browser holds it;
        then a throw-away one."""
        if self.profile is not None and not _profile_in_use(self.profile):
            try:
                self.profile.mkdir(parents=True, exist_ok=True)
                return self.profile
            except OSError:
                pass
        self._temp_profile = tempfile.TemporaryDirectory(prefix="openvtuber-browser-", ignore_cleanup_errors=True)
        return Path(self._temp_profile.name)

    def _healthy(self) -> str | None:
        """None while all is well, else why the browser must be restarted."""
        proc = self.proc
        if proc is None:
            return "not running"
        code = proc.poll()
        if code is not None:
            return f"the browser exited (code {code})"
        now = time.monotonic()
        last = self.last_frame()
        if last >= self._started_at:
            if now - last > self.stall_s:
                return f"no frame from the browser for {now - last:.0f} s"
        elif now - self._started_at > self.first_frame_s:
            return f"the browser showed no frame in {self.first_frame_s:.0f} s"
        return None

    def _watch(self) -> None:
        backoff = 0.0                              # the first restart at once, later ones slower
        while not self._stop.wait(0.2):
            why = self._healthy()
            if why is None:
                if time.monotonic() - self._started_at > 30:
                    backoff = 0.0              # it ran well for a while: forget earlier trouble
                continue
            self.on_message(f"virtual camera: {why}; restarting it")
            with self._lock:
                if self.proc is not None:
                    _terminate_group(self.proc, grace=0.3)
            if self._stop.wait(backoff):
                return
            backoff = min(max(backoff * 2, 0.5), 4.0)
            try:
                self._launch()
                self.restarts += 1
            except BrowserError as e:
                self.on_message(f"virtual camera: {e}")

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self.proc is not None:
                _terminate_group(self.proc)
        if self._thread.is_alive():
            self._thread.join(1.0)
        if self._temp_profile is not None:
            self._temp_profile.cleanup()
            self._temp_profile = None

"""``openvtuber``: the command line.

Every error a user can cause (missing camera, bad path, missing model files, no LiteRT)
ends as one line on stderr and a non-zero exit, never a traceback; set
``OPENVTUBER_DEBUG=1`` to see the traceback of an unexpected failure.
"""
from __future__ import annotations

import os

# Before cv2 is imported anywhere: OpenCV's camera probing warnings are not for users.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import argparse  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be 1 or more")
    return v


def _port(text: str) -> int:
    v = _positive_int(text)
    if v > 65535:
        raise argparse.ArgumentTypeError(f"{v} is not a port (1–65535)")
    return v


def _port_or_any(text: str) -> int:
    """A port, or 0: any free one (the page's address is printed)."""
    return 0 if text.strip() == "0" else _port(text)


def _vcam_size(text: str) -> tuple[int, int]:
    from .vcam_path import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _fps(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= v <= 120:
        raise argparse.ArgumentTypeError(f"{v:g} is not a frame rate (1–120)")
    return v


def _background(text: str) -> str:
    from .vcam_path import parse_background

    try:
        parse_background(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="openvtuber", description="Real-time face capture for VTubers.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    tr = sub.add_parser("track", help="track a face and print/record what the pipeline sees")
    tr.add_argument("source", nargs="?", default="auto",
                    help="camera index or /dev/videoN, a video file, an image folder, 'demo', "
                         "or 'auto' (first camera, else demo; the default)")
    tr.add_argument("--jsonl", metavar="FILE", help="write one JSON object per frame ('-' for stdout)")
    tr.add_argument("--frames", type=_positive_int, metavar="N", help="stop after N source frames")
    tr.add_argument("--preview", action="store_true", help="show a window with the landmarks (needs a display)")
    tr.add_argument("--landmarks", action="store_true", help="add the raw landmarks to --jsonl records")
    tr.add_argument("--loop", action="store_true", help="loop a video file")
    tr.add_argument("--runtime", choices=("auto", "litert", "opencv"), default="auto")
    tr.add_argument("--threads", type=_positive_int, default=1, help="inference threads (default 1)")
    tr.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                    help="pace the demo source at 30 fps (default: on for demo)")
    tr.add_argument("--calibrate", action="store_true",
                    help="take the first second of a relaxed face looking at the camera as neutral and save it")

    be = sub.add_parser("bench", help="time the pipeline per stage (median/p90/p99 ms)")
    be.add_argument("--source", default="demo", help="'demo' (default), a video file or an image folder")
    be.add_argument("--frames", type=_positive_int, default=300)
    be.add_argument("--runtime", choices=("auto", "litert", "opencv"), default="auto",
                    help="runtime reported at the top level (both are measured)")
    be.add_argument("--json", action="store_true", help="print one JSON object")
    be.add_argument("--page", action="store_true",
                    help="instead: how fast the avatar page draws at --vcam-size in a headless browser (needs playwright)")
    be.add_argument("--capture", action="store_true",
                    help="instead: the virtual camera path with live tracking (fps, frame→VMC latency, CPU, memory)")
    be.add_argument("--seconds", type=_positive_int, default=60, help="--capture: the measured window (default 60)")
    be.add_argument("--soak", type=_positive_int, default=600,
                    help="--capture: run this long in all for the memory growth figure (default 600)")
    be.add_argument("--vcam-size", type=_vcam_size, default="1280x720", metavar="WxH")
    be.add_argument("--browser", metavar="PATH")
    be.add_argument("--threads", type=_positive_int, default=1, help="--capture: inference threads (as run --threads)")

    ru = sub.add_parser("run", help="track and drive the avatar outputs (VMC, the page, the virtual camera)")
    ru.add_argument("--source", default="auto",
                    help="camera index, video, image folder, 'demo', 'replay:FILE.jsonl', or 'auto' (default)")
    ru.add_argument("--vmc", default="127.0.0.1:39539", metavar="HOST:PORT",
                    help="send VMC to this receiver (default 127.0.0.1:39539)")
    ru.add_argument("--no-vmc", action="store_true", help="do not send VMC")
    ru.add_argument("--vmc-in", type=_port, metavar="PORT", help="also receive VMC (e.g. a body tracker) and merge it")
    ru.add_argument("--blendshapes", choices=("vrm0", "vrm1", "arkit"), default="vrm0",
                    help="VMC blendshape names: VRM 0.x (default), VRM 1.0, or VRM 0.x + ARKit perfect sync")
    ru.add_argument("--frames", type=_positive_int, metavar="N", help="stop after N source frames")
    ru.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                    help="the avatar moves as your mirror image (default on)")
    ru.add_argument("--runtime", choices=("auto", "litert", "opencv"), default="auto")
    ru.add_argument("--threads", type=_positive_int, default=1)
    ru.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                    help="pace the demo source and replays at their own rate (default on)")
    ru.add_argument("--calibrate", action="store_true", help="take the first second as your neutral face and save it")
    ru.add_argument("--page", action=argparse.BooleanOptionalAction, default=True,
                    help="serve the three.js avatar page (browser / OBS browser source; add ?transparent=1); "
                         "default on")
    ru.add_argument("--http-port", type=_port_or_any, default=8741, metavar="N",
                    help="page server port (default 8741; 0: any free port)")
    ru.add_argument("--host", default="127.0.0.1",
                    help="page server address (default 127.0.0.1; any other needs the printed ?token=)")
    ru.add_argument("--model", metavar="PATH.pmx", help="MMD model for the page (default: the bundled avatar)")
    ru.add_argument("--vcam", action=argparse.BooleanOptionalAction, default=True,
                    help="publish the avatar as a virtual webcam (default on when a device exists)")
    ru.add_argument("--vcam-size", type=_vcam_size, default="1280x720", metavar="WxH",
                    help="virtual camera size (default 1280x720)")
    ru.add_argument("--vcam-fps", type=_fps, default=30.0, metavar="FPS", help="virtual camera rate (default 30)")
    ru.add_argument("--vcam-background", type=_background, default="#00b140", metavar="COLOUR|IMAGE",
                    help="behind the avatar: #rrggbb (default #00b140, chroma green) or an image file")
    ru.add_argument("--vcam-backend", metavar="NAME",
                    help="pyvirtualcam backend: v4l2loopback, obs, unitycapture (default: the first that works)")
    ru.add_argument("--vcam-device", metavar="DEVICE", help="e.g. /dev/video10 (default: the first free one)")
    ru.add_argument("--vcam-outline", choices=("auto", "on", "off"), default="auto",
                    help="the toon outline on the camera image (auto: off on software GL, where it costs 40%%)")
    ru.add_argument("--browser", metavar="PATH", help="Chrome/Chromium/Edge that draws the camera image "
                                                      "(default: search for one)")

    rp = sub.add_parser("replay", help="play a --jsonl recording through the rig and outputs (= run --source replay:FILE)")
    rp.add_argument("file")
    rp.add_argument("--vmc", default="127.0.0.1:39539", metavar="HOST:PORT")
    rp.add_argument("--no-vmc", action="store_true")
    rp.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True)
    rp.add_argument("--blendshapes", choices=("vrm0", "vrm1", "arkit"), default="vrm0")
    rp.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None)

    ex = sub.add_parser("export-vmd", help="turn a --jsonl recording into an MMD motion file")
    ex.add_argument("recording", help="a file written by openvtuber track SOURCE --jsonl FILE")
    ex.add_argument("out", help="the .vmd file to write")
    ex.add_argument("--model-bones", metavar="NAMES",
                    help="comma-separated bones to key (default: those of 上半身,首,頭,両目,左目,右目 the rig drives)")
    ex.add_argument("--reduce", type=float, metavar="EPS",
                    help="drop keys that linear interpolation reproduces within EPS (degrees / weight)")
    ex.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True)
    ex.add_argument("--model-name", default="OpenVtuber")

    ac = sub.add_parser("accuracy", help="head-pose accuracy on labelled real photos, and the solvers' shape on "
                                         "synthetic clips with known answers")
    ac.add_argument("--real", metavar="DIR", help="a folder of photos with labels.csv (AFLW2000-3D layout): "
                                                  "print only its table")
    ac.add_argument("--json", action="store_true", help="print one JSON object")
    ac.add_argument("--uncalibrated", action="store_true", help="synthetic clips: use the defaults instead of "
                                                                "calibrating first")

    dr = sub.add_parser("doctor", help="check this machine: packages, models, runtime speed, cameras, browser "
                                       "and WebGL, virtual camera, ports, config file")
    dr.add_argument("--json", action="store_true", help="print the rows as one JSON object")
    dr.add_argument("--browser", metavar="PATH", help="the Chrome/Chromium/Edge to check (default: search for one)")

    cf = sub.add_parser("config", help="show the settings in effect for run and track (flag > openvtuber.toml > "
                                       "default) and the file's path")
    cf.add_argument("--init", action="store_true", help="write a commented default openvtuber.toml if none exists")
    cf.add_argument("command_line", nargs=argparse.REMAINDER, metavar="run|track [FLAGS]",
                    help="show the values a command line would get, e.g. `openvtuber config run --no-mirror`")
    return ap


class SourceErrorLike(ValueError):
    """A bad argument found after parsing; printed as one line with exit code 2."""


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "track":
        from .track import TrackOptions, run_track
        from .status import StatusLine

        status = StatusLine()
        summary = run_track(TrackOptions(args.source, args.jsonl, args.frames, args.preview, args.runtime,
                                         args.threads, args.loop, args.landmarks, args.realtime,
                                         args.calibrate), status)
        status.message(summary.line())
        return 0
    if args.command == "bench":
        from .bench import BenchOptions, main_bench

        if args.page:
            from .bench_page import PageBenchOptions, main_bench_page

            return main_bench_page(PageBenchOptions(10.0, args.vcam_size, args.browser, args.json))
        if args.capture:
            from .bench_capture import CaptureBenchOptions, main_bench_capture

            return main_bench_capture(CaptureBenchOptions(args.seconds, max(args.soak, args.seconds),
                                                          args.vcam_size, 30.0, args.browser, args.json,
                                                          args.threads))
        return main_bench(BenchOptions(args.source, args.frames, args.runtime, args.json))
    if args.command in ("run", "replay"):
        from .rig import RigOptions
        from .run import RunOptions, run_bridge
        from .status import StatusLine

        status = StatusLine()
        if args.command == "replay":
            opts = RunOptions(source=f"replay:{args.file}", vmc=None if args.no_vmc else args.vmc,
                              blendshapes=args.blendshapes, realtime=args.realtime, rig=RigOptions(mirror=args.mirror))
        else:
            file_only = getattr(args, "_file_only", set())   # page settings the file gives are unused without page
            page_flags = [d for d, changed in (("model", args.model), ("host", args.host != "127.0.0.1"),
                                               ("http_port", args.http_port != 8741)) if changed and d not in file_only]
            if page_flags and not args.page and not args.vcam:
                raise SourceErrorLike("--model, --host and --http-port are for the page: drop --no-page")
            opts = RunOptions(args.source, None if args.no_vmc else args.vmc, args.frames, args.vmc_in,
                              args.blendshapes, args.runtime, args.threads, args.realtime, args.calibrate,
                              RigOptions(mirror=args.mirror), args.page, args.http_port, args.host, args.model,
                              vcam=args.vcam, vcam_size=args.vcam_size, vcam_fps=args.vcam_fps,
                              vcam_background=args.vcam_background, vcam_backend=args.vcam_backend,
                              vcam_device=args.vcam_device, vcam_outline=args.vcam_outline, browser=args.browser)
        summary = run_bridge(opts, status)
        status.message(summary.line())
        return 1 if summary.error else 0
    if args.command == "export-vmd":
        from .export_vmd import export_vmd, parse_bones

        try:
            bones = parse_bones(args.model_bones)
        except ValueError as e:
            raise SourceErrorLike(str(e)) from None
        stats, skipped = export_vmd(args.recording, args.out, bones, args.reduce, args.mirror, args.model_name)
        print(f"wrote {args.out}: {stats.frames} frames, {stats.bone_keys} bone keys, {stats.morph_keys} morph keys"
              + (f", {skipped} malformed lines skipped" if skipped else ""), file=sys.stderr)
        return 0
    if args.command == "accuracy":
        from ..tracking.real_faces import LabelsError
        from .accuracy import main_accuracy

        try:
            return main_accuracy(args.json, args.uncalibrated, args.real)
        except LabelsError as e:          # a folder without usable labels: one line
            raise SourceErrorLike(str(e)) from None
    if args.command == "doctor":
        from .doctor import main_doctor

        return main_doctor(args.json, args.browser)
    if args.command == "config":
        from . import config

        if args.init:
            path, written = config.init_file(build_parser())
            print(f"wrote {path}" if written else f"{path} already exists; left unchanged", file=sys.stderr)
            return 0
        return config.describe(build_parser(), args.command_line)
    raise AssertionError(args.command)


def _sigterm(signum, frame):  # noqa: ANN001 - signal handler signature
    raise KeyboardInterrupt


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse with ``openvtuber.toml`` applied to ``run``/``track`` (flag > file > default)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    command = argv[0] if argv else None
    if command not in ("run", "track"):
        return parser.parse_args(argv)
    from . import config

    values, warnings = config.apply(parser, command)   # ConfigError: one line, exit 2 (in main)
    for w in warnings:
        print(f"openvtuber: {w}", file=sys.stderr)
    args = parser.parse_args(argv)
    if values.keys:
        flags = config.given_on_command_line(parser, command, argv)
        args._file_only = values.keys - flags
        if command == "run" and "vmc" in flags and "no_vmc" not in flags:
            args.no_vmc = False        # --vmc on the command line beats `vmc = false` in the file
    return args


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError

    try:
        args = _parse(argv)
    except ConfigError as e:
        print(f"openvtuber: {e}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _sigterm)
    from ..models.runtime import RuntimeUnavailable
    from ..models.weights import ModelFileError
    from ..tracking.sources.base import SourceError
    from .page_out import PageServerError
    from .vmc_out import VmcTargetError

    try:
        return _dispatch(args)
    except (SourceError, ModelFileError, RuntimeUnavailable, VmcTargetError, PageServerError, SourceErrorLike,
            ConfigError) as e:
        print(f"openvtuber: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("openvtuber: stopped", file=sys.stderr)
        return 0
    except BrokenPipeError:
        return 0
    except OSError as e:
        print(f"openvtuber: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except Exception as e:  # last resort: one line, traceback only on request
        if os.environ.get("OPENVTUBER_DEBUG"):
            traceback.print_exc()
        print(f"openvtuber: unexpected error: {type(e).__name__}: {e} (set OPENVTUBER_DEBUG=1 for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

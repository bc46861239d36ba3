"""``openvtuber.toml``: flag > file > default through the real CLI parser; bad values are one line."""
from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10: the config file needs tomli, so do these tests
    tomllib = pytest.importorskip("tomli")
from pythonosc.osc_bundle import OscBundle

from openvtuber.bridge import config
from openvtuber.bridge.cli import build_parser

CLI = [sys.executable, "-m", "openvtuber.bridge.cli"]


@pytest.fixture
def cfg_dir(tmp_path) -> Path:
    d = tmp_path / "cfg"
    d.mkdir()
    return d


def cli(cfg_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENVTUBER_CONFIG_DIR=str(cfg_dir))
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


def write(cfg_dir: Path, text: str) -> Path:
    p = cfg_dir / "openvtuber.toml"
    p.write_text(text, encoding="utf-8")
    return p


def effective(stdout: str, section: str) -> dict[str, tuple[str, str]]:
    """key → (value as printed, origin) from `openvtuber config` output."""
    out, current = {}, None
    for line in stdout.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and " = " in line:
            key, rest = line.split(" = ", 1)
            value, origin = rest.rsplit("#", 1)
            out[key.strip()] = (value.strip(), origin.strip())
    return out


def assert_one_line(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("openvtuber: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_config_without_file_shows_defaults_and_path(cfg_dir):
    proc = cli(cfg_dir, "config")
    assert proc.returncode == 0, proc.stderr
    assert f"config file: {cfg_dir / 'openvtuber.toml'}" in proc.stdout
    run = effective(proc.stdout, "run")
    assert run["vmc"] == ('"127.0.0.1:39539"', "default")
    assert run["mirror"] == ("true", "default")
    assert run["http_port"] == ("8741", "default")
    track = effective(proc.stdout, "track")
    assert track["runtime"] == ('"auto"', "default") and track["threads"] == ("1", "default")


def test_precedence_flag_beats_file_beats_default(cfg_dir):
    write(cfg_dir, '[run]\nvmc = "127.0.0.1:5555"\nmirror = false\nhttp_port = 9000\n'
                   '[track]\nthreads = 3\nruntime = "opencv"\n')
    proc = cli(cfg_dir, "config", "run", "--mirror", "--blendshapes", "arkit")
    assert proc.returncode == 0, proc.stderr
    run = effective(proc.stdout, "run")
    assert run["mirror"] == ("true", "flag")
    assert run["vmc"] == ('"127.0.0.1:5555"', "file")
    assert run["http_port"] == ("9000", "file")
    assert run["blendshapes"] == ('"arkit"', "flag")
    assert run["runtime"] == ('"auto"', "default")
    assert "[track]" not in proc.stdout
    proc = cli(cfg_dir, "config", "track", "--threads", "2")
    track = effective(proc.stdout, "track")
    assert track["threads"] == ("2", "flag") and track["runtime"] == ('"opencv"', "file")
    assert track["source"] == ('"auto"', "default")


def test_parser_defaults_come_from_the_file(cfg_dir, monkeypatch):
    monkeypatch.setenv("OPENVTUBER_CONFIG_DIR", str(cfg_dir))
    write(cfg_dir, '[run]\nvmc = false\nvmc_in = 0\nsource = 1\nframes = "none"\n')
    parser = build_parser()
    values, warnings = config.apply(parser, "run")
    assert warnings == [] and values.keys == {"no_vmc", "vmc_in", "source", "frames"}
    ns = parser.parse_args(["run"])
    assert ns.no_vmc is True and ns.vmc_in is None and ns.source == "1" and ns.frames is None
    assert config.given_on_command_line(parser, "run", ["run", "--vmc", "x:1", "--frames", "3"]) == {"vmc", "frames"}


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    return sock


def _head_yaws(sock: socket.socket) -> list[float]:
    yaws = []
    while True:
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return yaws
        for m in OscBundle(d):
            if m.address == "/VMC/Ext/Bone/Pos" and m.params[0] == "Head":
                x, y, z, w = m.params[4:8]
                yaws.append(math.degrees(2 * math.atan2(y, w)))


def test_run_reads_vmc_and_mirror_from_the_file(cfg_dir):
    sock = _listen()
    port = sock.getsockname()[1]
    try:
        write(cfg_dir, f'[run]\nsource = "demo"\nrealtime = false\nvmc = "127.0.0.1:{port}"\nmirror = false\n')
        proc = cli(cfg_dir, "run", "--frames", "40")          # no --vmc: the file's target gets the packets
        assert proc.returncode == 0, proc.stderr
        from_file = _head_yaws(sock)
        proc = cli(cfg_dir, "run", "--frames", "40", "--mirror")   # the flag beats the file
        assert proc.returncode == 0, proc.stderr
        flagged = _head_yaws(sock)
    finally:
        sock.close()
    assert len(from_file) == 40 and len(flagged) == 40
    assert max(abs(y) for y in from_file) > 3
    corr = sum(a * b for a, b in zip(from_file, flagged)) / math.sqrt(
        sum(a * a for a in from_file) * sum(b * b for b in flagged))
    assert corr < -0.99                                   # mirrored: the same motion, the other way


def test_vmc_flag_beats_vmc_false_in_file(cfg_dir):
    sock = _listen()
    port = sock.getsockname()[1]
    try:
        write(cfg_dir, '[run]\nsource = "demo"\nrealtime = false\nvmc = false\nhttp_port = 9001\n')
        proc = cli(cfg_dir, "run", "--frames", "5", "--vmc", f"127.0.0.1:{port}")
        assert proc.returncode == 0, proc.stderr   # and http_port from the file does not demand --page
        assert len(_head_yaws(sock)) == 5
    finally:
        sock.close()


@pytest.mark.parametrize("text, needles", [
    ("[run]\nhttp_port = 70000\n", ["openvtuber.toml: run.http_port = 70000 is outside 1–65535"]),
    ("[run]\nthreads = \"two\"\n", ['run.threads = "two" must be a whole number']),
    ("[run]\nthreads = 0\n", ["run.threads = 0 is not a whole number of 1 or more"]),
    ("[run]\nruntime = \"gpu\"\n", ['run.runtime = "gpu" is not one of auto, litert, opencv']),
    ("[run]\nmirror = \"yes\"\n", ['run.mirror = "yes" must be true or false']),
    ("[run]\nvmc = \"localhost:99999\"\n", ["run.vmc", "outside 1–65535"]),
    ("[run]\nsource = [1, 2]\n", ["run.source", "must be a string"]),
    ("[run\nmirror = true\n", ["not valid TOML"]),
])
def test_bad_values_are_one_line_exit_2(cfg_dir, text, needles):
    write(cfg_dir, text)
    assert_one_line(cli(cfg_dir, "run", "--frames", "1", "--source", "demo"), *needles)
    assert_one_line(cli(cfg_dir, "config"), *needles)


def test_bad_track_value_only_stops_track(cfg_dir):
    write(cfg_dir, '[track]\nruntime = "tpu"\n')
    assert_one_line(cli(cfg_dir, "track", "demo", "--frames", "1"), 'track.runtime = "tpu" is not one of')
    proc = cli(cfg_dir, "run", "--frames", "2", "--source", "demo", "--no-vmc", "--no-realtime")
    assert proc.returncode == 0, proc.stderr


def test_unknown_keys_warn_and_are_ignored(cfg_dir):
    write(cfg_dir, '[run]\ncolour = "red"\nmirror = false\n[extras]\nx = 1\n')
    proc = cli(cfg_dir, "config", "run")
    assert proc.returncode == 0, proc.stderr
    warn = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(warn) == 2
    assert any("unknown key run.colour ignored" in w for w in warn)
    assert any("unknown section [extras] ignored" in w for w in warn)
    assert effective(proc.stdout, "run")["mirror"] == ("false", "file")


def test_init_writes_a_commented_default_file_once(cfg_dir):
    proc = cli(cfg_dir, "config", "--init")
    path = cfg_dir / "openvtuber.toml"
    assert proc.returncode == 0 and path.is_file(), proc.stderr
    text = path.read_text(encoding="utf-8")
    assert tomllib.loads(text) == {"run": {}, "track": {}}       # everything commented: defaults stay defaults
    proc = cli(cfg_dir, "config")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert {o for _, o in effective(proc.stdout, "run").values()} == {"default"}
    # every key is there, and uncommenting all of them gives a valid file equal to the defaults
    known = {s: set(config.section_actions(config.subparser(build_parser(), s))) - {"no_vmc"} for s in config.SECTIONS}
    uncommented = re.sub(r"^# (\w+ = )", r"\1", text, flags=re.M)
    data = tomllib.loads(uncommented)
    assert {s: set(data[s]) for s in config.SECTIONS} == known
    path.write_text(uncommented, encoding="utf-8")
    proc = cli(cfg_dir, "config")
    assert proc.returncode == 0, proc.stderr
    run = effective(proc.stdout, "run")
    assert run["http_port"] == ("8741", "file") and run["vmc_in"] == ("none", "file") and run["model"] == ("none", "file")
    # a second --init keeps the user's file
    proc = cli(cfg_dir, "config", "--init")
    assert proc.returncode == 0 and "left unchanged" in proc.stderr
    assert path.read_text(encoding="utf-8") == uncommented


def test_without_a_toml_reader_the_file_is_ignored_with_a_warning(cfg_dir, monkeypatch):
    """Python 3.10 without tomli: say the file is ignored, run on the defaults."""
    monkeypatch.setitem(sys.modules, "tomllib", None)    # makes `import tomllib` raise ImportError
    monkeypatch.setitem(sys.modules, "tomli", None)
    path = write(cfg_dir, "[run]\nhttp_port = 70000\n")
    data, warnings = config.read_file(path)
    assert data == {} and len(warnings) == 1
    assert warnings[0].startswith(f"{path} is ignored") and "pip install tomli" in warnings[0]

"""``openvtuber doctor``: the table on this machine, --json, crashed checks, exit codes."""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from openvtuber.bridge import doctor
from openvtuber.bridge.doctor import FAIL, OK, WARN, Row

CLI = [sys.executable, "-m", "openvtuber.bridge.cli"]
HAS_CHROMIUM = os.path.exists("/usr/bin/chromium")
try:
    import playwright  # noqa: F401
    HAS_PLAYWRIGHT = True
except ImportError:
    HAS_PLAYWRIGHT = False


def cli(cfg_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENVTUBER_CONFIG_DIR=str(cfg_dir))
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    proc = cli(tmp_path_factory.mktemp("cfg"), "doctor", "--json")
    assert "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)
    data["returncode"] = proc.returncode
    return data


def rows_named(report: dict, check: str) -> list[dict]:
    return [r for r in report["rows"] if r["check"] == check]


def row(report: dict, check: str) -> dict:
    (r,) = rows_named(report, check)
    return r


def test_json_shape(report):
    assert set(report) >= {"ok", "rows"}
    assert report["rows"]
    for r in report["rows"]:
        assert set(r) == {"check", "status", "detail", "fix"}
        assert r["status"] in (OK, WARN, FAIL)
        assert all(isinstance(r[k], str) for k in r)
        assert "\n" not in r["detail"] and "\n" not in r["fix"]
        if r["status"] != OK:
            assert r["fix"] or r["check"] == "WebGL", r
    assert report["ok"] == (report["returncode"] == 0)
    checks = [r["check"] for r in report["rows"]]
    for name in ("python", "model files", "inference runtime", "camera", "browser", "WebGL", "pyvirtualcam",
                 "virtual camera device", "page port", "VMC-in port", "config file"):
        assert name in checks


def test_this_machine_is_ready(report):
    assert report["returncode"] == 0, [r for r in report["rows"] if r["status"] == FAIL]
    assert row(report, "python")["status"] == OK
    assert row(report, "model files")["status"] == OK and "SHA-256 ok" in row(report, "model files")["detail"]
    rt = row(report, "inference runtime")
    assert rt["status"] == OK and " ms " in rt["detail"]
    assert rt["detail"].startswith("LiteRT" if sys.platform != "win32" else "OpenCV")
    assert row(report, "config file")["status"] == OK and "none: built-in defaults" in row(report, "config file")["detail"]


@pytest.mark.skipif(glob.glob("/dev/video*") != [] or not sys.platform.startswith("linux"),
                    reason="this machine has a video device")
def test_no_camera_and_no_loopback_are_warnings_with_the_hint(report):
    cam = row(report, "camera")
    assert cam["status"] == WARN and cam["detail"] == "no /dev/video* device"
    assert "plug in a webcam" in cam["fix"] and "demo face" in cam["fix"]
    vc = row(report, "virtual camera device")
    assert vc["status"] == WARN
    assert vc["fix"] == "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=OpenVtuber"


def test_pyvirtualcam_row(report):
    r = row(report, "pyvirtualcam")
    try:
        import pyvirtualcam  # noqa: F401
        assert r["status"] == OK
    except ImportError:
        assert r["status"] == WARN and r["fix"].startswith("pip install pyvirtualcam")


def test_browser_and_webgl(report):
    b, gl = row(report, "browser"), row(report, "WebGL")
    if doctor.find_browser() is None:
        assert b["status"] == WARN and "install Chromium" in b["fix"]
        return
    assert b["status"] == OK
    if HAS_CHROMIUM:
        assert b["detail"] == shutil.which("chromium") or b["detail"] == "/usr/bin/chromium"
    if HAS_PLAYWRIGHT:
        assert gl["status"] == OK and "pixel read back" in gl["detail"], gl
    else:
        assert gl["status"] == WARN and "playwright" in gl["detail"]


def test_browser_override_that_does_not_exist(tmp_path):
    rows = doctor.check_browser(str(tmp_path / "no-such-browser"))
    assert rows[0].status == WARN and "not found" in rows[0].detail and "--browser PATH" in rows[0].fix
    assert rows[1].check == "WebGL" and rows[1].status == WARN


def test_text_table(tmp_path):
    proc = cli(tmp_path, "doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("✓ python")
    assert any(ln.startswith("✓ model files") for ln in lines)
    assert lines[-1].startswith("ready to run")
    # aligned: every row's detail starts in the same column
    starts = {re.match(r"[✓!✗] \S.*?\s{2,}(?=\S)", ln).end() for ln in lines if ln[:1] and ln[:1] in "✓!✗"}
    assert len(starts) == 1
    fixes = [ln for ln in lines if ln.lstrip().startswith("→ ")]
    assert fixes and {len(ln) - len(ln.lstrip()) for ln in fixes} == starts


def test_a_check_that_raises_becomes_a_fail_row(capsys):
    def boom():
        raise RuntimeError("kaput\nsecond line")

    rows = doctor.run_checks([("fine", lambda: Row("fine", OK, "yes")), ("boom", boom)])
    assert [r.check for r in rows] == ["fine", "boom"]
    assert rows[1].status == FAIL and rows[1].detail == "check failed: RuntimeError: kaput"
    code = doctor.main_doctor(checks=[("boom", boom)])
    out = capsys.readouterr().out
    assert code == 1 and "✗ boom" in out and "1 problem to fix" in out


def test_exit_codes(capsys):
    assert doctor.main_doctor(checks=[("a", lambda: Row("a", OK, "x"))]) == 0
    assert doctor.main_doctor(checks=[("a", lambda: [Row("a", OK, "x"), Row("b", WARN, "y", "do z")])]) == 0
    assert doctor.main_doctor(as_json=True, checks=[("a", lambda: Row("a", FAIL, "x", "fix it"))]) == 1
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["ok"] is False


def test_bad_config_fails_the_doctor(tmp_path):
    (tmp_path / "openvtuber.toml").write_text("[run]\nhttp_port = 70000\n")
    proc = cli(tmp_path, "doctor", "--json")
    assert proc.returncode == 1
    r = [r for r in json.loads(proc.stdout)["rows"] if r["check"] == "config file"][0]
    assert r["status"] == FAIL and "run.http_port = 70000 is outside 1–65535" in r["detail"]


def test_busy_page_port_fails_only_when_the_page_is_on(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENVTUBER_CONFIG_DIR", str(tmp_path))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        (tmp_path / "openvtuber.toml").write_text(f"[run]\nhttp_port = {port}\npage = false\nvcam = false\n")
        page = doctor.check_ports()[0]
        assert page.status == WARN and str(port) in page.detail and "--http-port" in page.fix
        (tmp_path / "openvtuber.toml").write_text(f"[run]\nhttp_port = {port}\n")   # page and camera: on
        assert doctor.check_ports()[0].status == FAIL
        (tmp_path / "openvtuber.toml").write_text(f"[run]\nhttp_port = {port}\npage = false\n")  # the camera's page
        assert doctor.check_ports()[0].status == FAIL
    finally:
        s.close()

"""The ``openvtuber`` command as a user runs it: records, one-line errors, clean Ctrl-C."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from conftest import interrupt, write_clip
from openvtuber.bridge.records import RECORD_KEYS

CLI = [sys.executable, "-m", "openvtuber.bridge.cli"]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("openvtuber: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0]


def test_console_script_is_installed():
    assert (Path(sys.executable).parent / "openvtuber").exists()


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, astronaut) -> Path:
    d = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(d / "01_face.png"), astronaut)
    cv2.imwrite(str(d / "02_blank.png"), astronaut[:40, :40] * 0 + 127)
    cv2.imwrite(str(d / "03_flip.jpg"), astronaut[:, ::-1])
    (d / "04_readme.txt").write_text("not an image")
    return d


def test_track_image_folder_jsonl(photo_folder, tmp_path):
    out = tmp_path / "out.jsonl"
    proc = run_cli("track", str(photo_folder), "--jsonl", str(out), "--landmarks")
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in recs] == ["01_face.png", "02_blank.png", "03_flip.jpg"]
    assert [r["found"] for r in recs] == [True, False, True]
    for r in recs:
        assert tuple(k for k in r if k != "landmarks") == RECORD_KEYS
        assert r["t"] is None
    assert len(recs[0]["landmarks"]) == 478 and len(recs[0]["landmarks"][0]) == 3
    assert recs[1]["landmarks"] is None
    assert recs[0]["confidence"] > 0.9
    assert "04_readme.txt" in proc.stderr and "1 files skipped" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_track_video_frames_limit_and_stdout(tmp_path, astronaut):
    path = write_clip(tmp_path / "clip.avi", [astronaut] * 40)
    proc = run_cli("track", str(path), "--jsonl", "-", "--frames", "25")
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["frame"] for r in recs] == list(range(25))
    assert all(r["found"] for r in recs)
    assert abs(recs[24]["t"] - 24 / 30) < 1e-3
    assert "detector ran on 1," in proc.stderr


@pytest.mark.parametrize("args,needles", [
    (["track", "/no/such/video.mp4"], ["not found"]),
    (["track", "63"], ["camera 63"]),
], ids=["missing-path", "missing-camera"])
def test_user_errors_are_one_line(args, needles):
    assert_one_line_error(run_cli(*args), *needles)


def test_corrupt_video_is_one_line(tmp_path):
    p = tmp_path / "corrupt.mp4"
    p.write_bytes(os.urandom(4096))
    assert_one_line_error(run_cli("track", str(p)), "corrupt.mp4")


def test_missing_models_name_make_install(tmp_path, photo_folder):
    env = dict(os.environ, OPENVTUBER_MODEL_DIR=str(tmp_path))
    proc = subprocess.run([*CLI, "track", str(photo_folder)], capture_output=True, text=True, env=env, timeout=60)
    assert_one_line_error(proc, "make install")


def test_bad_flag_value_is_rejected():
    proc = run_cli("track", "demo", "--frames", "-3")
    assert proc.returncode == 2 and "must be 1 or more" in proc.stderr and "Traceback" not in proc.stderr


def test_demo_jsonl_without_pacing(tmp_path):
    out = tmp_path / "demo.jsonl"
    proc = run_cli("track", "demo", "--frames", "30", "--no-realtime", "--jsonl", str(out))
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 30 and sum(r["found"] for r in recs) >= 29
    assert recs[-1]["t"] == pytest.approx(29 / 30, abs=1e-6)


def test_ctrl_c_stops_cleanly_within_two_seconds():
    proc = subprocess.Popen([*CLI, "track", "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "fps" not in line and time.monotonic() < deadline:   # wait for the status line
            line = proc.stderr.readline()
        assert "fps" in line and "demo" in line, line
        time.sleep(1.0)
        elapsed, err = interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert elapsed < 2.0
    assert "Traceback" not in err and "(stopped)" in err


def test_bench_json_top_level_keys():
    proc = run_cli("bench", "--frames", "15", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["runtime"] in ("litert", "opencv")
    assert set(report["total_ms"]) == {"median", "p90", "p99"}
    assert 0 < report["total_ms"]["median"] <= report["total_ms"]["p99"]
    assert "opencv" in report["runtimes"] and set(report["decode_us"]) >= {"numpy"}
    for modes in report["runtimes"].values():
        assert modes["tracking"]["detector_runs"] <= 1
        assert modes["detection"]["detector_runs"] == 15

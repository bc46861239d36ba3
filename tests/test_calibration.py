"""Calibration: measured from a neutral face, saved to the config folder, loaded next time."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from openvtuber.tracking import evaluation as ev
from openvtuber.tracking.calibration import Calibration, config_dir
from openvtuber.tracking.sources.synthetic import FacePose


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENVTUBER_CONFIG_DIR", str(tmp_path))
    return tmp_path


def test_defaults_without_a_file():
    cal = Calibration.load()
    assert not cal.calibrated and cal.eye_open_right > 0 and cal.mouth_width > 0


# what the network constants were called when calibration files still carried them
NETWORK_KEYS = ("head_depth_gain", "gaze_gain", "gaze_parallax", "gaze_yaw_rise", "eye_closed_fraction")


def test_the_saved_file_holds_only_the_users_own_values(tmp_path):
    cal = Calibration.default()
    cal.calibrated = True
    saved = json.loads(cal.save().read_text())
    assert not set(saved) & set(NETWORK_KEYS)
    assert {"neutral_rotation", "eye_open_right", "gaze_right", "mouth_gap", "brow_left"} <= set(saved)


def test_an_old_file_with_network_constants_loads_without_them(tmp_path):
    # a file from an earlier version: its constants must not freeze today's
    old = {"neutral_rotation": [0.0, 0.1, 0.0, 0.99498743710662], "eye_open_right": 0.31, "calibrated": True,
           "head_depth_gain": 2.25, "gaze_gain": [0.1868, 0.1183], "gaze_parallax": [0.03, 0.09],
           "gaze_yaw_rise": 0.03, "eye_closed_fraction": 0.53}
    (tmp_path / "calibration.json").write_text(json.dumps(old))
    cal = Calibration.load()
    assert cal.calibrated and cal.eye_open_right == pytest.approx(0.31)
    assert not any(hasattr(cal, k) for k in NETWORK_KEYS)


def test_save_and_load_round_trip(tmp_path):
    cal = Calibration.default()
    cal.calibrated = True
    cal.neutral_rotation = (0.0, 0.1, 0.0, 0.99498743710662)
    path = cal.save()
    assert path.parent == config_dir() == tmp_path
    back = Calibration.load()
    assert back == Calibration.from_dict(json.loads(path.read_text()))
    assert back.calibrated and back.neutral_rotation == pytest.approx(cal.neutral_rotation)


@pytest.mark.parametrize("content,needle", [
    ("{not json", "unreadable"),
    ('["a list"]', "not a JSON object"),
    ('{"eye_open_right": "wide"}', "eye_open_right"),
    ('{"neutral_rotation": [0, 0, 0, 7]}', "unit quaternion"),
    ('{"gaze_right": [1, NaN]}', "gaze_right"),
    ('{"mouth_gap": "open"}', "mouth_gap"),
])
def test_damaged_file_is_a_one_line_error_naming_the_file(tmp_path, content, needle):
    (tmp_path / "calibration.json").write_text(content)
    with pytest.raises(ValueError) as e:
        Calibration.load()
    assert needle in str(e.value) and "calibration.json" in str(e.value) and "\n" not in str(e.value)


def test_calibrating_a_tracker_measures_the_neutral_face():
    tracker = ev.default_tracker()
    tracker.calibrate(20)
    states, _ = ev.run_clip([FacePose(yaw=12.0, pitch=-6.0)] * 26, tracker)
    cal = tracker.calibration
    assert cal.calibrated and cal.frames == 20
    # that pose is now neutral: the output settles near zero
    tail = states[-3:]
    assert all(abs(s.yaw) < 1.0 and abs(s.pitch) < 1.0 for s in tail)
    assert all(s.eye_open_left > 0.9 and s.eye_open_right > 0.9 for s in tail)


def test_track_calibrate_saves_and_next_run_loads(tmp_path):
    cli = [sys.executable, "-m", "openvtuber.bridge.cli", "track", "demo", "--no-realtime", "--frames", "40"]
    env = {**__import__("os").environ, "OPENVTUBER_CONFIG_DIR": str(tmp_path)}
    proc = subprocess.run([*cli, "--calibrate"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "calibrated on 30 frames, saved to" in proc.stderr
    saved = json.loads((tmp_path / "calibration.json").read_text())
    assert saved["calibrated"] is True and saved["frames"] == 30
    (tmp_path / "calibration.json").write_text("{broken")
    proc = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "using the defaults" in proc.stderr and "Traceback" not in proc.stderr


def test_calibrating_with_the_camera_off_to_the_side_keeps_nods_clean():
    """A webcam beside the screen sees the neutral face turned; nods must stay nods."""
    from openvtuber.tracking.solvers.geometry import matrix_from_ypr, ypr_from_matrix
    from openvtuber.tracking.sources.synthetic import FacePose as P

    tracker = ev.default_tracker()
    tracker.calibrate(15)
    ev.run_clip([P(yaw=20.0)] * 20, tracker)
    assert tracker.calibration.calibrated
    # the same nod, seen from the side: the camera offset is a fixed left factor
    offset = matrix_from_ypr(20.0, 0.0, 0.0)
    rolls = []
    for nod in (-15.0, 15.0):
        yaw, pitch, roll = ypr_from_matrix(offset @ matrix_from_ypr(0.0, nod, 0.0))
        tracker.filter.reset()
        states, _ = ev.run_clip([P(yaw=yaw, pitch=pitch, roll=roll)] * 6, tracker)
        rolls.append(abs(states[-1].roll))
        assert (states[-1].pitch > 5.0) == (nod > 0)
    assert max(rolls) < 4.0


def test_gaze_reads_straight_at_the_pose_the_user_calibrated_in():
    """A camera below the eyes sees the neutral face pitched: the iris parallax of that view is
    part of the calibrated neutral, so back at that pose the gaze is straight, not shifted twice."""
    from openvtuber.tracking.sources.synthetic import FacePose as P

    for pose in (P(pitch=-15.0), P(yaw=20.0, pitch=10.0)):
        tracker = ev.default_tracker()
        tracker.calibrate(15)
        states, _ = ev.run_clip([pose] * 22, tracker)
        assert tracker.calibration.calibrated
        assert abs(states[-1].gaze_left_pitch) < 1.5 and abs(states[-1].gaze_left_yaw) < 1.5

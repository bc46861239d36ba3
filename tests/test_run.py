"""``openvtuber run`` / ``replay`` as a user runs them: recordings replay with their timing,
bad lines are skipped, Ctrl-C stops everything quickly."""
from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time

import numpy as np
from pythonosc.osc_bundle import OscBundle

from conftest import interrupt
from openvtuber.bridge.replay import ReplaySource

CLI = [sys.executable, "-m", "openvtuber.bridge.cli"]


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    return sock


def _head_t_and_yaw(dgram: bytes) -> tuple[float, float]:
    msgs = list(OscBundle(dgram))
    t = next(m.params[0] for m in msgs if m.address == "/VMC/Ext/T")
    x, y, z, w = next(m.params[4:8] for m in msgs if m.address == "/VMC/Ext/Bone/Pos" and m.params[0] == "Head")
    return t, math.degrees(2 * math.atan2(y, w))


def test_replay_keeps_the_recorded_timing_and_values(tmp_path):
    rec = tmp_path / "take.jsonl"
    proc = subprocess.run([*CLI, "track", "demo", "--no-realtime", "--frames", "45", "--jsonl", str(rec)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in rec.read_text().splitlines()]
    with rec.open("a") as f:                      # hostile lines are skipped, not fatal
        f.write("not json\n{\"frame\": \"x\"}\n{\"frame\": 99, \"t\": 5.0, \"yaw\": \"NaN\"}\n")
    sock = _listen()
    port = sock.getsockname()[1]
    t0 = time.monotonic()
    proc = subprocess.Popen([*CLI, "replay", str(rec), "--vmc", f"127.0.0.1:{port}", "--no-mirror"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    arrivals, got = [], []
    while proc.poll() is None or len(got) < 45:
        try:
            d = sock.recv(65536)
        except socket.timeout:
            if proc.poll() is not None:
                break
            continue
        arrivals.append(time.monotonic() - t0)
        got.append(_head_t_and_yaw(d))
    sock.close()
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    # a drop-oldest output may shed a frame when the machine is loaded, never reorder or invent one
    assert len(got) >= 40
    by_t = {round(r["t"], 6): r for r in records}
    ts = [round(t, 6) for t, _ in got]
    assert all(t in by_t for t in ts) and ts == sorted(ts)
    span = arrivals[-1] - arrivals[0]
    assert abs(span - (ts[-1] - ts[0])) < 0.4                            # original pace, not as fast as possible
    # mirror off: the recorded turn to the person's left is the avatar's left, which is a
    # negative rotation about Unity's Y (Unity's +X is the avatar's right)
    yaw = np.array([y for _, y in got])
    assert np.corrcoef(yaw, [by_t[t]["yaw"] for t in ts])[0, 1] < -0.99


def test_replay_source_counts_bad_lines(tmp_path):
    rec = tmp_path / "bad.jsonl"
    rec.write_text('{"frame": 0, "t": 0.0, "found": false}\n[1, 2]\n{"frame": 1, "t": 0.1, "yaw": 1e999}\n\n')
    src = ReplaySource(rec, realtime=False)
    states = list(src)
    assert len(states) == 1 and not states[0].valid
    assert src.stats.skipped == 2


def test_run_stops_on_ctrl_c_within_two_seconds():
    sock = _listen()
    port = sock.getsockname()[1]
    proc = subprocess.Popen([*CLI, "run", "--source", "demo", "--vmc", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        received = 0
        deadline = time.monotonic() + 60
        while received < 30 and time.monotonic() < deadline:   # wait until it is really running
            try:
                sock.recv(65536)
                received += 1
            except socket.timeout:
                pass
        assert received >= 30
        elapsed, err = interrupt(proc)
    finally:
        sock.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and elapsed < 2.0
    assert "(stopped)" in err and "Traceback" not in err

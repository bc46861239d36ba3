"""The bridge's heap policy for frame-sized buffers (glibc): kept on the heap, holes handed back."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from openvtuber.bridge.capture import HeapTrimmer, _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only")

# A child process (the test runner's own heap stays as it is): the bridge's thresholds, then
# 40 frame-sized buffers with a small live block after each; every other buffer is freed, so
# 20 MB lie free in holes between live blocks, where no trim of the heap's top reaches.
FRAGMENT = r"""
import sys
from openvtuber.bridge.capture import HeapTrimmer, reuse_large_buffers

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

assert reuse_large_buffers()
keep = []
for i in range(40):
    keep.append(bytearray(b"x" * (1 << 20)))
    keep.append(bytearray(64 * 1024))
for i in range(0, len(keep), 4):
    keep[i] = None
before = rss_mb()
trimmer = HeapTrimmer(period=0.05).start()
while trimmer.trims == 0:
    pass
trimmer.close()
print(before - rss_mb())
"""


def test_a_trim_hands_back_the_free_holes_between_frames():
    out = subprocess.run([sys.executable, "-c", FRAGMENT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) >= 15.0          # of the 20 MB free in holes


def test_the_trimmer_runs_on_its_period_and_stops_when_closed():
    trimmer = HeapTrimmer(period=0.02).start()
    deadline = time.monotonic() + 5.0
    while trimmer.trims < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    trimmer.close()
    assert trimmer.trims >= 3 and trimmer.longest_ms > 0.0
    assert not trimmer._thread.is_alive()          # close() wakes it: no wait for the period

"""One Euro filter: smooth at rest, fast when moving, sane with odd timestamps."""
from __future__ import annotations

import numpy as np

from openvtuber.tracking.filters import OneEuroFilter, OneEuroParams
from openvtuber.tracking.tracker import DEFAULT_FILTERS


def _run(f: OneEuroFilter, xs: np.ndarray, fps: float = 30.0) -> np.ndarray:
    return np.array([f(np.array([x]), i / fps)[0] for i, x in enumerate(xs)])


def test_noise_at_rest_is_smoothed():
    rng = np.random.default_rng(0)
    xs = 10.0 + rng.normal(0, 0.5, 300)
    out = _run(OneEuroFilter([DEFAULT_FILTERS["angle"]]), xs)
    assert out[30:].std() < 0.5 * xs[30:].std()
    assert abs(out[30:].mean() - 10.0) < 0.1


def test_fast_motion_lags_under_a_frame():
    # a 90°/s head turn at 30 fps
    xs = np.arange(120) * 3.0
    out = _run(OneEuroFilter([DEFAULT_FILTERS["angle"]]), xs)
    lag_frames = (xs[60:] - out[60:]).mean() / 3.0
    assert 0 <= lag_frames <= 1.0


def test_blink_depth_survives_the_eye_filter():
    # a 120 ms blink sampled at 30 fps: open, half, shut, shut, half, open
    xs = np.array([1.0] * 20 + [0.5, 0.0, 0.0, 0.5] + [1.0] * 20)
    out = _run(OneEuroFilter([DEFAULT_FILTERS["eye"]]), xs)
    assert out.min() <= 0.2


def test_channels_are_independent_and_timestamps_are_safe():
    f = OneEuroFilter([OneEuroParams(1.0, 0.0), OneEuroParams(50.0, 0.0)])
    f(np.array([0.0, 0.0]), 0.0)
    a = f(np.array([1.0, 1.0]), 1 / 30)
    assert a[0] < a[1]                       # the higher cutoff follows faster
    same = f(np.array([5.0, 5.0]), 1 / 30)   # repeated timestamp: output unchanged
    assert np.array_equal(same, a)
    reset = f(np.array([7.0, 7.0]), 5.0)     # a long gap: start over, no smear
    assert np.array_equal(reset, [7.0, 7.0])

"""Smoothing of the solver channels: the One Euro filter, vectorised over channels.

The One Euro filter (Casiez et al., CHI 2012) is a low-pass whose cutoff rises with the
signal's speed: a still face gets heavy smoothing (no jitter), a fast head turn or a
blink gets almost none (no lag). Time comes from the source timestamps, so a dropped
frame does not distort it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroParams:
    """``min_cutoff`` (Hz): smoothing at rest; ``beta``: how fast the cutoff rises with
    speed; ``d_cutoff`` (Hz): smoothing of the speed estimate itself."""

    min_cutoff: float = 1.0
    beta: float = 0.0
    d_cutoff: float = 1.0


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One Euro over a vector of channels, each with its own parameters."""

    def __init__(self, params: list[OneEuroParams]):
        self.min_cutoff = np.array([p.min_cutoff for p in params], dtype=np.float64)
        self.beta = np.array([p.beta for p in params], dtype=np.float64)
        self.d_cutoff = np.array([p.d_cutoff for p in params], dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        dt = None if self._t is None else t - self._t
        if self._x is None or dt is None or dt > 1.0 or dt < 0:   # first, long gap, or clock restarted
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        if dt == 0:                                       # repeated timestamp: keep the output
            return self._x.copy()
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * (x - self._x) / dt + (1.0 - a_d) * self._dx
        a = _alpha(self.min_cutoff + self.beta * np.abs(self._dx), dt)
        self._x = a * x + (1.0 - a) * self._x
        self._t = t
        return self._x.copy()

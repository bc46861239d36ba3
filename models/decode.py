"""BlazeFace decode entry point: the Cython kernel when built, else the numpy fallback."""
from __future__ import annotations

from .decode_numpy import decode as decode_numpy

try:
    from ._decode import decode as decode_cython
except ImportError:  # extension not built (no compiler at install): numpy does the same job
    decode_cython = None

decode = decode_cython or decode_numpy
BACKEND = "cython" if decode_cython else "numpy"

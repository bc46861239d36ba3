"""One small wrapper over the two inference runtimes.

LiteRT (``ai-edge-litert``, XNNPACK CPU kernels) is the fast path and installs on Linux
and macOS; OpenCV DNN (``cv2.dnn.readNetFromTFLite``, NCHW input) runs the same
``.tflite`` files everywhere else, about half as fast. Both expose ``run(x)`` taking an
NHWC float32 batch and returning the outputs in the order the caller named them, in
LiteRT's shapes, so the networks' code never knows which runtime it has.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np

RUNTIMES = ("litert", "opencv")


class RuntimeUnavailable(RuntimeError):
    """The requested inference runtime cannot be imported on this machine."""


class Model(Protocol):
    runtime: str

    def run(self, x: np.ndarray) -> list[np.ndarray]: ...


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except Exception:
        return False
    return True


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence C++ log lines (LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate"
    straight to fd 2 when it builds the interpreter) so they do not tear the status line.
    Python exceptions still propagate; only the native stream is muted, briefly."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


class LiteRTModel:
    """A ``.tflite`` graph on LiteRT's interpreter (XNNPACK delegate is its default on CPU)."""

    runtime = "litert"

    def __init__(self, path: Path, output_names: Sequence[str], threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except Exception as e:  # pragma: no cover - depends on the platform
            raise RuntimeUnavailable(f"LiteRT (ai-edge-litert) is not installed: {e}") from e
        with quiet_native_stderr():
            self._it = Interpreter(model_path=str(path), num_threads=max(1, int(threads)))
            self._it.allocate_tensors()
        self._input = self._it.get_input_details()[0]["index"]
        by_name = {d["name"]: d["index"] for d in self._it.get_output_details()}
        self._outputs = [by_name[n] for n in output_names]
        self.input_shape = tuple(int(v) for v in self._it.get_input_details()[0]["shape"])

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        self._it.set_tensor(self._input, x)
        self._it.invoke()
        return [self._it.get_tensor(i) for i in self._outputs]


class OpenCVModel:
    """The same graph on OpenCV DNN: NCHW in, outputs reshaped to LiteRT's shapes."""

    runtime = "opencv"

    def __init__(self, path: Path, output_names: Sequence[str], output_shapes: Sequence[tuple[int, ...]],
                 threads: int = 1):
        import cv2

        cv2.setNumThreads(max(1, int(threads)))
        self._net = cv2.dnn.readNetFromTFLite(str(path))
        self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self._net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self._names = list(output_names)
        self._shapes = [tuple(s) for s in output_shapes]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        self._net.setInput(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        outs = self._net.forward(self._names)
        return [np.asarray(o).reshape(s) for o, s in zip(outs, self._shapes)]


def resolve_runtime(runtime: str = "auto") -> str:
    """``auto`` picks LiteRT where it imports, else OpenCV DNN."""
    if runtime == "auto":
        return "litert" if litert_available() else "opencv"
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: choose auto, litert or opencv")
    if runtime == "litert" and not litert_available():
        raise RuntimeUnavailable("LiteRT (ai-edge-litert) is not installed here: use --runtime opencv")
    return runtime


def load(path: Path, output_names: Sequence[str], output_shapes: Sequence[tuple[int, ...]],
         runtime: str = "auto", threads: int = 1) -> Model:
    """Open one network on the chosen runtime."""
    rt = resolve_runtime(runtime)
    if rt == "litert":
        return LiteRTModel(path, output_names, threads)
    return OpenCVModel(path, output_names, output_shapes, threads)

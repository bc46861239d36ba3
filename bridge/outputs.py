"""Pluggable outputs behind bounded drop-oldest queues.

The tracker thread calls ``OutputHub.publish(pose)``; each output has its own queue and
worker thread. A slow or stuck output loses its oldest poses, never delays tracking;
one that raises is counted and keeps its thread alive. An output that can never block
(``inline = True``: a non-blocking UDP send) is called on the tracker thread itself,
which saves a thread hand-off on the latency that matters most.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from ..protocols.pose import AvatarPose


class Output(Protocol):
    name: str

    def send(self, pose: AvatarPose) -> None: ...

    def close(self) -> None: ...

    def status(self) -> str: ...


class DropOldestQueue:
    """A bounded FIFO whose ``put`` never blocks: when full, the oldest item goes."""

    def __init__(self, maxsize: int = 4):
        self._items: collections.deque = collections.deque(maxlen=maxsize)
        self._cond = threading.Condition()
        self.dropped = 0
        self.closed = False

    def put(self, item: object) -> None:
        with self._cond:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> object | None:
        """The next item, or None once closed and empty (or after ``timeout``)."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


@dataclass
class _Worker:
    output: Output
    queue: DropOldestQueue
    thread: threading.Thread | None = None
    errors: int = 0
    last_error: str = ""


class OutputHub:
    def __init__(self, queue_size: int = 4):
        self._workers: list[_Worker] = []         # in the order added (the status line's)
        self._inline: list[_Worker] = []
        self._queued: list[_Worker] = []
        self._queue_size = queue_size

    def add(self, output: Output) -> None:
        worker = _Worker(output, DropOldestQueue(self._queue_size))
        self._workers.append(worker)
        if getattr(output, "inline", False):
            self._inline.append(worker)           # no thread: publish() calls it
            return
        worker.thread = threading.Thread(target=self._run, args=(worker,), name=f"output-{output.name}", daemon=True)
        self._queued.append(worker)
        worker.thread.start()

    @staticmethod
    def _run(worker: _Worker) -> None:
        while True:
            pose = worker.queue.get(timeout=0.25)
            if pose is None:
                if worker.queue.closed:
                    return
                continue
            try:
                worker.output.send(pose)  # type: ignore[arg-type]
            except Exception as e:  # an output failing must not stop the others or tracking
                worker.errors += 1
                worker.last_error = f"{type(e).__name__}: {e}"

    def publish(self, pose: AvatarPose) -> None:
        # The inline sends first: handing a pose to a queued output wakes its thread, which on
        # a busy machine may take this CPU before the tracker thread gets to its send.
        for w in self._inline:
            try:
                w.output.send(pose)
            except Exception as e:  # noqa: BLE001 - counted like a worker's failure
                w.errors += 1
                w.last_error = f"{type(e).__name__}: {e}"
        for w in self._queued:
            w.queue.put(pose)

    def close(self, timeout: float = 1.0) -> None:
        """Let each output drain what is queued (bounded by ``timeout``), then close it."""
        for w in self._workers:
            w.queue.close()
        deadline = time.monotonic() + timeout          # one budget for all outputs, not one each
        for w in self._workers:
            if w.thread is not None:
                w.thread.join(max(0.0, deadline - time.monotonic()))
            try:
                w.output.close()
            except Exception:
                pass

    def status(self) -> str:
        parts = []
        for w in self._workers:
            s = w.output.status()
            if w.queue.dropped:
                s += f" ({w.queue.dropped} dropped)"
            if w.errors:
                s += f" ({w.errors} errors: {w.last_error})"
            parts.append(s)
        return " | ".join(parts)

"""Micro-batching for the RM server: concurrent requests that arrive within a few milliseconds share one forward.

    batcher = MicroBatcher(score_fn, max_batch=64, wait_ms=5)
    future = batcher.submit(items)        # from any request thread
    rewards = future.result(timeout)      # list[float], aligned with items

One worker thread owns the model. It blocks for the first request, then keeps taking requests until the merged batch
holds `max_batch` items or `wait_ms` has passed since that first request, calls `score_fn(all items)` once and hands
each request its slice. A request larger than `max_batch` is scored on its own (never split across forwards with
others). When `score_fn` raises, every request of that merged batch gets the exception. `close()` stops taking new
work, finishes what is queued and joins the worker.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

_STOP = object()


class MicroBatcher:
    def __init__(self, score_fn: Callable[[list[Any]], Sequence[float]], max_batch: int = 64, wait_ms: float = 5.0):
        if max_batch < 1:
            raise ValueError(f"max_batch must be ≥ 1, got {max_batch}")
        self.score_fn, self.max_batch, self.wait_s = score_fn, int(max_batch), max(0.0, wait_ms) / 1000.0
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self.batches = 0  # forwards run (merged batches)
        self.items = 0  # items scored
        self._worker = threading.Thread(target=self._run, name="rm-micro-batcher", daemon=True)
        self._worker.start()

    def submit(self, items: Sequence[Any]) -> Future:
        fut: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the batcher is closed (server shutting down)")
            self._queue.put((list(items), fut))
        return fut

    def close(self, timeout: float | None = None) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._worker.join(timeout)

    # ----------------------------------------------------------------------------------------------- worker

    def _run(self) -> None:
        carry = None  # a request taken from the queue that did not fit the previous batch
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if first is _STOP:
                return
            batch = [first]
            size = len(first[0])
            deadline = time.monotonic() + self.wait_s
            stop = False
            while size < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                if size + len(nxt[0]) > self.max_batch:
                    carry = nxt
                    break
                batch.append(nxt)
                size += len(nxt[0])
            self._score(batch)
            if stop:
                self._drain()
                return

    def _drain(self) -> None:
        """After the stop marker: score whatever was queued before it (close() refuses new submissions)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._score([item])

    def _score(self, batch: list[tuple[list, Future]]) -> None:
        live = [(items, fut) for items, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        merged = [x for items, _ in live for x in items]
        try:
            out = list(self.score_fn(merged)) if merged else []
            if len(out) != len(merged):
                raise RuntimeError(f"score function returned {len(out)} values for {len(merged)} items")
        except BaseException as e:  # noqa: BLE001 - handed to every waiting request
            for _, fut in live:
                fut.set_exception(e)
            return
        self.batches += 1
        self.items += len(merged)
        start = 0
        for items, fut in live:
            fut.set_result(out[start:start + len(items)])
            start += len(items)

"""Micro-batching of concurrent requests: what lets per-sample reward calls reach the judge together.

verl calls the reward once per sample from executor threads, OpenRLHF and Inspect AI from concurrent tasks. A
``Coalescer`` gathers requests into a batch as long as each arrives within ``window`` seconds of the one before
(so a burst whose threads are scheduled late still lands in one batch), for at most ``max_wait`` seconds, and
serves them all with ONE call of ``fetch`` on their deduplicated union, made by a short-lived thread of the batch:
callers hold no lock while it runs, they wait on the batch's future (``Future.result`` in a thread, ``await`` in
an event loop).

One batch is fetched at a time (a judge such as an in-process engine must not be called from two threads at
once); requests arriving meanwhile form the next batch, which is fetched as soon as the judge is free, so under
load the batches grow by themselves. An exception of ``fetch`` reaches every caller of its batch as the same
exception: never a number.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Batch(Generic[K, V]):
    def __init__(self) -> None:
        self.keys: dict[K, None] = {}
        """The requested keys, deduplicated in arrival order."""
        self.future: Future[Mapping[K, V]] = Future()
        self.requests = 0
        self.opened = self.last = time.monotonic()


class Coalescer(Generic[K, V]):
    """Serves concurrent key requests in batches: one ``fetch`` call per batch (module docstring)."""

    def __init__(self, fetch: Callable[[list[K]], Mapping[K, V]], window: float, max_wait: float | None = None,
                 name: str = "coalescer") -> None:
        if window < 0 or (max_wait is not None and max_wait < window):
            raise ValueError(f"need 0 <= window <= max_wait seconds, not window {window}, max_wait {max_wait}")
        self.fetch = fetch
        self.window = window
        self.max_wait = 10 * window if max_wait is None else max_wait
        self.name = name
        self.batches = 0
        """Batches fetched so far (one ``fetch`` call each)."""
        self.requests = 0
        """Requests served so far: ``requests / batches`` is how well calls coalesce."""
        self._lock = threading.Lock()  # guards the open batch; never held while fetching
        self._turn = threading.Lock()  # one batch with ``fetch`` at a time
        self._open: _Batch[K, V] | None = None

    def submit(self, keys: Iterable[K]) -> Future[Mapping[K, V]]:
        """The future of the batch that will fetch ``keys`` (with every other key requested in its window): its
        result maps each key of the batch to its value."""
        with self._lock:
            batch = self._open
            if batch is None:
                batch = self._open = _Batch()
                threading.Thread(target=self._run, args=(batch,), name=self.name, daemon=True).start()
            batch.keys.update(dict.fromkeys(keys))
            batch.requests += 1
            batch.last = time.monotonic()
            return batch.future

    def get(self, keys: Iterable[K]) -> Mapping[K, V]:
        """``submit`` and wait: the values of ``keys`` (and of the rest of the batch)."""
        return self.submit(keys).result()

    def _close(self, batch: _Batch[K, V]) -> None:
        """Stop ``batch`` taking requests: later ones open the next batch."""
        with self._lock:
            if self._open is batch:
                self._open = None
            self.batches += 1
            self.requests += batch.requests

    def _wait_for_the_burst(self, batch: _Batch[K, V]) -> None:
        """Until ``window`` s pass with no new request, or ``max_wait`` s since the batch opened."""
        while True:
            with self._lock:
                wait = min(batch.last + self.window, batch.opened + self.max_wait) - time.monotonic()
            if wait <= 0:
                return
            time.sleep(wait)

    def _run(self, batch: _Batch[K, V]) -> None:
        self._wait_for_the_burst(batch)
        with self._turn:  # waiting here, the batch still takes requests: it grows while the previous one is fetched
            self._close(batch)
            try:
                values = self.fetch(list(batch.keys))
            except BaseException as e:  # every caller gets it; none is left waiting
                batch.future.set_exception(e)
            else:
                batch.future.set_result(values)

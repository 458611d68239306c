"""A wall-clock limit for code that must return fast (the reward's parsing): past it the block raises
``TimeoutError`` instead of hanging the suite. Uses SIGALRM, which also interrupts a running regular expression
(the re engine checks for signals), so it works on the main thread of POSIX only."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Run the block; raise ``TimeoutError`` if it runs past ``seconds``."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.perf_counter()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if time.perf_counter() - start > seconds:
        raise TimeoutError(f"took {time.perf_counter() - start:.2f} s, over {seconds} s")

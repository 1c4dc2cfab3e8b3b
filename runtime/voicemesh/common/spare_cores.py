"""How many threads a parallel step should use: as many as the rest of the machine leaves idle.

Threads that split one operation meet at a barrier after every layer. When another process holds a
core, the thread that shares it stalls all the others at each barrier. Measured on 2 cores
(SmolLM2-135M, one llama.cpp step for 16 sequences): 151 ms with 2 threads on an idle box, 509 ms
with 2 threads beside one busy core, 280 ms with 1 thread there. The mesh's services share a box
(`voicemesh up`, or pods on one node), so a step is given the cores that are idle now: the
machine's busy time from /proc/stat, less this process's own, read at most every ``every_s``.

What counts is the load that lasts, averaged over about ``settle_s``, not a burst. A single talker's
speech is decoded and synthesised in bursts of 0.1-0.3 s beside the reply: a step that drops to one
thread for each of them finishes the reply later and keeps that core busy into the next burst.
Measured on 2 cores (bench/latency.py, fixed endpointing, the 11 of 20 turns every run heard
alike): voice to voice mean 982 and 1028 ms when each quarter second decided, 940 averaged over
3 s, 928 on both threads always; a crowd keeps the other processes busy for seconds, and there the
3 s average answers as the quarter second did (bench/crowd.py, 16 talkers: first token 0.48 s
after the final at P50, 2.3 s on both threads always).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

STAT = Path("/proc/stat")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def threads_for(others_busy: float, cores: int, most: int) -> int:
    """Threads to use when other processes keep ``others_busy`` cores busy: the idle cores, rounded
    to the nearest whole one, from 1 to ``most``."""
    return max(1, min(most, round(cores - others_busy)))


def _busy_s() -> float | None:
    """CPU seconds the whole machine has spent busy (not idle, not waiting on I/O) since boot."""
    try:
        fields = STAT.read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(value) for value in fields[:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS_PER_S


class SpareCores:
    """``threads()``: how many of ``most`` threads to use now. Without /proc/stat (not Linux), all."""

    def __init__(self, most: int, every_s: float = 0.25, settle_s: float = 3.0) -> None:
        self.most = most
        self._cores = os.cpu_count() or 1
        self._every_s = every_s
        self._settle_s = settle_s
        self._others = 0.0  # cores the other processes keep busy, a moving average
        self._threads = most
        self._at = time.monotonic()
        self._busy = _busy_s()
        self._own = time.process_time()

    def threads(self) -> int:
        now = time.monotonic()
        if self._busy is None or now - self._at < self._every_s:
            return self._threads
        busy, own = _busy_s(), time.process_time()
        if busy is None:
            return self._threads
        elapsed = now - self._at
        others = max(0.0, (busy - self._busy) - (own - self._own)) / elapsed
        self._others += (1 - math.exp(-elapsed / self._settle_s)) * (others - self._others)
        self._threads = threads_for(self._others, self._cores, self.most)
        self._at, self._busy, self._own = now, busy, own
        return self._threads

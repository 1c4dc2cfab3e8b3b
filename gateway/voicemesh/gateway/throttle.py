"""Per-tenant rate limits by request type, and a concurrency limit per downstream service.

Rate limits count requests in a sliding window (one minute by default) per (tenant, kind): ``stt``
per Converse stream, ``llm`` per reply, ``tts`` per spoken reply. A request over the limit waits if
its slot frees within ``max_wait_s``; otherwise it is refused with RESOURCE_EXHAUSTED and told when
to come back. A reply over the ``llm`` limit is first offered to a tier the limit does not protect
(the core's local model, where its usual one is remote; see ``Admission``). The tenant is the one
the caller's credential names (voicemesh.gateway.auth).

The concurrency limit caps the calls in flight to each downstream; a bounded number more wait, for
at most ``max_wait_s``, and the rest are refused the same way. Its gauges show the slots in use and
the calls waiting, per service.

Per caller, the Converse streams open and the turns in flight are capped too, so no one caller can
take every slot; the counts are kept only while non-zero, so made-up callers cost nothing after.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from voicemesh.common.errors import Overloaded
from voicemesh.common.metrics import DOWNSTREAM_IN_FLIGHT, DOWNSTREAM_QUEUED

Release = Callable[[], None]


@dataclass
class RateLimits:
    """Sliding-window request counts per (tenant, kind)."""

    per_window: dict[str, int]  # kind → requests allowed per window
    max_wait_s: float
    window_s: float = 60.0  # the settings name limits per minute
    _seen: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _swept: float = field(default_factory=time.monotonic)

    def _sweep(self, now: float) -> None:
        """Forget callers with nothing in the window, once a window: made-up tenants cost memory
        only while they keep coming."""
        if now - self._swept < self.window_s:
            return
        self._swept = now
        for key in [k for k, times in self._seen.items() if not times or times[-1] <= now - self.window_s]:
            del self._seen[key]

    def tracked(self) -> int:
        """(tenant, kind) pairs held."""
        return len(self._seen)

    def _retry_after(self, tenant: str, kind: str) -> float:
        """0 if a request fits now, else the seconds until one does (and nothing is counted)."""
        now = time.monotonic()
        self._sweep(now)
        times = self._seen.setdefault((tenant, kind), deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) < self.per_window[kind]:
            times.append(now)
            return 0.0
        return times[0] + self.window_s - now

    async def admit(self, tenant: str, *kinds: str) -> None:
        """Count one request of each kind, waiting up to ``max_wait_s`` for room."""
        for kind in kinds:
            await self.wait_for(tenant, kind, math.inf)

    def over(self, tenant: str, kind: str) -> str:
        """Count one request of ``kind`` if it fits; else (counting nothing) say why it does not."""
        return self._over(tenant, kind) if self._retry_after(tenant, kind) else ""

    async def wait_for(self, tenant: str, kind: str, until: float) -> None:
        """Count one request of ``kind``, waiting for room up to ``max_wait_s`` and no later than
        ``until`` (``time.monotonic()``); refused with RESOURCE_EXHAUSTED and a time to retry past that."""
        wait = self._retry_after(tenant, kind)
        if wait and wait <= min(self.max_wait_s, until - time.monotonic()):
            await asyncio.sleep(wait)
            wait = self._retry_after(tenant, kind)
        if wait:
            raise Overloaded(f"{self._over(tenant, kind)}; retry in {wait:.1f}s", wait)

    def _over(self, tenant: str, kind: str) -> str:
        return f"tenant {tenant!r} is over its {kind} limit of {self.per_window[kind]} per {self.window_s:g}s"


@dataclass(frozen=True)
class Admission:
    """A turn let through. ``release`` gives its caller's place back. ``over_limit`` says why the
    usual model may not answer it (its tenant is over the llm limit): another tier answers, or,
    where there is none, ``wait_for_room`` waits (until a deadline) for room under the limit."""

    release: Release
    over_limit: str = ""
    wait_for_room: Callable[[float], Awaitable[None]] | None = None


class ConcurrencyLimit:
    """At most ``limit`` calls in flight to one service, and at most ``queue`` more waiting."""

    def __init__(self, service: str, limit: int, queue: int, max_wait_s: float) -> None:
        self._service = service
        self._limit = limit
        self._queue = queue
        self._max_wait_s = max_wait_s
        self._slots = asyncio.Semaphore(limit)
        self._waiting = 0
        self._in_flight = 0
        self._gauges = DOWNSTREAM_IN_FLIGHT.labels(service), DOWNSTREAM_QUEUED.labels(service)
        self._show()

    def _show(self) -> None:
        in_flight, queued = self._gauges
        in_flight.set(self._in_flight)
        queued.set(self._waiting)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            await self._acquire()
        finally:
            self._show()
        self._in_flight += 1
        self._show()
        try:
            yield
        finally:
            self._in_flight -= 1
            self._slots.release()
            self._show()

    async def _acquire(self) -> None:
        if self._slots.locked():
            if self._waiting >= self._queue:
                raise Overloaded(
                    f"{self._service}: {self._limit} calls in progress and {self._waiting} waiting; "
                    "retry shortly",
                    self._max_wait_s or 1.0,
                )
            self._waiting += 1
            self._show()
            try:
                async with asyncio.timeout(self._max_wait_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise Overloaded(
                    f"{self._service}: no call slot freed within {self._max_wait_s:g}s; retry shortly",
                    self._max_wait_s or 1.0,
                ) from None
            finally:
                self._waiting -= 1
        else:
            await self._slots.acquire()


class CallerLimits:
    """At most ``most[kind]`` things of each kind (``streams``, ``turns``) in flight per caller."""

    def __init__(self, most: dict[str, int]) -> None:
        self._most = most
        self._held: dict[tuple[str, str], int] = {}

    def take(self, caller: str, kind: str) -> Release:
        """Count one more, or refuse it; the returned function gives it back (once)."""
        key = (caller, kind)
        held = self._held.get(key, 0)
        if held >= self._most[kind]:
            raise Overloaded(
                f"caller {caller!r} has {held} {kind} in flight, its most; finish one and retry", 1.0
            )
        self._held[key] = held + 1
        given_back = False

        def release() -> None:
            nonlocal given_back
            if given_back:
                return
            given_back = True
            left = self._held[key] - 1
            if left:
                self._held[key] = left
            else:
                del self._held[key]

        return release

    def held(self) -> int:
        return sum(self._held.values())

"""Every turn that ends reaches the core's RecordTurn, in order, however long the core is away.

A turn is queued the moment it ends (finished, interrupted, or its client gone) and one task sends
the queue to the core, retrying with backoff while the core is unreachable. A turn's caller may wait
a moment for its record to land, so the next turn finds it as context; it never waits longer than
that. What the core refuses as malformed is dropped with a log line: retrying cannot fix it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import grpc

from voicemesh.gateway.downstream import Downstream
from voicemesh.rpc.status import RelayedStatus
from voicemesh.v1 import core_pb2

log = logging.getLogger(__name__)

ATTEMPT_TIMEOUT_S = 2.0
_HOPELESS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED)


class TurnRecorder:
    def __init__(self, downstream: Downstream, *, max_queued: int = 10_000, retry_max_s: float = 2.0) -> None:
        self._downstream = downstream
        self._queue: deque[tuple[core_pb2.RecordTurnRequest, asyncio.Future[None]]] = deque()
        self._max_queued = max_queued
        self._retry_max_s = retry_max_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, request: core_pb2.RecordTurnRequest) -> asyncio.Future[None]:
        """Queue a turn; the future is done when the core has it."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="turn-recorder")
        if len(self._queue) >= self._max_queued:
            dropped, gone = self._queue.popleft()
            gone.set_result(None)  # nobody should wait on it any longer
            log.error("record queue full: dropped the turn of session %s", dropped.session_id)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((request, done))
        self._wake.set()
        return done

    async def record(self, request: core_pb2.RecordTurnRequest, wait_s: float) -> None:
        """Queue a turn and give it up to ``wait_s`` to land."""
        done = self.submit(request)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), wait_s)

    async def close(self, timeout_s: float = 5.0) -> None:
        pending = [done for _, done in self._queue]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)
        if self._queue:
            log.error("core unreachable at shutdown: %d turns not recorded", len(self._queue))
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        delay = 0.05
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            request, done = self._queue[0]
            try:
                async with self._downstream.guard("core") as core:
                    await core.RecordTurn(request, timeout=ATTEMPT_TIMEOUT_S)
            except RelayedStatus as exc:
                if exc.code() not in _HOPELESS:
                    log.warning("recording a turn failed (%s); retrying in %.2fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max_s)
                    continue
                log.error("the core refused a turn record: %s", exc)
            delay = 0.05
            if self._queue and self._queue[0][1] is done:
                self._queue.popleft()
            if not done.done():
                done.set_result(None)

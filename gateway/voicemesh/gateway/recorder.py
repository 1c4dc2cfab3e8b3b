"""Every turn that ends reaches the core's RecordTurn, in order, however long the core is away.

A turn is queued the moment it ends (finished, interrupted, failed, or its client gone) and one task
sends the queue to the core, retrying with backoff whatever the failure (the core down, slow,
overloaded). The task is supervised: should it die of a bug it is logged and started again. A
turn's caller may wait a moment for its record to land, so the next turn finds it as context; it
never waits longer than that. What the core refuses as malformed is dropped with a log line:
retrying cannot fix it. At shutdown the queue has ``flush_s`` to reach the core; what is left is
spilled to a file and sent by the next gateway that starts with the same folder. The core keeps a
record sent twice once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections import deque
from pathlib import Path

import grpc

from voicemesh.common.metrics import RECORDS_QUEUED, RECORDS_SENT
from voicemesh.common.spill import Spilled, SpillFolder
from voicemesh.common.supervise import supervised
from voicemesh.gateway.downstream import Downstream
from voicemesh.rpc.status import RelayedStatus
from voicemesh.v1 import core_pb2

log = logging.getLogger(__name__)

ATTEMPT_TIMEOUT_S = 2.0
_HOPELESS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED)


class TurnRecorder:
    def __init__(
        self,
        downstream: Downstream,
        *,
        spill: Path | None = None,
        max_queued: int = 10_000,
        retry_first_s: float = 0.05,
        retry_max_s: float = 2.0,
    ) -> None:
        self._downstream = downstream
        self._queue: deque[tuple[core_pb2.RecordTurnRequest, asyncio.Future[None]]] = deque()
        self._max_queued = max_queued
        self._retry_first_s = retry_first_s
        self._retry_max_s = retry_max_s
        self._spill = SpillFolder(spill, "records") if spill is not None else None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Take up what an earlier gateway spilled, and start sending."""
        if self._spill is not None:
            for spilled in self._spill.claim():
                self._replay(spilled)
        if self._task is None:
            self._task = asyncio.create_task(
                supervised("turn-recorder", self._run, self._retry_first_s), name="turn-recorder"
            )

    def _replay(self, spilled: Spilled) -> None:
        landed = [
            self.submit(core_pb2.RecordTurnRequest.FromString(base64.b64decode(item)))
            for item in spilled.items
        ]
        log.info("%s: %d turn records from an earlier run queued again", spilled.path.name, len(landed))

        async def delete_when_landed() -> None:
            await asyncio.gather(*landed)
            SpillFolder.delivered(spilled)

        task = asyncio.create_task(delete_when_landed())
        task.add_done_callback(lambda done: done.cancelled() or done.exception())  # shutdown cancels it

    def submit(self, request: core_pb2.RecordTurnRequest) -> asyncio.Future[None]:
        """Queue a turn; the future is done when the core has it."""
        if len(self._queue) >= self._max_queued:
            dropped, gone = self._queue.popleft()
            gone.set_result(None)  # nobody should wait on it any longer
            RECORDS_SENT.labels("dropped").inc()
            log.error("record queue full: dropped the turn of session %s", dropped.session_id)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((request, done))
        RECORDS_QUEUED.set(len(self._queue))
        self._wake.set()
        return done

    async def record(self, request: core_pb2.RecordTurnRequest, wait_s: float) -> None:
        """Queue a turn and give it up to ``wait_s`` to land."""
        done = self.submit(request)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), wait_s)

    async def close(self, flush_s: float) -> None:
        """Give the queue ``flush_s`` to reach the core; spill what is left for the next start."""
        pending = [done for _, done in self._queue]
        if pending:
            await asyncio.wait(pending, timeout=flush_s)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        left = [request for request, _ in self._queue]
        if not left:
            return
        if self._spill is None:
            log.error("core unreachable at shutdown: %d turn records lost (no spill folder)", len(left))
            return
        path = self._spill.write([base64.b64encode(r.SerializeToString()).decode() for r in left])
        log.warning("core unreachable at shutdown: %d turn records spilled to %s", len(left), path)

    async def _run(self) -> None:
        delay = self._retry_first_s
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            request, done = self._queue[0]
            try:
                async with self._downstream.guard("core", slot=False) as core:
                    await core.RecordTurn(request, timeout=ATTEMPT_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not (isinstance(exc, RelayedStatus) and exc.code() in _HOPELESS):
                    RECORDS_SENT.labels("retried").inc()
                    log.warning("recording a turn failed (%s); retrying in %.2fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max_s)
                    continue
                RECORDS_SENT.labels("refused").inc()
                log.error("the core refused a turn record: %s", exc)
            else:
                RECORDS_SENT.labels("ok").inc()
            delay = self._retry_first_s
            if self._queue and self._queue[0][1] is done:
                self._queue.popleft()
                RECORDS_QUEUED.set(len(self._queue))
            if not done.done():
                done.set_result(None)

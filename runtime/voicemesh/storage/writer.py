"""Write-behind for the history store: a turn is queued at once and written in the background.

The conversation never waits for the database. One task writes the queue in order, in batches; a
failed write is retried with backoff for as long as the store is down, so the turns of an outage
appear once it is back. The task is supervised: should it die of a bug it is logged and started
again. The queue is bounded: past ``max_queued`` the oldest turn is dropped and counted, because a
database that stays down must not take the process's memory with it. At shutdown the queue has
``flush_s`` to reach the store; what is left is spilled to a file and written by the next process
that starts with the same folder (the store keeps a turn written twice once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import asdict
from pathlib import Path

from voicemesh.common.metrics import HISTORY_QUEUED, HISTORY_WRITES
from voicemesh.common.spill import Spilled, SpillFolder
from voicemesh.common.supervise import supervised
from voicemesh.storage.history import HistoryStore, TurnRecord

log = logging.getLogger(__name__)

BATCH = 100


class HistoryWriter:
    def __init__(
        self,
        store: HistoryStore,
        *,
        spill: Path | None = None,
        max_queued: int = 10_000,
        retry_first_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        self._store = store
        self._queue: deque[TurnRecord] = deque()
        self._max_queued = max_queued
        self._retry_first_s = retry_first_s
        self._retry_max_s = retry_max_s
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()  # held while a batch is on its way to the store
        self._spill = SpillFolder(spill, "history") if spill is not None else None
        self._replayed: list[Spilled] = []  # spill files whose turns are queued, deleted once written

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Take up what an earlier process spilled, and start writing."""
        if self._spill is not None:
            for spilled in self._spill.claim():
                for item in spilled.items:
                    self.put(TurnRecord(**item))
                self._replayed.append(spilled)
                log.info(
                    "%s: %d history turns from an earlier run queued again",
                    spilled.path.name,
                    len(spilled.items),
                )
        if self._task is None:
            self._task = asyncio.create_task(
                supervised("history-writer", self._run, self._retry_first_s), name="history-writer"
            )

    def put(self, turn: TurnRecord) -> None:
        if len(self._queue) >= self._max_queued:
            dropped = self._queue.popleft()
            HISTORY_WRITES.labels("dropped").inc()
            log.error(
                "history queue full (%d turns): dropped a turn of %s", self._max_queued, dropped.user_id
            )
        self._queue.append(turn)
        HISTORY_QUEUED.set(len(self._queue))
        self._idle.clear()
        self._wake.set()

    async def drop_user(self, user_id: str) -> int:
        """Forget a user's turns not written yet, and wait out a batch in flight, which may hold some:
        after this, deleting the user's rows leaves none behind. Returns the turns forgotten."""
        kept = [turn for turn in self._queue if turn.user_id != user_id]
        dropped = len(self._queue) - len(kept)
        self._queue = deque(kept)
        HISTORY_QUEUED.set(len(self._queue))
        async with self._writing:
            pass
        return dropped

    async def flush(self, timeout_s: float) -> int:
        """Wait until the queue is written, or the time is up; returns the turns still queued."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        return len(self._queue)

    async def close(self, flush_s: float) -> None:
        """Give the queue ``flush_s`` to reach the store; spill what is left for the next start."""
        await self.flush(flush_s)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        left = list(self._queue)
        if not left:
            return
        if self._spill is None:
            log.error("history store unreachable at shutdown: %d turns lost (no spill folder)", len(left))
            return
        path = self._spill.write([asdict(turn) for turn in left])
        log.warning("history store unreachable at shutdown: %d turns spilled to %s", len(left), path)

    async def _run(self) -> None:
        delay = self._retry_first_s
        while True:
            if not self._queue:
                for spilled in self._replayed:  # all its turns are written now
                    SpillFolder.delivered(spilled)
                self._replayed.clear()
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            async with self._writing:  # drop_user cannot slip between taking the batch and writing it
                batch = [self._queue[n] for n in range(min(BATCH, len(self._queue)))]
                try:
                    await self._store.append(batch)
                    failure = None
                except Exception as exc:  # any store failure: keep the turns and try again later
                    failure = exc
                if failure is None:
                    written = {id(turn) for turn in batch}
                    self._queue = deque(turn for turn in self._queue if id(turn) not in written)
            if failure is not None:
                HISTORY_WRITES.labels("retried").inc(len(batch))
                log.warning(
                    "history write of %d turns failed (%s); retrying in %.1fs", len(batch), failure, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)
                continue
            delay = self._retry_first_s
            HISTORY_WRITES.labels("ok").inc(len(batch))
            HISTORY_QUEUED.set(len(self._queue))

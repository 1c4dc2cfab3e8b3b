"""A Converse stream's audio on its way to the STT, for one attempt after another.

The caller's audio is taken once; each STT attempt reads it from its own position, so a dead
attempt's reader (gRPC's request poller may run on after its call failed) takes nothing from the
next one. Until a replica answers, everything is kept, so a retry on another replica starts with
the whole utterance; once one has answered, or the audio outgrows ``replay_cap`` bytes, nothing will
be sent twice and only what the live attempt has not sent yet is held. The caller is held back
when the live attempt falls ``window`` chunks behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class Upload:
    def __init__(self, replay_cap: int, window: int = 32) -> None:
        self._chunks: list[bytes] = []
        self._first = 0  # stream position of self._chunks[0]
        self._held = 0  # bytes in self._chunks
        self._cap = replay_cap
        self._window = window
        self._sent = 0  # position up to which the live attempt has read
        self._reader = 0  # the live attempt's number; older readers stop
        self._changed = asyncio.Event()
        self.replayable = True
        self.ended = False

    @property
    def _end(self) -> int:
        return self._first + len(self._chunks)

    async def put(self, chunk: bytes) -> None:
        while self._end - self._sent >= self._window:
            await self._wait()
        self._chunks.append(chunk)
        self._held += len(chunk)
        if self._held > self._cap:
            self.answered()  # too much to hold: this stream will not be replayed
        self._notify()

    def finish(self) -> None:
        self.ended = True
        self._notify()

    def close(self) -> None:
        """No attempt reads any more: every reader stops, so gRPC's request pollers end with them."""
        self._reader += 1
        self.finish()

    def answered(self) -> None:
        """An attempt was answered (or the audio outgrew the cap): no replay from here on."""
        self.replayable = False
        self._forget()

    def reader(self) -> AsyncIterator[bytes]:
        """The audio for a new attempt, from the start if it is still held; older readers stop."""
        self._reader += 1
        self._notify()
        return self._read(self._reader)

    async def _read(self, me: int) -> AsyncIterator[bytes]:
        position = self._first
        while me == self._reader:
            if position < self._end:
                chunk = self._chunks[position - self._first]
                position += 1
                self._sent = position
                self._forget()
                self._notify()
                yield chunk
            elif self.ended:
                return
            else:
                await self._wait()

    def _forget(self) -> None:
        if self.replayable:
            return
        sent = self._sent - self._first
        self._held -= sum(len(chunk) for chunk in self._chunks[:sent])
        del self._chunks[:sent]
        self._first = self._sent

    def _notify(self) -> None:
        self._changed.set()

    async def _wait(self) -> None:
        self._changed.clear()
        await self._changed.wait()

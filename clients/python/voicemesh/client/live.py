"""A Converse call driven like a live microphone: silence at real-time pace, speech when told.

For benchmarks and tests of real-time behaviour (endpointing, barge-in, voice-to-voice latency):
``say`` queues speech, the call keeps sending 20 ms chunks of it, or of silence when there is
none, and every event is kept with the time it arrived. ``sent_at`` tells when a given sample left.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc

from voicemesh.common.calls import responses
from voicemesh.v1 import audio_pb2
from voicemesh.v1 import gateway_pb2 as pb
from voicemesh.v1 import gateway_pb2_grpc as pb_grpc

RATE_HZ = 16_000
CHUNK_SAMPLES = 320  # 20 ms


@dataclass(frozen=True)
class Heard:
    at: float  # time.monotonic() when it arrived
    response: pb.ConverseResponse

    @property
    def kind(self) -> str:
        return self.response.WhichOneof("event") or ""

    @property
    def turn(self) -> int:
        return self.response.turn_index


@dataclass
class LiveCall:
    """Open with ``async with LiveCall(channel, config) as call``; 16 kHz mono 16-bit audio."""

    channel: grpc.aio.Channel
    config: pb.ConverseConfig = field(default_factory=pb.ConverseConfig)
    speed: float = 1.0  # how many times faster than real time the audio is sent
    events: list[Heard] = field(default_factory=list)
    _pending: bytearray = field(default_factory=bytearray)
    _sent_samples: list[int] = field(default_factory=list)  # after each chunk: samples sent so far
    _sent_times: list[float] = field(default_factory=list)
    _closing: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    @property
    def position(self) -> int:
        """Samples handed to the call so far (sent, or queued to be sent)."""
        return (self._sent_samples[-1] if self._sent_samples else 0) + len(self._pending) // 2

    def say(self, pcm: bytes) -> int:
        """Queue speech after what is already queued; returns the sample position it starts at."""
        start = self.position
        self._pending += pcm
        return start

    def sent_at(self, sample: int) -> float | None:
        """When the chunk holding ``sample`` was sent (None if not yet)."""
        index = bisect.bisect_right(self._sent_samples, sample)
        return self._sent_times[index] if index < len(self._sent_times) else None

    async def wait(self, match: Callable[[Heard], bool], timeout_s: float = 60.0) -> Heard:
        """The first event, past or future, that ``match`` accepts."""
        async with asyncio.timeout(timeout_s):
            while True:
                for heard in self.events:
                    if match(heard):
                        return heard
                if self._task is not None and self._task.done():
                    self._task.result()
                    raise AssertionError("the call ended before the awaited event")
                self._changed.clear()
                await self._changed.wait()

    def of(self, kind: str, turn: int | None = None) -> list[Heard]:
        return [h for h in self.events if h.kind == kind and (turn is None or h.turn == turn)]

    async def finish(self, tail_s: float = 0.0, timeout_s: float = 120.0) -> None:
        """Send ``tail_s`` more seconds (silence unless speech is queued), half-close, and wait."""
        self.say(b"\0\0" * int(tail_s * RATE_HZ))
        self._closing = True
        assert self._task is not None
        async with asyncio.timeout(timeout_s):
            await self._task

    async def __aenter__(self) -> LiveCall:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _requests(self) -> AsyncIterator[pb.ConverseRequest]:
        config = pb.ConverseConfig()
        config.CopyFrom(self.config)
        config.audio_format.CopyFrom(
            audio_pb2.AudioFormat(
                encoding=audio_pb2.AUDIO_ENCODING_LINEAR16, sample_rate_hz=RATE_HZ, channels=1
            )
        )
        yield pb.ConverseRequest(config=config)
        started = time.monotonic()
        sent = 0
        while not (self._closing and not self._pending):
            take = 2 * CHUNK_SAMPLES
            chunk = bytes(self._pending[:take]).ljust(take, b"\0")
            del self._pending[:take]
            yield pb.ConverseRequest(audio_content=chunk)
            sent += CHUNK_SAMPLES
            self._sent_samples.append(sent)
            self._sent_times.append(time.monotonic())
            await asyncio.sleep(max(0.0, started + sent / RATE_HZ / self.speed - time.monotonic()))

    async def _run(self) -> None:
        stub = pb_grpc.GatewayServiceStub(self.channel)
        try:
            async with contextlib.aclosing(responses(stub.Converse(self._requests()))) as heard:
                async for response in heard:
                    self.events.append(Heard(time.monotonic(), response))
                    self._changed.set()
        finally:
            self._changed.set()

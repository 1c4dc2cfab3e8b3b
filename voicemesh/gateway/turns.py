"""One turn: the user's text to the core, the reply's text deltas on to TTS as they are generated.

Events are emitted as ``{field: value}`` with the field names that ConverseResponse and AskResponse
share, so both RPCs use this one implementation. Where they go is a ``TurnOutput``: it times the
turn's stages as the client sees them, counts the reply audio sent, and can hold a speculative
turn's events until the transcript it started from is confirmed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from voicemesh.common.metrics import STAGE_SECONDS
from voicemesh.common.retry import RetryPolicy, retrying_stream
from voicemesh.common.tracing import outgoing_metadata, tracer
from voicemesh.gateway.deadlines import Deadline
from voicemesh.gateway.downstream import Downstream
from voicemesh.rpc.status import RelayedStatus
from voicemesh.v1 import audio_pb2, core_pb2, gateway_pb2
from voicemesh.v1 import text_to_speech_pb2 as tts_pb2

log = logging.getLogger(__name__)

Fields = dict[str, object]
EmitFields = Callable[[Fields], Awaitable[None]]

# A reply stream that has not answered yet is safe to start again (another core replica, a restart).
CORE_RETRIES = RetryPolicy(attempts=3, base_s=0.05, cap_s=0.5)
# What a held (speculative) turn may buffer before it waits: a few sentences of audio.
MAX_HELD_EVENTS = 256
_STAGE_OF_FIELD = {
    "reply_text_delta": "first_token",
    "reply_sentence": "first_sentence",
    "reply_audio": "first_audio",
}


@dataclass
class TurnClock:
    """When each stage of a turn first reached the client, in ms from the end of the user's speech."""

    started: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str) -> None:
        key = f"{stage}_ms"
        if key not in self.marks:
            elapsed = time.monotonic() - self.started
            self.marks[key] = elapsed * 1000
            STAGE_SECONDS.labels(f"gateway.{stage}").observe(elapsed)

    def timings(self) -> gateway_pb2.TurnTimings:
        return gateway_pb2.TurnTimings(**self.marks)


class TurnOutput:
    """Where one turn's events go, held back while the turn is speculative."""

    def __init__(self, send: EmitFields, clock: TurnClock | None = None, *, held: bool = False) -> None:
        self._send = send
        self.clock = clock or TurnClock()
        self._held: list[Fields] | None = [] if held else None
        self._released = asyncio.Event()
        self.closed = False  # interrupted: nothing more reaches the client
        self.reply_text = ""
        self.audio_s = 0.0
        self.first_audio_at: float | None = None

    async def __call__(self, fields: Fields) -> None:
        if self._held is None:
            await self._deliver(fields)
            return
        self._held.append(fields)
        if len(self._held) >= MAX_HELD_EVENTS:
            await self._released.wait()

    async def release(self, clock: TurnClock) -> None:
        """The turn is confirmed: send what it holds, then let it stream."""
        self.clock = clock
        held, self._held = self._held or [], None
        for fields in held:
            await self._deliver(fields)
        self._released.set()

    def playing_until(self) -> float:
        """When the client will have played the audio sent so far (monotonic seconds)."""
        return (self.first_audio_at or 0.0) + self.audio_s

    async def _deliver(self, fields: Fields) -> None:
        if self.closed:
            return
        ((name, value),) = fields.items()
        if stage := _STAGE_OF_FIELD.get(name):
            self.clock.mark(stage)
        if name == "reply_text_delta":
            self.reply_text += str(value)
        elif name == "reply_audio":
            assert isinstance(value, audio_pb2.SynthesizedAudio)
            if self.first_audio_at is None:
                self.first_audio_at = time.monotonic()
            self.audio_s += len(value.audio_content) / 2 / (value.sample_rate_hz or 1)
        elif name == "turn_done":
            assert isinstance(value, gateway_pb2.TurnDone)
            self.clock.mark("done")
            value.timings.CopyFrom(self.clock.timings())
        await self._send(fields)


@dataclass(frozen=True)
class Turn:
    text: str
    session_id: str
    request_id: str
    reply: gateway_pb2.ReplyConfig
    deadline: Deadline


async def run_turn(downstream: Downstream, turn: Turn, emit: EmitFields) -> None:
    with tracer.start_as_current_span("turn", attributes={"voicemesh.request_id": turn.request_id}):
        await _run_turn(downstream, turn, emit)


async def _run_turn(downstream: Downstream, turn: Turn, emit: EmitFields) -> None:
    to_tts: asyncio.Queue[str | None] = asyncio.Queue()
    reply_text = ""

    request = core_pb2.RespondRequest(request_id=turn.request_id, session_id=turn.session_id, text=turn.text)

    async def call_core() -> AsyncIterator[core_pb2.RespondResponse]:
        # Each attempt takes a replica of its own, so a retry goes wherever the breakers allow.
        async with downstream.guard("core", turn.deadline) as core:
            timeout = turn.deadline.timeout_for("core")
            async for response in core.Respond(request, timeout=timeout, metadata=outgoing_metadata()):
                yield response

    async def think() -> None:
        nonlocal reply_text
        try:
            async for response in retrying_stream(call_core, CORE_RETRIES, turn.deadline.at):
                kind = response.WhichOneof("event")
                if kind == "route":
                    await emit({"route": response.route})
                elif kind == "text_delta":
                    if turn.reply.synthesize_audio:
                        await to_tts.put(response.text_delta)
                    await emit({"reply_text_delta": response.text_delta})
                elif kind == "sentence":
                    await emit({"reply_sentence": response.sentence})
                elif kind == "done":
                    reply_text = response.done.text
        finally:
            to_tts.put_nowait(None)

    async def speak() -> None:
        async def requests() -> AsyncIterator[tts_pb2.StreamingSynthesizeRequest]:
            config = tts_pb2.SynthesisConfig(
                voice=turn.reply.voice, sample_rate_hz=turn.reply.sample_rate_hz, request_id=turn.request_id
            )
            yield tts_pb2.StreamingSynthesizeRequest(config=config)
            while (delta := await to_tts.get()) is not None:
                yield tts_pb2.StreamingSynthesizeRequest(text_delta=delta)

        try:
            async with downstream.guard("tts", turn.deadline) as tts:
                timeout = turn.deadline.timeout_for("tts")
                async for response in tts.StreamingSynthesize(
                    requests(), timeout=timeout, metadata=outgoing_metadata()
                ):
                    await emit({"reply_audio": response.audio})
        except RelayedStatus as exc:
            # Speech is lost, not the answer: say so, and let the text reply run to its end.
            log.warning("reply audio failed: %s", exc)
            failed = gateway_pb2.ReplyAudioFailed(code=exc.code.value[0], message=str(exc))
            await emit({"reply_audio_failed": failed})

    async with asyncio.TaskGroup() as group:
        group.create_task(think())
        if turn.reply.synthesize_audio:
            group.create_task(speak())
    done = gateway_pb2.TurnDone(transcript=turn.text, reply_text=reply_text, session_id=turn.session_id)
    await emit({"turn_done": done})

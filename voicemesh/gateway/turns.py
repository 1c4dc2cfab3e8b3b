"""One turn: the user's text to the core, the reply's text deltas on to TTS as they are generated.

Events are emitted as ``{field: value}`` with the field names that ConverseResponse and AskResponse
share, so both RPCs use this one implementation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from voicemesh.gateway.downstream import Downstream, relayed
from voicemesh.v1 import core_pb2, gateway_pb2
from voicemesh.v1 import text_to_speech_pb2 as tts_pb2

Fields = dict[str, object]
EmitFields = Callable[[Fields], Awaitable[None]]


@dataclass
class TurnClock:
    """When each stage of a turn first happened, in ms from the end of the user's speech."""

    started: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str) -> None:
        self.marks.setdefault(f"{stage}_ms", (time.monotonic() - self.started) * 1000)

    def timings(self) -> gateway_pb2.TurnTimings:
        return gateway_pb2.TurnTimings(**self.marks)


@dataclass(frozen=True)
class Turn:
    text: str
    session_id: str
    request_id: str
    reply: gateway_pb2.ReplyConfig
    clock: TurnClock = field(default_factory=TurnClock)


async def run_turn(downstream: Downstream, turn: Turn, emit: EmitFields) -> None:
    to_tts: asyncio.Queue[str | None] = asyncio.Queue()
    reply_text = ""

    async def think() -> None:
        nonlocal reply_text
        request = core_pb2.RespondRequest(
            request_id=turn.request_id, session_id=turn.session_id, text=turn.text
        )
        try:
            async with relayed("core"):
                async for response in downstream.core.Respond(request):
                    kind = response.WhichOneof("event")
                    if kind == "route":
                        await emit({"route": response.route})
                    elif kind == "text_delta":
                        turn.clock.mark("first_token")
                        if turn.reply.synthesize_audio:
                            await to_tts.put(response.text_delta)
                        await emit({"reply_text_delta": response.text_delta})
                    elif kind == "sentence":
                        turn.clock.mark("first_sentence")
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

        async with relayed("tts"):
            async for response in downstream.tts.StreamingSynthesize(requests()):
                turn.clock.mark("first_audio")
                await emit({"reply_audio": response.audio})

    async with asyncio.TaskGroup() as group:
        group.create_task(think())
        if turn.reply.synthesize_audio:
            group.create_task(speak())
    turn.clock.mark("done")
    done = gateway_pb2.TurnDone(
        transcript=turn.text,
        reply_text=reply_text,
        session_id=turn.session_id,
        timings=turn.clock.timings(),
    )
    await emit({"turn_done": done})

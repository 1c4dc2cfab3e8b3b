"""The public API: Converse (audio in) and Ask (text in), both streaming the reply back."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import grpc

from voicemesh.common.audio import MAX_RATE_HZ, MIN_RATE_HZ, check_chunk
from voicemesh.common.errors import InvalidRequest
from voicemesh.common.logs import request_id_var
from voicemesh.common.pump import Emit, pump
from voicemesh.common.streams import split_config
from voicemesh.common.tracing import outgoing_metadata
from voicemesh.gateway.conversation import Conversation
from voicemesh.gateway.deadlines import Budgets
from voicemesh.gateway.throttle import RateLimits, tenant_of
from voicemesh.gateway.turns import Fields, Turn, TurnOutput, TurnRunner
from voicemesh.rpc.convert import audio_format
from voicemesh.rpc.handler import rpc_handler
from voicemesh.rpc.status import RelayedStatus
from voicemesh.storage.sessions import check_id
from voicemesh.v1 import gateway_pb2 as pb
from voicemesh.v1 import gateway_pb2_grpc as pb_grpc
from voicemesh.v1 import speech_to_text_pb2 as stt_pb2

MAX_TEXT_CHARS = 8 * 1024
# A Converse stream whose STT replica fails before it answers starts again on another replica,
# replaying the audio it had taken, if that is at most this much.
STT_ATTEMPTS = 3
MAX_REPLAY_S = 10

log = logging.getLogger(__name__)


def _check_ids(session_id: str, user_id: str) -> None:
    check_id("session_id", session_id)
    check_id("user_id", user_id)


def _check_reply(reply: pb.ReplyConfig) -> None:
    rate = reply.sample_rate_hz
    if rate and not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise InvalidRequest(
            f"reply.sample_rate_hz {rate} is out of range; "
            f"use {MIN_RATE_HZ} to {MAX_RATE_HZ}, or 0 for the voice's rate"
        )


class GatewayServicer(pb_grpc.GatewayServiceServicer):
    def __init__(
        self,
        runner: TurnRunner,
        *,
        preemptive: bool = True,
        budgets: Budgets | None = None,
        limits: RateLimits | None = None,
    ) -> None:
        self._runner = runner
        self._downstream = runner.downstream
        self._preemptive = preemptive
        self._budgets = budgets or Budgets()
        self._limits = limits or RateLimits({"stt": 100, "llm": 20, "tts": 50})

    @rpc_handler
    async def Converse(
        self, request_iterator: AsyncIterator[pb.ConverseRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ConverseResponse]:
        config, audio = await split_config(request_iterator, "audio_content")
        request_id = config.request_id or uuid.uuid4().hex
        request_id_var.set(request_id)
        fmt = audio_format(config.audio_format)  # fail before any downstream call is made
        _check_reply(config.reply)
        _check_ids(config.session_id, config.user_id)
        session_id = config.session_id or uuid.uuid4().hex
        tenant = tenant_of(context.invocation_metadata())
        await self._limits.admit(tenant, "stt")
        reply_kinds = ("llm", "tts") if config.reply.synthesize_audio else ("llm",)

        # Audio is checked here, not inside the STT call's request iterator: gRPC swallows errors
        # raised there, and the caller would never hear why the stream stopped.
        forward: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=32)
        ended = asyncio.Event()  # the client's audio has all gone to the STT

        async def feed() -> None:
            async for chunk in audio:
                check_chunk(chunk, fmt)
                await forward.put(chunk)
            await forward.put(None)

        # Audio an STT replica took but has not answered yet: if that replica turns out to be gone,
        # the stream starts again on another one with this audio first. None once it has answered.
        unanswered: list[bytes] | None = []
        replay_cap = fmt.sample_rate_hz * fmt.channels * 2 * MAX_REPLAY_S

        async def stt_requests(speculative: bool) -> AsyncIterator[stt_pb2.StreamingRecognizeRequest]:
            nonlocal unanswered
            recognition = stt_pb2.RecognitionConfig(
                audio_format=config.audio_format, request_id=request_id, speculative_results=speculative
            )
            if config.HasField("wake_word"):
                recognition.wake_word.CopyFrom(config.wake_word)
            recognition.interim_results = config.interim_results
            recognition.endpointing.CopyFrom(config.endpointing)
            yield stt_pb2.StreamingRecognizeRequest(config=recognition)
            for taken in list(unanswered or []):
                yield stt_pb2.StreamingRecognizeRequest(audio_content=taken)
            while (chunk := await forward.get()) is not None:
                if unanswered is not None:
                    unanswered.append(chunk)
                    if len(unanswered) * len(chunk) > replay_cap:
                        unanswered = None  # too much to hold: this stream is not retried
                yield stt_pb2.StreamingRecognizeRequest(audio_content=chunk)
            ended.set()

        async def converse(emit: Emit[pb.ConverseResponse]) -> None:
            async def send(turn_index: int, fields: Fields) -> None:
                await emit(pb.ConverseResponse(request_id=request_id, turn_index=turn_index, **fields))  # type: ignore[arg-type]

            conversation = Conversation(
                self._runner,
                config,
                request_id,
                session_id,
                send,
                new_session=not config.session_id,
                preemptive=self._preemptive,
                deadline=lambda: self._budgets.for_turn(context),
                admit=lambda: self._limits.admit(tenant, *reply_kinds),
            )

            async def listen() -> None:
                nonlocal unanswered
                timeout = self._budgets.for_stream(context)
                try:
                    for attempt in range(1, STT_ATTEMPTS + 1):
                        try:
                            async with self._downstream.guard("stt") as stt:
                                async for response in stt.StreamingRecognize(
                                    stt_requests(conversation.preemptive),
                                    timeout=timeout,
                                    metadata=outgoing_metadata(),
                                ):
                                    unanswered = None
                                    await hear(response)
                            return
                        except RelayedStatus as exc:
                            retry = exc.code == grpc.StatusCode.UNAVAILABLE and unanswered is not None
                            if not retry or attempt == STT_ATTEMPTS or ended.is_set():
                                raise
                            log.warning("stt replica unavailable before answering (%s); trying another", exc)
                finally:
                    conversation.close()

            async def hear(response: stt_pb2.StreamingRecognizeResponse) -> None:
                kind = response.WhichOneof("event")
                if kind == "result":
                    result = response.result
                    index = result.utterance_index
                    if result.is_final:
                        await send(index, {"transcript": result})
                        await conversation.final(index, result.transcript)
                        return
                    if result.speculative:
                        conversation.speculative(index, result.transcript)
                    else:
                        conversation.partial(index)
                    if config.interim_results:
                        await send(index, {"transcript": result})
                    return
                event = getattr(response, kind)
                if kind == "speech_ended":
                    conversation.speech_ended(event.utterance_index)
                await send(event.utterance_index, {kind: event})
                if kind == "speech_started":
                    await conversation.speech_started(event.utterance_index)

            async with asyncio.TaskGroup() as group:
                group.create_task(feed())
                group.create_task(listen())
                group.create_task(conversation.run())

        async for response in pump(converse):
            yield response

    @rpc_handler
    async def Ask(
        self, request: pb.AskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.AskResponse]:
        request_id = request.request_id or uuid.uuid4().hex
        request_id_var.set(request_id)
        text = request.text.strip()
        if not text:
            raise InvalidRequest("text is empty; send what the user typed")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidRequest(f"text of {len(text)} characters is over the {MAX_TEXT_CHARS} limit")
        _check_reply(request.reply)
        _check_ids(request.session_id, request.user_id)
        kinds = ("llm", "tts") if request.reply.synthesize_audio else ("llm",)
        await self._limits.admit(tenant_of(context.invocation_metadata()), *kinds)
        deadline = self._budgets.for_ask(context)
        session_id = request.session_id or uuid.uuid4().hex
        fresh = not request.session_id
        turn = Turn(text, session_id, request_id, request.reply, deadline, request.user_id, fresh)

        async def ask(emit: Emit[pb.AskResponse]) -> None:
            async def send(fields: Fields) -> None:
                await emit(pb.AskResponse(request_id=request_id, **fields))  # type: ignore[arg-type]

            await self._runner.run(turn, TurnOutput(send))

        async for response in pump(ask):
            yield response

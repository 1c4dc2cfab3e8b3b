"""One Converse stream: the caller's audio to the STT, what the STT hears to the conversation, and
the conversation's events back to the caller.

Audio is checked as it arrives, not inside the STT call's request iterator: gRPC swallows errors
raised there, and the caller would never hear why the stream stopped. A stream whose STT replica
fails before it answers starts again on another replica with all the audio it had sent
(``Upload``); a stream whose replica fails after answering ends UNAVAILABLE, naming the hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import grpc

from voicemesh.common.audio import PcmFormat, check_chunk
from voicemesh.common.calls import responses
from voicemesh.common.errors import TimedOut
from voicemesh.common.identity import user_key
from voicemesh.common.pump import Emit
from voicemesh.common.tracing import outgoing_metadata
from voicemesh.gateway.conversation import Conversation
from voicemesh.gateway.deadlines import Deadline
from voicemesh.gateway.events import ConverseEvent, converse_response
from voicemesh.gateway.turns import Admit, TurnRunner
from voicemesh.gateway.upload import Upload
from voicemesh.gateway.voice import VoiceGate
from voicemesh.rpc.status import RelayedStatus
from voicemesh.v1 import gateway_pb2 as pb
from voicemesh.v1 import speech_to_text_pb2 as stt_pb2

log = logging.getLogger(__name__)

STT_ATTEMPTS = 3
# Audio held for a replay on another STT replica, at most; a stream past it is not retried.
MAX_REPLAY_S = 10


class ConverseStream:
    def __init__(
        self,
        runner: TurnRunner,
        config: pb.ConverseConfig,
        fmt: PcmFormat,
        emit: Emit[pb.ConverseResponse],
        *,
        request_id: str,
        session_id: str,
        preemptive: bool,
        stt_timeout_s: float | None,
        turn_deadline: Callable[[], Deadline],
        admit: Admit,
        tenant: str = "default",
        idle_timeout_s: float = 60.0,
    ) -> None:
        self._downstream = runner.downstream
        self._idle_timeout_s = idle_timeout_s
        self._config = config
        self._fmt = fmt
        self._emit = emit
        self._request_id = request_id
        self._stt_timeout_s = stt_timeout_s
        self._upload = Upload(replay_cap=fmt.sample_rate_hz * fmt.channels * 2 * MAX_REPLAY_S)
        self._voice = VoiceGate(self._downstream, user_key(tenant, config.user_id), session_id)
        self._conversation = Conversation(
            runner,
            config,
            request_id,
            session_id,
            self._send,
            new_session=not config.session_id,
            preemptive=preemptive,
            deadline=turn_deadline,
            admit=admit,
            tenant=tenant,
        )

    async def run(self, audio: AsyncIterator[bytes]) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._feed(audio))
            group.create_task(self._listen())
            group.create_task(self._conversation.run())

    async def _send(self, turn_index: int, event: ConverseEvent) -> None:
        await self._emit(converse_response(self._request_id, turn_index, event))

    async def _feed(self, audio: AsyncIterator[bytes]) -> None:
        while True:
            try:
                # A caller that holds a stream open and sends nothing (a slow-loris, or a client
                # that hung without closing) would keep its slots forever: it is cut off.
                async with asyncio.timeout(self._idle_timeout_s):
                    chunk = await anext(audio)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise TimedOut(
                    f"no audio for {self._idle_timeout_s:g}s: the stream is closed (send audio, even "
                    "silence, while it is open)"
                ) from None
            check_chunk(chunk, self._fmt)
            await self._upload.put(chunk)
        self._upload.finish()

    async def _stt_requests(self) -> AsyncIterator[stt_pb2.StreamingRecognizeRequest]:
        config = self._config
        recognition = stt_pb2.RecognitionConfig(
            audio_format=config.audio_format,
            request_id=self._request_id,
            speculative_results=self._conversation.preemptive,
            interim_results=config.interim_results,
            endpointing=config.endpointing,
        )
        if config.HasField("wake_word"):
            recognition.wake_word.CopyFrom(config.wake_word)
        if config.HasField("vocabulary"):
            recognition.vocabulary.CopyFrom(config.vocabulary)
        check = await self._voice.check()  # one read of the print per stream, while audio buffers
        if check is not None:
            recognition.speaker_check.CopyFrom(check)
        yield stt_pb2.StreamingRecognizeRequest(config=recognition)
        async for chunk in self._upload.reader():
            yield stt_pb2.StreamingRecognizeRequest(audio_content=chunk)

    async def _listen(self) -> None:
        try:
            for attempt in range(1, STT_ATTEMPTS + 1):
                try:
                    async with self._downstream.guard("stt") as stt:
                        call = stt.StreamingRecognize(
                            self._stt_requests(), timeout=self._stt_timeout_s, metadata=outgoing_metadata()
                        )
                        async with contextlib.aclosing(responses(call)) as heard:
                            async for response in heard:
                                self._upload.answered()
                                await self._hear(response)
                    return
                except RelayedStatus as exc:
                    retry = exc.code() == grpc.StatusCode.UNAVAILABLE and self._upload.replayable
                    if not retry or attempt == STT_ATTEMPTS:
                        raise
                    log.warning("stt replica unavailable before answering (%s); trying another", exc)
        finally:
            self._upload.close()
            self._conversation.close()

    async def _hear(self, response: stt_pb2.StreamingRecognizeResponse) -> None:
        conversation = self._conversation
        kind = response.WhichOneof("event")
        if kind == "result":
            result = response.result
            index = result.utterance_index
            if result.is_final:
                await self._send(index, result)
                refused = await self._voice.refusal(result)
                if refused is None:
                    await conversation.final(index, result.transcript)
                else:
                    conversation.refused(index)
                    await self._send(index, refused)
                return
            if result.speculative:
                if self._voice.lets_speculate(result):
                    conversation.speculative(index, result.transcript)
            else:
                conversation.spoke_on(index)
            if self._config.interim_results:
                await self._send(index, result)
        elif kind == "speech_started":
            started = response.speech_started
            await self._send(started.utterance_index, started)
            await conversation.speech_started(started.utterance_index)
        elif kind == "speech_ended":
            ended = response.speech_ended
            conversation.speech_ended(ended.utterance_index)
            await self._send(ended.utterance_index, ended)
        elif kind == "speech_resumed":
            conversation.spoke_on(response.speech_resumed.utterance_index)
        elif kind == "wake_word":
            await self._send(response.wake_word.utterance_index, response.wake_word)

"""SpeechToText over gRPC: proto ⇄ engine, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from voicemesh.common.errors import InvalidRequest
from voicemesh.common.logs import request_id_var
from voicemesh.common.streams import split_config
from voicemesh.rpc.convert import audio_format
from voicemesh.rpc.status import grpc_errors
from voicemesh.services.stt.engine import (
    RecognitionEvent,
    SpeechEnded,
    SpeechRecognizer,
    SpeechStarted,
    WakeOptions,
    WakeWordHeard,
)
from voicemesh.v1 import speech_to_text_pb2 as pb
from voicemesh.v1 import speech_to_text_pb2_grpc as pb_grpc


class SpeechToTextServicer(pb_grpc.SpeechToTextServiceServicer):
    def __init__(self, engine: SpeechRecognizer) -> None:
        self._engine = engine

    @grpc_errors
    async def StreamingRecognize(
        self, request_iterator: AsyncIterator[pb.StreamingRecognizeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamingRecognizeResponse]:
        config, audio = await split_config(request_iterator, "audio_content")
        request_id_var.set(config.request_id or "-")
        fmt = audio_format(config.audio_format)
        wake = wake_options(config.wake_word) if config.HasField("wake_word") else None
        async for event in self._engine.recognize(fmt, audio, config.language_code or None, wake):
            yield self._response(config.request_id, event)

    @staticmethod
    def _response(request_id: str, event: RecognitionEvent) -> pb.StreamingRecognizeResponse:
        if isinstance(event, SpeechStarted):
            started = pb.SpeechStarted(audio_offset_s=event.offset_s, utterance_index=event.index)
            return pb.StreamingRecognizeResponse(request_id=request_id, speech_started=started)
        if isinstance(event, SpeechEnded):
            ended = pb.SpeechEnded(audio_offset_s=event.offset_s, utterance_index=event.index)
            return pb.StreamingRecognizeResponse(request_id=request_id, speech_ended=ended)
        if isinstance(event, WakeWordHeard):
            heard = pb.WakeWordDetected(
                model=event.model,
                score=event.score,
                audio_offset_s=event.offset_s,
                utterance_index=event.index,
            )
            return pb.StreamingRecognizeResponse(request_id=request_id, wake_word=heard)
        transcript = event.transcript
        result = pb.RecognitionResult(
            transcript=transcript.text,
            is_final=True,
            stability=1.0,
            confidence=transcript.confidence,
            words=[
                pb.WordInfo(word=w.text, start_s=w.start_s, end_s=w.end_s, confidence=w.confidence)
                for w in transcript.words
            ],
            utterance_index=event.index,
            audio_start_s=event.start_s,
            audio_end_s=event.end_s,
        )
        return pb.StreamingRecognizeResponse(request_id=request_id, result=result)


def wake_options(config: pb.WakeWordConfig) -> WakeOptions:
    if config.threshold and not 0 < config.threshold < 1:
        raise InvalidRequest(
            f"wake_word.threshold {config.threshold} is out of range; "
            "use 0 < threshold < 1, or 0 for the default"
        )
    return WakeOptions(tuple(config.models), config.threshold)

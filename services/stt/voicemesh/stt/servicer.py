"""SpeechToText over gRPC: proto ⇄ engine, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

from voicemesh.common.errors import InvalidRequest
from voicemesh.common.logs import request_id_var
from voicemesh.common.streams import split_config
from voicemesh.rpc.convert import audio_format
from voicemesh.rpc.handler import Context, rpc_handler
from voicemesh.stt.engine import SpeechRecognizer
from voicemesh.stt.events import (
    PartialTranscript,
    RecognitionEvent,
    SpeculativeTranscript,
    SpeechEnded,
    SpeechStarted,
    StreamOptions,
    WakeOptions,
    WakeWordHeard,
)
from voicemesh.v1 import speech_to_text_pb2 as pb
from voicemesh.v1 import speech_to_text_pb2_grpc as pb_grpc


class SpeechToTextServicer(pb_grpc.SpeechToTextServiceServicer):
    def __init__(self, engine: SpeechRecognizer) -> None:
        self._engine = engine

    @rpc_handler
    async def StreamingRecognize(
        self, request_iterator: AsyncIterator[pb.StreamingRecognizeRequest], context: Context
    ) -> AsyncIterator[pb.StreamingRecognizeResponse]:
        config, audio = await split_config(request_iterator, "audio_content")
        request_id_var.set(config.request_id or "-")
        fmt = audio_format(config.audio_format)
        async for event in self._engine.recognize(fmt, audio, stream_options(config)):
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
        if isinstance(event, PartialTranscript):
            partial = pb.RecognitionResult(
                transcript=" ".join(event.words),
                committed_transcript=" ".join(event.committed),
                is_final=False,
                stability=len(event.committed) / len(event.words) if event.words else 0.0,
                utterance_index=event.index,
                audio_start_s=event.start_s,
                audio_end_s=event.end_s,
            )
            return pb.StreamingRecognizeResponse(request_id=request_id, result=partial)
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
        if isinstance(event, SpeculativeTranscript):
            result.is_final, result.speculative = False, True
            result.committed_transcript = " ".join(event.committed)
            result.stability = len(event.committed) / len(transcript.words) if transcript.words else 0.0
        return pb.StreamingRecognizeResponse(request_id=request_id, result=result)


def stream_options(config: pb.RecognitionConfig) -> StreamOptions:
    """A stream's options, each checked before any audio is read."""
    endpointing = config.endpointing
    silence, longest = endpointing.min_silence_ms, endpointing.max_utterance_s
    speech = endpointing.min_speech_ms
    if silence and not 100 <= silence <= 5000:
        raise InvalidRequest(
            f"endpointing.min_silence_ms {silence} is out of range; use 100 to 5000, or 0 for the default"
        )
    if speech and not 32 <= speech <= 2000:
        raise InvalidRequest(
            f"endpointing.min_speech_ms {speech} is out of range; use 32 to 2000, or 0 for the default"
        )
    if longest and not 1 <= longest <= 60:
        raise InvalidRequest(
            f"endpointing.max_utterance_s {longest:g} is out of range; use 1 to 60, or 0 for the default"
        )
    return StreamOptions(
        language=config.language_code or None,
        wake=wake_options(config.wake_word) if config.HasField("wake_word") else None,
        interim_results=config.interim_results,
        speculative_results=config.speculative_results,
        min_silence_ms=silence,
        min_speech_ms=speech,
        max_utterance_s=longest,
    )


def wake_options(config: pb.WakeWordConfig) -> WakeOptions:
    if config.threshold and not 0 < config.threshold < 1:
        raise InvalidRequest(
            f"wake_word.threshold {config.threshold} is out of range; "
            "use 0 < threshold < 1, or 0 for the default"
        )
    return WakeOptions(tuple(config.models), config.threshold)

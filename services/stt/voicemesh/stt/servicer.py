"""SpeechToText over gRPC: proto ⇄ engine, nothing else."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import replace

import numpy as np

from voicemesh.common.errors import FailedPrecondition, InvalidRequest
from voicemesh.common.logs import request_id_var
from voicemesh.common.streams import split_config
from voicemesh.rpc.convert import audio_format
from voicemesh.rpc.handler import Context, rpc_handler
from voicemesh.stt.endpointing import Mode
from voicemesh.stt.engine import SpeechRecognizer
from voicemesh.stt.events import (
    PartialTranscript,
    RecognitionEvent,
    SpeakerOptions,
    SpeculativeTranscript,
    SpeechEnded,
    SpeechResumed,
    SpeechStarted,
    StreamOptions,
    WakeOptions,
    WakeWordHeard,
)
from voicemesh.stt.speaker import SpeakerEncoder, SpeakerScore, Verdict, model_name
from voicemesh.v1 import speech_to_text_pb2 as pb
from voicemesh.v1 import speech_to_text_pb2_grpc as pb_grpc

MAX_VOICE_SAMPLE_S = 30
MAX_PHRASES, MAX_PHRASE_CHARS, MAX_VOCABULARY_CHARS = 50, 50, 500
_MODES = {
    pb.ENDPOINTING_MODE_UNSPECIFIED: None,
    pb.ENDPOINTING_MODE_FIXED: Mode.FIXED,
    pb.ENDPOINTING_MODE_SEMANTIC: Mode.SEMANTIC,
}
_VERDICTS = {
    Verdict.MATCH: pb.SPEAKER_VERDICT_MATCH,
    Verdict.NO_MATCH: pb.SPEAKER_VERDICT_NO_MATCH,
    Verdict.TOO_SHORT: pb.SPEAKER_VERDICT_TOO_SHORT,
}


def speaker_verification(score: SpeakerScore) -> pb.SpeakerVerification:
    return pb.SpeakerVerification(
        verdict=_VERDICTS[score.verdict],
        score=score.score,
        threshold=score.threshold,
        speech_s=score.speech_s,
    )


class SpeechToTextServicer(pb_grpc.SpeechToTextServiceServicer):
    def __init__(self, engine: SpeechRecognizer, *, speaker_threshold: float = 0.85) -> None:
        self._engine = engine
        self._speaker_threshold = speaker_threshold

    @rpc_handler
    async def StreamingRecognize(
        self, request_iterator: AsyncIterator[pb.StreamingRecognizeRequest], context: Context
    ) -> AsyncIterator[pb.StreamingRecognizeResponse]:
        config, audio = await split_config(request_iterator, "audio_content")
        request_id_var.set(config.request_id or "-")
        fmt = audio_format(config.audio_format)
        options = stream_options(config)
        if config.HasField("speaker_check"):
            options = replace(options, speaker=self._speaker_options(config.speaker_check))
        async for event in self._engine.recognize(fmt, audio, options):
            yield self._response(config.request_id, event)

    @rpc_handler
    async def EmbedVoice(self, request: pb.EmbedVoiceRequest, context: Context) -> pb.EmbedVoiceResponse:
        fmt = audio_format(request.audio_format)
        longest = MAX_VOICE_SAMPLE_S * fmt.sample_rate_hz * fmt.channels * 2
        if len(request.audio) > longest:
            raise InvalidRequest(f"audio is over {MAX_VOICE_SAMPLE_S} s; send a shorter recording")
        if len(request.audio) % (2 * fmt.channels):
            raise InvalidRequest("audio is not whole 16-bit samples of the configured channels")
        embedding, speech_s = await self._engine.embed_voice(fmt, request.audio)
        return pb.EmbedVoiceResponse(embedding=embedding.tolist(), speech_s=speech_s, model=model_name())

    def _speaker_options(self, check: pb.SpeakerCheck) -> SpeakerOptions:
        encoder = self._engine.speaker
        if encoder is None:
            raise FailedPrecondition("this STT service has no speaker model loaded (speaker_model is off)")
        return speaker_options(check, encoder, self._speaker_threshold)

    @staticmethod
    def _response(request_id: str, event: RecognitionEvent) -> pb.StreamingRecognizeResponse:
        if isinstance(event, SpeechStarted):
            started = pb.SpeechStarted(audio_offset_s=event.offset_s, utterance_index=event.index)
            return pb.StreamingRecognizeResponse(request_id=request_id, speech_started=started)
        if isinstance(event, SpeechEnded):
            ended = pb.SpeechEnded(audio_offset_s=event.offset_s, utterance_index=event.index)
            return pb.StreamingRecognizeResponse(request_id=request_id, speech_ended=ended)
        if isinstance(event, SpeechResumed):
            resumed = pb.SpeechResumed(audio_offset_s=event.offset_s, utterance_index=event.index)
            return pb.StreamingRecognizeResponse(request_id=request_id, speech_resumed=resumed)
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
        if event.speaker is not None:
            result.speaker.CopyFrom(speaker_verification(event.speaker))
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
    if endpointing.mode not in _MODES:
        raise InvalidRequest(f"endpointing.mode {endpointing.mode} is not one of FIXED or SEMANTIC")
    threshold, wait = endpointing.turn_threshold, endpointing.max_wait_ms
    if threshold and not 0 < threshold < 1:
        raise InvalidRequest(
            f"endpointing.turn_threshold {threshold:g} is out of range; "
            "use 0 < threshold < 1, or 0 for the default"
        )
    if wait and not 300 <= wait <= 10_000:
        raise InvalidRequest(
            f"endpointing.max_wait_ms {wait} is out of range; use 300 to 10000, or 0 for the default"
        )
    return StreamOptions(
        language=config.language_code or None,
        wake=wake_options(config.wake_word) if config.HasField("wake_word") else None,
        interim_results=config.interim_results,
        speculative_results=config.speculative_results,
        min_silence_ms=silence,
        min_speech_ms=speech,
        max_utterance_s=longest,
        mode=_MODES[endpointing.mode],
        turn_threshold=threshold,
        max_wait_ms=wait,
        vocabulary=vocabulary(config.vocabulary),
    )


def vocabulary(config: pb.Vocabulary) -> tuple[str, ...]:
    phrases = tuple(" ".join(phrase.split()) for phrase in config.phrases)
    if len(phrases) > MAX_PHRASES:
        raise InvalidRequest(f"vocabulary has {len(phrases)} phrases; send at most {MAX_PHRASES}")
    for phrase in phrases:
        if not phrase:
            raise InvalidRequest("vocabulary.phrases holds an empty phrase")
        if len(phrase) > MAX_PHRASE_CHARS or not phrase.isprintable():
            raise InvalidRequest(
                f"vocabulary phrase {phrase[:MAX_PHRASE_CHARS]!r}… is not a phrase of at most "
                f"{MAX_PHRASE_CHARS} printable characters"
            )
    if sum(map(len, phrases)) > MAX_VOCABULARY_CHARS:
        raise InvalidRequest(
            f"vocabulary is over {MAX_VOCABULARY_CHARS} characters in all; send fewer phrases"
        )
    return phrases


def wake_options(config: pb.WakeWordConfig) -> WakeOptions:
    if config.threshold and not 0 < config.threshold < 1:
        raise InvalidRequest(
            f"wake_word.threshold {config.threshold} is out of range; "
            "use 0 < threshold < 1, or 0 for the default"
        )
    return WakeOptions(tuple(config.models), config.threshold)


def speaker_options(
    check: pb.SpeakerCheck, encoder: SpeakerEncoder, default_threshold: float
) -> SpeakerOptions:
    if check.model and check.model != model_name():
        raise InvalidRequest(
            f"speaker_check.model {check.model[:64]!r} is not this service's {model_name()!r}; "
            "enroll the voice again"
        )
    voice_print = np.asarray(check.voice_print, dtype=np.float32)
    if voice_print.size != encoder.dimensions:
        raise InvalidRequest(
            f"speaker_check.voice_print has {voice_print.size} values; "
            f"this model's prints have {encoder.dimensions}"
        )
    norm = float(np.linalg.norm(voice_print))
    if not math.isfinite(norm) or norm == 0:
        raise InvalidRequest("speaker_check.voice_print is not a voice print (zero or not finite)")
    threshold = check.threshold
    if threshold and not 0 < threshold < 1:
        raise InvalidRequest(
            f"speaker_check.threshold {threshold} is out of range; "
            "use 0 < threshold < 1, or 0 for the default"
        )
    return SpeakerOptions(voice_print / norm, threshold or default_threshold)

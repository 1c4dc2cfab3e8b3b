"""The speech-to-text process: its settings become the models, the engine and the server."""

from __future__ import annotations

from voicemesh.common.components import STT
from voicemesh.listening.segmenter import SegmenterConfig
from voicemesh.listening.turn import TurnModel
from voicemesh.listening.vad import SileroVad
from voicemesh.listening.wakeword import WakeWordModels
from voicemesh.rpc.host import ServiceHost, serve_until_signalled, service_host
from voicemesh.rpc.process import run_process
from voicemesh.stt.config import SttSettings
from voicemesh.stt.endpointing import Mode
from voicemesh.stt.engine import SpeechRecognizer, TurnEnding
from voicemesh.stt.recognizer import WhisperRecognizer
from voicemesh.stt.servicer import SpeechToTextServicer
from voicemesh.stt.speaker import SpeakerEncoder
from voicemesh.v1 import speech_to_text_pb2_grpc


def build_engine(settings: SttSettings) -> SpeechRecognizer:
    recognizer = WhisperRecognizer(
        settings.model or None,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
        min_window_s=settings.min_window_s,
        workers=settings.workers,
        beam_size=settings.beam_size,
        language=settings.language or None,
    )
    segmenter = SegmenterConfig(
        threshold=settings.vad_threshold,
        min_silence_ms=settings.min_silence_ms,
        min_speech_ms=settings.min_speech_ms,
        speech_pad_ms=settings.speech_pad_ms,
        max_utterance_s=settings.max_utterance_s,
    )
    return SpeechRecognizer(
        recognizer,
        SileroVad(),
        workers=settings.workers,
        segmenter=segmenter,
        wake_words=WakeWordModels(settings.wake_words) if settings.wake_words else None,
        wake_threshold=settings.wake_threshold,
        wake_patience=settings.wake_patience,
        partial_interval_ms=settings.partial_interval_ms,
        speculate_after_ms=settings.speculate_after_ms,
        speaker=SpeakerEncoder() if settings.speaker_model else None,
        turn_model=TurnModel() if settings.turn_model else None,
        turn_ending=TurnEnding(Mode(settings.endpointing), settings.turn_threshold, settings.max_wait_ms),
    )


def build_host(settings: SttSettings, engine: SpeechRecognizer) -> ServiceHost:
    return service_host(
        (
            speech_to_text_pb2_grpc.add_SpeechToTextServiceServicer_to_server,
            SpeechToTextServicer(engine, speaker_threshold=settings.speaker_threshold),
            STT.services[0],
        ),
        settings=settings,
    )


async def serve(settings: SttSettings) -> None:
    engine = build_engine(settings)
    try:
        await serve_until_signalled(build_host(settings, engine), settings)
    finally:
        engine.close()


def main() -> None:
    run_process(SttSettings, serve)

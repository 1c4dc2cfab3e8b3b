"""The text-to-speech process: its settings become the voices, the engine and the server."""

from __future__ import annotations

from pathlib import Path

from voicemesh.common.components import TTS
from voicemesh.rpc.host import ServiceHost, serve_until_signalled, service_host
from voicemesh.rpc.process import run_process
from voicemesh.tts.config import TtsSettings
from voicemesh.tts.engine import Synthesizer, bundled_voice
from voicemesh.tts.servicer import TextToSpeechServicer
from voicemesh.v1 import text_to_speech_pb2_grpc


def build_engine(settings: TtsSettings) -> Synthesizer:
    name, path = bundled_voice()
    voices = {name: path, **{voice: Path(p) for voice, p in settings.voices.items()}}
    return Synthesizer(
        voices,
        settings.default_voice or name,
        workers=settings.workers,
        first_clause_words=settings.first_clause_words,
    )


def build_host(settings: TtsSettings, engine: Synthesizer) -> ServiceHost:
    return service_host(
        (
            text_to_speech_pb2_grpc.add_TextToSpeechServiceServicer_to_server,
            TextToSpeechServicer(engine),
            TTS.services[0],
        ),
        settings=settings,
    )


async def serve(settings: TtsSettings) -> None:
    engine = build_engine(settings)
    try:
        await serve_until_signalled(build_host(settings, engine), settings)
    finally:
        engine.close()


def main() -> None:
    run_process(TtsSettings, serve)

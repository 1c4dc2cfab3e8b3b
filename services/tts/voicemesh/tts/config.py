"""Settings of the TTS process (env prefix VOICEMESH_TTS_, file table [tts])."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voicemesh.common.components import TTS
from voicemesh.common.config import ServiceSettings


class TtsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=TTS.env_prefix, extra="forbid")
    section = TTS.name

    port: int = TTS.port
    metrics_port: int = TTS.metrics_port
    voices: dict[str, str] = Field(
        default_factory=dict,
        description='Extra piper voices, name → .onnx path (JSON in the env: {"amy": "/models/amy.onnx"}).',
    )
    default_voice: str = Field("", description="Voice used when a request names none; empty means joe.")
    first_clause_words: int = Field(
        4,
        ge=0,
        description="Speak a reply's first clause (up to a comma) on its own once it has this many words, "
        "so audio starts sooner; 0 waits for the whole first sentence.",
    )

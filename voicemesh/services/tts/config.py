"""Settings of the TTS process (env prefix VOICEMESH_TTS_, file table [tts])."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voicemesh.common.config import ServiceSettings


class TtsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOICEMESH_TTS_", extra="forbid")
    section = "tts"

    port: int = 50053
    voices: dict[str, str] = Field(
        default_factory=dict,
        description='Extra piper voices, name → .onnx path (JSON in the env: {"amy": "/models/amy.onnx"}).',
    )
    default_voice: str = Field("", description="Voice used when a request names none; empty means joe.")

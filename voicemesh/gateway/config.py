"""Settings of the gateway process (env prefix VOICEMESH_GATEWAY_, file table [gateway])."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voicemesh.common.config import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOICEMESH_GATEWAY_", extra="forbid")
    section = "gateway"

    port: int = 50051
    metrics_port: int = 9451
    stt_target: str = Field("127.0.0.1:50052", description="gRPC target of the STT service.")
    core_target: str = Field("127.0.0.1:50054", description="gRPC target of the core service.")
    tts_target: str = Field("127.0.0.1:50053", description="gRPC target of the TTS service.")
    preemptive_generation: bool = Field(
        True,
        description="Start the reply on the transcript decoded in the user's pause, before the endpoint; "
        "keep it only if the final transcript matches.",
    )
    breaker_fail_max: int = Field(
        5, ge=1, le=1000, description="Failures in a row that open a downstream's circuit breaker."
    )
    breaker_reset_timeout_s: float = Field(
        10.0, gt=0, description="Seconds an open breaker waits before letting one call through."
    )
    ask_deadline_s: float = Field(60.0, gt=0, description="Deadline of an Ask whose caller set none.")
    turn_deadline_s: float = Field(
        60.0, gt=0, description="Deadline of each Converse turn when the caller set none for the stream."
    )
    deadline_margin_ms: int = Field(
        50, ge=0, le=5000, description="Time kept back from each hop to tell the caller which one ran out."
    )

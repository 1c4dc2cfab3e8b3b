"""Settings of the gateway process (env prefix VOICEMESH_GATEWAY_, file table [gateway])."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voicemesh.common.components import CORE, GATEWAY, RAG, STT, TTS
from voicemesh.common.config import ServiceSettings, data_dir


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=GATEWAY.env_prefix, extra="forbid")
    section = GATEWAY.name

    port: int = GATEWAY.port
    metrics_port: int = GATEWAY.metrics_port
    require_client_cert: bool = Field(
        False, description="With tls_dir: ask public callers for a client certificate too (they show tokens)."
    )
    backend_tls_dir: str = Field(
        "",
        description="Folder (tls.crt, tls.key, ca.crt) whose certificate the gateway shows the backends "
        "(mTLS); empty: its own tls_dir; both empty: plaintext to the backends.",
    )
    jwks_file: str = Field("", description="JWKS (JSON) of the keys that sign callers' JWTs.")
    api_keys_file: str = Field(
        "", description="JSON file of API keys (their SHA-256 only), tenants, users and scopes."
    )
    auth_issuer: str = Field("voicemesh-local", description="The 'iss' a JWT must carry.")
    auth_audience: str = Field("voicemesh", description="The 'aud' a JWT must carry.")
    auth_leeway_s: float = Field(30.0, ge=0, le=600, description="Clock skew allowed on exp/nbf/iat.")
    stt_target: str = Field(f"127.0.0.1:{STT.port}", description="gRPC target of the STT service.")
    core_target: str = Field(f"127.0.0.1:{CORE.port}", description="gRPC target of the core service.")
    tts_target: str = Field(f"127.0.0.1:{TTS.port}", description="gRPC target of the TTS service.")
    rag_target: str = Field(f"127.0.0.1:{RAG.port}", description="gRPC target of the RAG service.")
    retrieval_timeout_ms: int = Field(
        400,
        ge=1,
        le=60_000,
        description="Longest a turn waits for the user's documents to be searched; past it the reply is "
        "made without them (grounding_failed).",
    )
    retrieval_top_k: int = Field(3, ge=1, le=10, description="Passages given to the model, at most.")
    retrieval_min_score: float = Field(
        0.35,
        ge=-1,
        le=1,
        description="Passages whose dense similarity to the question is below this are not given to the "
        "model (measured in bench/retrieval.py: unrelated passages score below it).",
    )
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
    stream_idle_timeout_s: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="A Converse stream that sends no audio for this long is closed (DEADLINE_EXCEEDED), so "
        "no caller holds slots by sending nothing.",
    )
    deadline_margin_ms: int = Field(
        50, ge=0, le=5000, description="Time kept back from each hop to tell the caller which one ran out."
    )
    limit_stt_per_min: int = Field(100, ge=1, description="Converse streams per tenant per minute.")
    limit_llm_per_min: int = Field(20, ge=1, description="Replies per tenant per minute.")
    limit_tts_per_min: int = Field(50, ge=1, description="Spoken replies per tenant per minute.")
    limit_max_wait_s: float = Field(
        0.0, ge=0, description="How long a request over its rate limit may wait for room before refusal."
    )
    max_stt_streams: int = Field(200, ge=1, description="STT streams in flight at once.")
    max_streams_per_caller: int = Field(
        64, ge=1, description="Converse streams one caller (tenant) may have open at once."
    )
    max_turns_per_caller: int = Field(
        32, ge=1, description="Turns (Ask calls and Converse replies) one caller may have in flight at once."
    )
    max_core_calls: int = Field(16, ge=1, description="Core calls in flight at once.")
    max_tts_calls: int = Field(16, ge=1, description="TTS calls in flight at once.")
    max_rag_calls: int = Field(16, ge=1, description="Searches of the RAG service in flight at once.")
    max_queued_calls: int = Field(32, ge=0, description="Calls that may wait for a slot, per service.")
    max_queue_wait_s: float = Field(2.0, ge=0, description="Longest wait for a slot before refusal.")
    reply_cache_entries: int = Field(
        1000, ge=0, description="Replies kept for questions asked again word for word; 0 turns the cache off."
    )
    reply_cache_mib: int = Field(64, ge=1, description="Most memory the reply cache may take, in MiB.")
    reply_cache_ttl_s: float = Field(600.0, gt=0, description="Seconds a cached reply may be given again.")
    flush_s: float = Field(
        2.0,
        ge=0,
        description="At shutdown, after the grace period, how long queued turn records get to reach the core "
        "before what is left is spilled to a file (spill_dir) for the next start.",
    )
    spill_dir: str = Field(
        "",
        description="Where turn records the core could not take before shutdown are kept for the next start; "
        "empty means $XDG_DATA_HOME/voicemesh/spill (~/.local/share/voicemesh/spill).",
    )
    record_wait_s: float = Field(
        0.25,
        ge=0,
        description="How long a turn waits for the core to take its record before turn_done is sent; a "
        "record not taken by then stays queued and is retried.",
    )

    def shutdown_s(self) -> float:
        return super().shutdown_s() + self.flush_s

    def mesh_tls_dir(self) -> str:
        return self.backend_tls_dir or self.tls_dir

    def spill_path(self) -> Path:
        return Path(self.spill_dir) if self.spill_dir else data_dir() / "spill"

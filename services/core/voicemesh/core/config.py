"""Settings of the core process (env prefix VOICEMESH_CORE_, file table [core])."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from voicemesh.common.components import CORE
from voicemesh.common.config import ServiceSettings, data_dir

DEFAULT_SYSTEM_PROMPT = (
    "You are voicemesh, a helpful voice assistant. Your answers are spoken aloud, so reply in one to "
    "three short, plain sentences, without lists, markdown or emoji."
)


class CoreSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=CORE.env_prefix, extra="forbid")
    section = CORE.name

    port: int = CORE.port
    metrics_port: int = CORE.metrics_port
    # Beside STT and TTS on one host, the LLM yields the CPU to them: past its first sentence its
    # speed is not what the user waits for, while the first sentence's synthesis is.
    nice: int = Field(10, ge=0, le=19, description="Lower the process's CPU priority by this much.")
    llm_path: str = Field(
        "", description="GGUF file for the local tier; empty means the bundled SmolLM2-135M."
    )
    llm_context: int = Field(2048, ge=256, description="Context window of the local model, in tokens.")
    llm_threads: int = Field(
        0,
        ge=0,
        description="llama.cpp threads; 0: as many as the other processes leave cores idle, re-read "
        "every quarter second (at most one per core). Threads beside a busy core stall each other.",
    )
    llm_slots: int = Field(
        16, ge=1, le=256, description="Turns the local model decodes at once, in one batch; more wait."
    )
    llm_cache_tokens: int = Field(
        8192,
        ge=256,
        description="KV cache of the local model, in tokens, shared by every slot (at least llm_context, "
        "at most the model's training context): what turns in flight hold, and the prompts kept for "
        "the next turn that starts the same.",
    )
    llm_batch_tokens: int = Field(
        256, ge=16, description="Tokens one decode step takes: a token of each generating turn, then prefill."
    )
    llm_cache_reuse_tokens: int = Field(
        16,
        ge=0,
        description="Shortest run of a slot's kept tokens moved into place for a new prompt instead of "
        "computed again, once the oldest exchange has slid out of the context (llama.cpp server's "
        "--cache-reuse); 0 reuses only the common start.",
    )
    llm_queue_max: int = Field(64, ge=0, description="Turns that may wait for a slot; more are refused.")
    llm_queue_wait_s: float = Field(
        3.0,
        gt=0,
        description="Longest a turn waits for a slot (less if its caller's deadline is nearer); a turn "
        "that would wait longer is refused at once with RESOURCE_EXHAUSTED and a time to retry.",
    )
    openai_base_url: str = Field(
        "", description="An OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama …); set, it answers."
    )
    openai_model: str = Field("default", description="Model name to ask the endpoint for.")
    openai_api_key: str = Field("", description="API key for the endpoint, if it wants one.")
    openai_timeout_s: float = Field(60.0, gt=0, description="Timeout of one request to the endpoint.")
    local_fallback: bool = Field(
        True, description="With a remote endpoint, answer with the local model when it is down or throttled."
    )
    remote_fail_max: int = Field(3, ge=1, description="Remote failures in a row that open its breaker.")
    remote_reset_timeout_s: float = Field(
        30.0, gt=0, description="Seconds the remote breaker stays open before one request tries it again."
    )
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="Instructions given to the model.")
    max_tokens: int = Field(
        160,
        ge=1,
        le=4096,
        description="Default reply length limit, in tokens; past it the reply ends at the next sentence end.",
    )
    local_reply_sentences: int = Field(
        2, ge=0, le=50, description="Sentences a local model's reply stops after (0: no limit)."
    )
    remote_reply_sentences: int = Field(
        2, ge=0, le=50, description="Sentences a remote model's reply stops after (0: no limit)."
    )
    temperature: float = Field(0.3, ge=0, le=2, description="Sampling temperature.")
    grounded_temperature: float = Field(
        0.0,
        ge=0,
        le=2,
        description="Sampling temperature of a reply given passages of the user's documents: 0 decodes "
        "greedily, so the small model copies their facts instead of varying them.",
    )
    grounding_words: int = Field(
        60,
        ge=0,
        description="Most words of the user's passages put in the prompt (the sentences nearest the "
        "question): each is prefill before the first token. 0: whole passages (for a fast remote model).",
    )
    session_url: str = Field(
        "memory://",
        description="Session store: redis://host:port/db (sessions shared by every core replica), or "
        "memory:// (this process only).",
    )
    history_url: str = Field(
        "",
        description="Profile and history store: postgresql://user@host/db, or sqlite:///path; empty means "
        "SQLite in $XDG_DATA_HOME/voicemesh (~/.local/share/voicemesh).",
    )
    context_exchanges: int = Field(
        3, ge=0, le=8, description="Earlier exchanges of the session given to the model with each turn."
    )
    flush_s: float = Field(
        2.0,
        ge=0,
        description="At shutdown, after the grace period, how long queued history writes get to reach the "
        "store before what is left is spilled to a file (spill_dir) for the next start.",
    )
    spill_dir: str = Field(
        "",
        description="Where history writes the store could not take before shutdown are kept for the next "
        "start; empty means $XDG_DATA_HOME/voicemesh/spill.",
    )
    history_queue_max: int = Field(
        10_000, ge=1, description="Turns kept in memory for the history store while it is unreachable."
    )

    @model_validator(mode="after")
    def _cache_holds_a_turn(self) -> CoreSettings:
        if self.llm_cache_tokens < self.llm_context:
            raise ValueError(
                f"llm_cache_tokens ({self.llm_cache_tokens}) must be at least "
                f"llm_context ({self.llm_context}): one turn may use all of its context"
            )
        return self

    @field_validator("session_url")
    @classmethod
    def _session_scheme(cls, url: str) -> str:
        if not url.startswith(("redis://", "rediss://", "unix://", "memory://")):
            raise ValueError("use redis://host:port/db or memory://")
        return url

    @field_validator("history_url")
    @classmethod
    def _history_scheme(cls, url: str) -> str:
        if url and not url.startswith(("postgresql://", "postgres://", "sqlite:///")):
            raise ValueError("use postgresql://user@host:port/db or sqlite:///path/to/file.db")
        return url

    def history_store_url(self) -> str:
        return self.history_url or f"sqlite:///{data_dir() / 'history.db'}"

    def shutdown_s(self) -> float:
        return super().shutdown_s() + self.flush_s

    def spill_path(self) -> Path:
        return Path(self.spill_dir) if self.spill_dir else data_dir() / "spill"

"""One settings object per process: environment first, then a TOML file, then defaults.

Each service subclasses ``ServiceSettings`` with its own env prefix (``VOICEMESH_STT_`` …). The file
named by ``VOICEMESH_CONFIG`` may hold a table per service (``[stt]``, ``[tts]``, ``[core]``,
``[gateway]``); environment variables override it.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource

from voicemesh.common.errors import InvalidRequest

S = TypeVar("S", bound="Settings")


class ConfigError(InvalidRequest):
    """A setting is invalid; the message names it."""


class Settings(BaseSettings):
    """Environment over the file's ``[section]`` table over defaults."""

    section: ClassVar[str] = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, InitSettingsSource(settings_cls, _file_section(cls.section)))

    @classmethod
    def load(cls: type[S], **overrides: Any) -> S:
        """Build the settings, turning pydantic's report into one error that names each bad setting."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            prefix = cls.model_config.get("env_prefix", "")
            problems = "; ".join(
                f"{prefix}{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"invalid configuration: {problems}") from None


class ServiceSettings(Settings):
    """Settings every voicemesh server has."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(0, ge=0, le=65535, description="Port to listen on; 0 picks a free one.")
    metrics_port: int = Field(
        0,
        ge=-1,
        le=65535,
        description="Port of the Prometheus /metrics endpoint; 0 picks one, -1 turns it off.",
    )
    nice: int = Field(
        0,
        ge=0,
        le=19,
        description="Lower the process's CPU priority by this much (os.nice) when it shares a host.",
    )
    workers: int = Field(2, ge=1, le=64, description="Concurrent model calls (the blocking pool's size).")
    grace_s: float = Field(5.0, ge=0, description="Seconds to finish in-flight calls on shutdown.")
    drain_delay_s: float = Field(
        1.0,
        ge=0,
        description="On SIGTERM, seconds reported NOT_SERVING (still serving) before new calls are refused.",
    )
    max_connection_age_s: float = Field(
        0.0,
        ge=0,
        description="Close client connections after this long (0: never), so clients behind DNS round robin "
        "resolve again and find new replicas.",
    )
    log_format: str = Field("text", pattern="^(text|json)$", description="'text' or 'json' logs.")
    tls_dir: str = Field(
        "",
        description="Folder with tls.crt, tls.key and ca.crt (cert-manager's Secret layout; `voicemesh certs "
        "init` writes one per component): serve TLS. Empty: plaintext.",
    )
    require_client_cert: bool = Field(
        True,
        description="With tls_dir: accept only clients with a certificate from ca.crt (mTLS), so only the "
        "mesh's own components reach this service.",
    )
    health_port: int = Field(
        -1,
        ge=-1,
        le=65535,
        description="Also serve the health service alone, in plaintext, on this port (for probes that "
        "speak no TLS); -1: not at all.",
    )
    reflection: bool = Field(True, description="Serve gRPC reflection (grpcurl without .proto files).")

    def shutdown_s(self) -> float:
        """The longest a SIGTERM takes: NOT_SERVING for the drain delay, then the calls in flight get
        their grace (a process with queued writes then flushes them). What stops the process,
        the launcher or the pod's terminationGracePeriodSeconds, must give it more than this."""
        return self.drain_delay_s + self.grace_s

    log_level: str = Field("INFO", description="Python logging level.")


def data_dir() -> Path:
    """Where voicemesh keeps its files: $XDG_DATA_HOME/voicemesh (~/.local/share/voicemesh)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "voicemesh"


def _file_section(section: str) -> dict[str, Any]:
    path = os.environ.get("VOICEMESH_CONFIG")
    if not path or not section:
        return {}
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"VOICEMESH_CONFIG={path}: {exc}") from None
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"VOICEMESH_CONFIG={path}: [{section}] must be a table")
    return table

"""Where a caller's credential and the mesh's trust anchor come from, and the channel they make.

``voicemesh up`` writes ``credentials.toml`` into the config folder ($XDG_CONFIG_HOME/voicemesh,
~/.config/voicemesh), mode 0600: the local admin key and the CA that signed the gateway's
certificate. Every client (the CLI, the SDK, the tests and benches) finds them there unless told
otherwise: an explicit token or CA first, then $VOICEMESH_TOKEN / $VOICEMESH_CA, then the file.

Plaintext is for loopback only: a token sent in the clear to another host is a token given away.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from voicemesh.common.errors import InvalidRequest

TOKEN_ENV = "VOICEMESH_TOKEN"
CA_ENV = "VOICEMESH_CA"
CREDENTIALS_FILE = "credentials.toml"


def config_dir() -> Path:
    """$XDG_CONFIG_HOME/voicemesh (~/.config/voicemesh): credentials, keys and certificates."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "voicemesh"


@dataclass(frozen=True)
class Credentials:
    token: str = ""
    ca: Path | None = None  # PEM of the CA the gateway's certificate chains to; None: the system's roots

    @classmethod
    def find(cls, token: str = "", ca: str | Path = "", folder: Path | None = None) -> Credentials:
        """The explicit values, else the environment's, else the config folder's file."""
        saved = _saved(folder or config_dir())
        token = token or os.environ.get(TOKEN_ENV, "") or str(saved.get("token", ""))
        ca_path = str(ca) or os.environ.get(CA_ENV, "") or str(saved.get("ca", ""))
        return cls(token, Path(ca_path) if ca_path else None)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def _saved(folder: Path) -> dict[str, Any]:
    path = folder / CREDENTIALS_FILE
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidRequest(f"cannot read {path}: {exc}") from None


def is_loopback(target: str) -> bool:
    host = target.removeprefix("dns:///").removeprefix("ipv4:").rpartition(":")[0].strip("[]") or target
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Bearer(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]  # generic in the stubs only
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    """The token on every call of a plaintext loopback channel, where gRPC refuses call credentials."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *self._metadata)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._with_token(details), requests)

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._with_token(details), requests)


def channel_credentials(credentials: Credentials) -> grpc.ChannelCredentials:
    if credentials.ca is not None:
        try:
            root = credentials.ca.read_bytes()
        except OSError as exc:
            raise InvalidRequest(f"cannot read the CA certificate {credentials.ca}: {exc.strerror}") from None
        ssl = grpc.ssl_channel_credentials(root_certificates=root)
    else:
        ssl = grpc.ssl_channel_credentials()
    if not credentials.token:
        return ssl
    return grpc.composite_channel_credentials(ssl, grpc.access_token_call_credentials(credentials.token))


def open_channel(
    target: str,
    credentials: Credentials,
    *,
    insecure: bool = False,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """A channel to the gateway: TLS with the token as call credentials, or with ``insecure``
    plaintext to a loopback address only."""
    if insecure:
        if not is_loopback(target):
            raise InvalidRequest(
                "--insecure sends the token in the clear; it is allowed only to a loopback address, "
                f"not {target}"
            )
        interceptors: Any = [_Bearer(credentials.metadata())] if credentials.token else None
        return grpc.aio.insecure_channel(target, options=list(options), interceptors=interceptors)
    return grpc.aio.secure_channel(target, channel_credentials(credentials), options=list(options))

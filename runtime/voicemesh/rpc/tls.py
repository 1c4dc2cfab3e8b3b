"""TLS for every hop, from a folder in the layout cert-manager writes into a Secret.

``tls.crt`` (this component's certificate chain), ``tls.key`` (its key) and ``ca.crt`` (the mesh
CA): in Kubernetes the folder is the mounted Secret, on a laptop ``voicemesh certs init``'s output.
A backend asks every client for a certificate from that CA (mTLS), so only the mesh's own
components reach it; the gateway serves TLS to anyone and checks tokens instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from voicemesh.common.errors import InvalidRequest

CERT, KEY, CA = "tls.crt", "tls.key", "ca.crt"


@dataclass(frozen=True)
class TlsFolder:
    path: Path

    def read(self, name: str) -> bytes:
        try:
            return (self.path / name).read_bytes()
        except OSError as exc:
            raise InvalidRequest(
                f"TLS: cannot read {self.path / name} ({exc.strerror}); "
                "`voicemesh certs init` writes tls.crt, tls.key and ca.crt"
            ) from None

    def server_credentials(self, *, require_client_cert: bool) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.read(KEY), self.read(CERT))],
            root_certificates=self.read(CA) if require_client_cert else None,
            require_client_auth=require_client_cert,
        )

    def client_credentials(self) -> grpc.ChannelCredentials:
        """A mesh component calling another: trusts only the mesh CA, and shows its own certificate."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.read(CA), private_key=self.read(KEY), certificate_chain=self.read(CERT)
        )


def mesh_channel(target: str, folder: str, options: list[tuple[str, object]]) -> grpc.aio.Channel:
    """A channel to a backend: mTLS when the caller has a TLS folder, plaintext otherwise."""
    if not folder:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, TlsFolder(Path(folder)).client_credentials(), options=options)

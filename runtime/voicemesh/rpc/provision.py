"""The local mesh's security material, made once and kept in the config folder.

``voicemesh up`` calls ``LocalAuthority.ensure()``, so a first start is secure with nothing to set:

    ~/.config/voicemesh/
      certs/                  ca.crt, ca.key and <component>/{tls.crt,tls.key,ca.crt}
      auth/signing-key.pem    the ES256 key `voicemesh token create` signs with (0600)
      auth/jwks.json          its public half: what the gateway checks tokens with
      auth/api-keys.json      API keys, hashed: id, sha256, tenant, user, scopes (0600)
      credentials.toml        the local admin key and the CA, for the CLI and the SDK (0600)

A cluster brings its own: cert-manager Secrets for the certificates, the identity provider's JWKS,
and API keys made with ``voicemesh token create --api-key`` against a copy of the keys file.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from voicemesh.common.components import COMPONENTS
from voicemesh.common.credentials import CREDENTIALS_FILE, config_dir
from voicemesh.common.identity import ADMIN, DEFAULT_TENANT, api_key_hash, new_api_key
from voicemesh.rpc import certs
from voicemesh.rpc.certs import write_file

LOCAL_ISSUER = "voicemesh-local"
AUDIENCE = "voicemesh"
ALGORITHM = "ES256"
DEFAULT_TTL_S = 24 * 3600


@dataclass(frozen=True)
class LocalAuthority:
    folder: Path

    @classmethod
    def default(cls) -> LocalAuthority:
        return cls(config_dir())

    @property
    def certs(self) -> Path:
        return self.folder / "certs"

    @property
    def jwks(self) -> Path:
        return self.folder / "auth" / "jwks.json"

    @property
    def signing_key(self) -> Path:
        return self.folder / "auth" / "signing-key.pem"

    @property
    def api_keys(self) -> Path:
        return self.folder / "auth" / "api-keys.json"

    @property
    def credentials(self) -> Path:
        return self.folder / CREDENTIALS_FILE

    def tls_dir(self, component: str) -> Path:
        return self.certs / component

    def ensure(self) -> LocalAuthority:
        """Make whatever is missing; what exists is kept, so tokens and keys handed out stay good."""
        if not (self.certs / "ca.crt").exists() or not all(
            (self.tls_dir(c) / "tls.crt").exists() for c in COMPONENTS
        ):
            certs.init(self.certs)
        if not self.signing_key.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            kid = secrets.token_hex(8)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            write_file(self.signing_key, pem, secret=True)
            public = json.loads(ECAlgorithm.to_jwk(key.public_key()))
            public.update(kid=kid, alg=ALGORITHM, use="sig")
            write_file(self.jwks, json.dumps({"keys": [public]}, indent=2).encode())
        if not self.credentials.exists():
            admin = self.add_api_key(DEFAULT_TENANT, "", [ADMIN], note="local admin (voicemesh up)")
            ca = self.certs / "ca.crt"
            text = f'# written by voicemesh up: the local admin key\ntoken = "{admin}"\nca = "{ca}"\n'
            write_file(self.credentials, text.encode(), secret=True)
        return self

    def add_api_key(self, tenant: str, user: str, scopes: list[str], *, note: str = "") -> str:
        """Record a new key (its hash only) and return the key itself, to be shown once."""
        key_id, key = new_api_key()
        records = self._keys()
        records.append(
            {
                "id": key_id,
                "sha256": api_key_hash(key),
                "tenant": tenant,
                "user": user,
                "scopes": scopes,
                "created": int(time.time()),
                "note": note,
            }
        )
        write_file(self.api_keys, json.dumps({"keys": records}, indent=2).encode(), secret=True)
        return key

    def _keys(self) -> list[dict[str, object]]:
        try:
            keys: list[dict[str, object]] = json.loads(self.api_keys.read_text())["keys"]
        except FileNotFoundError:
            return []
        return keys

    def mint(
        self,
        user: str,
        *,
        tenant: str = DEFAULT_TENANT,
        scopes: list[str] | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        audience: str = AUDIENCE,
        issuer: str = LOCAL_ISSUER,
    ) -> str:
        """A JWT for ``user``, signed with the local key."""
        key = serialization.load_pem_private_key(self.signing_key.read_bytes(), password=None)
        kid = json.loads(self.jwks.read_text())["keys"][0]["kid"]
        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": audience,
            "sub": user,
            "tenant": tenant,
            "scope": " ".join(scopes or []),
            "iat": now,
            "exp": now + int(ttl_s),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})  # type: ignore[arg-type]

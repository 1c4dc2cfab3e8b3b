"""Every public call carries a credential: a JWT (checked against a JWKS file) or an API key.

``AuthInterceptor`` runs before any servicer: a call without ``authorization: Bearer …``, or with
one that fails a check, ends UNAUTHENTICATED with the check named (expired, wrong audience …), and
the servicer never runs; a good one puts the caller's ``Identity`` in ``caller()`` for the call.
Only health and reflection are open, so a method added later is covered without a word.

JWTs: ES256 or RS256, ``kid`` naming a key of the JWKS file, ``iss`` and ``aud`` as configured,
``exp`` required; ``sub`` is the user, ``tenant`` the tenant, ``scope`` space-separated scopes.
API keys: ``vmk_<id>_<secret>``, looked up by id in the keys file, which holds only their hashes.
Both files are read again whenever they change (a stat per call), so a new key works and a removed
one stops working without a restart: a JWKS rotation is "add the new key, switch the signer, remove
the old key", and removing a key revokes every token it signed.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import grpc
import jwt

from voicemesh.common.errors import Unauthenticated
from voicemesh.common.identity import DEFAULT_TENANT, Identity, api_key_id, api_key_matches
from voicemesh.common.metrics import AUTH_REFUSED
from voicemesh.rpc.handler import Context

log = logging.getLogger(__name__)

ALGORITHMS = ["ES256", "RS256"]
HOW_TO_GET_ONE = (
    "`voicemesh token create --user NAME` mints one; `voicemesh up` saved an admin key in ~/.config/voicemesh"
)
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
MAX_TOKEN_CHARS = 8192

_caller: contextvars.ContextVar[Identity] = contextvars.ContextVar("voicemesh_caller")


def caller() -> Identity:
    """The identity of the call being served (set by ``AuthInterceptor``)."""
    return _caller.get()


class _Watched:
    """A file's parsed content, parsed again when the file changes; a missing file holds nothing."""

    def __init__(self, path: str, parse: Callable[[str], dict[str, Any]], *, required: bool = False) -> None:
        self._path = Path(path) if path else None
        self._parse = parse
        self._stamp: tuple[int, int] | None = None
        self._content: dict[str, Any] = {}
        if required and self._path is not None and not self._path.exists():
            raise FileNotFoundError(f"{self._path}: no such file")
        self.current()  # a malformed file fails the gateway's start, not its first caller

    def current(self) -> dict[str, Any]:
        if self._path is None:
            return self._content
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            self._content, self._stamp = {}, None
            return self._content
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                self._content = self._parse(self._path.read_text())
            except Exception as exc:  # a half-written file: keep what was good until it is whole
                if self._stamp is None:
                    raise
                log.warning("%s unreadable (%s); keeping the keys read before", self._path, exc)
                return self._content
            self._stamp = stamp
        return self._content


def _api_keys(text: str) -> dict[str, Any]:
    return {str(r["id"]): r for r in json.loads(text)["keys"]}


class Authenticator:
    def __init__(
        self, *, jwks_file: str, api_keys_file: str, issuer: str, audience: str, leeway_s: float
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s
        self._jwks = _Watched(jwks_file, _load_jwks, required=True)
        self._keys = _Watched(api_keys_file, _api_keys)

    def identify(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Identity:
        token = _bearer(metadata)
        if len(token) > MAX_TOKEN_CHARS:
            raise _refused("too_long", f"the credential is over {MAX_TOKEN_CHARS} characters")
        key_id = api_key_id(token)
        if key_id:
            return self._api_key(key_id, token)
        if token.count(".") == 2:
            return self._jwt(token)
        raise _refused("malformed", "the bearer credential is neither a JWT nor a voicemesh API key (vmk_…)")

    def _api_key(self, key_id: str, key: str) -> Identity:
        record = self._keys.current().get(key_id)
        if record is None or not api_key_matches(key, str(record["sha256"])):
            raise _refused("unknown_key", "the API key is not one the gateway knows (revoked, or never made)")
        return Identity(
            str(record.get("tenant") or DEFAULT_TENANT),
            str(record.get("user") or ""),
            frozenset(str(s) for s in record.get("scopes", [])),
            credential=f"key:{key_id}",
        )

    def _jwt(self, token: str) -> Identity:
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
        except jwt.DecodeError:
            raise _refused("malformed", "the token is not a well-formed JWT") from None
        key = self._jwks.current().get(kid)
        if key is None:
            raise _refused(
                "unknown_signer",
                f"the token is signed with key id {str(kid)[:64]!r}, which the gateway's JWKS does not hold",
            )
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise _refused("expired", "the token has expired; get a new one") from None
        except jwt.InvalidAudienceError:
            raise _refused("audience", f"the token's audience is not {self._audience!r}") from None
        except jwt.InvalidIssuerError:
            raise _refused("issuer", f"the token's issuer is not {self._issuer!r}") from None
        except jwt.ImmatureSignatureError:
            raise _refused("not_yet_valid", "the token is not valid yet (nbf/iat in the future)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _refused("claims", f"the token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise _refused("signature", "the token's signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise _refused("invalid", f"the token is invalid: {exc}") from None
        scope = claims.get("scope", "")
        return Identity(
            str(claims.get("tenant") or DEFAULT_TENANT)[:128],
            str(claims["sub"])[:128],
            frozenset(scope.split() if isinstance(scope, str) else ()),
            credential=f"jwt:{str(claims.get('jti', ''))[:64]}",
        )


def _load_jwks(text: str) -> dict[str, Any]:
    keys = jwt.PyJWKSet.from_json(text).keys
    return {key.key_id: key for key in keys if key.key_id}


def _bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _refused("malformed", "the authorization metadata must be 'Bearer <token>'")
            return token.strip()
    raise _refused(
        "missing",
        f"this call needs a credential: send metadata 'authorization: Bearer <token>'; {HOW_TO_GET_ONE}",
    )


def _refused(reason: str, message: str) -> Unauthenticated:
    AUTH_REFUSED.labels(reason).inc()
    return Unauthenticated(message)


Handler = Any  # grpc.RpcMethodHandler; grpc-stubs types only the sync API


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # generic in the stubs only
    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        return _guarded(handler, self._admit)

    async def _admit(self, context: Context) -> None:
        try:
            identity = self._authenticator.identify(context.invocation_metadata())
        except Unauthenticated as exc:
            log.info("refused a call: %s", exc)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        _caller.set(identity)


def _guarded(handler: Handler, admit: Callable[[Context], Awaitable[None]]) -> Handler:
    """The same handler, with ``admit`` run first in the call's own task (so ``caller()`` sees it)."""
    deserialize, serialize = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary:
        inner = handler.unary_unary

        async def unary_unary(request: Any, context: Context) -> Any:
            await admit(context)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, deserialize, serialize)
    if handler.stream_unary:
        inner_su = handler.stream_unary

        async def stream_unary(requests: Any, context: Context) -> Any:
            await admit(context)
            return await inner_su(requests, context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, deserialize, serialize)
    inner_stream = handler.unary_stream or handler.stream_stream

    async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
        await admit(context)
        async for response in inner_stream(request, context):
            yield response

    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming, deserialize, serialize)
    return grpc.stream_stream_rpc_method_handler(streaming, deserialize, serialize)

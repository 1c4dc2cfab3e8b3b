"""Exceptions to gRPC status codes, in one place.

Servicer methods are wrapped with ``@rpc_handler`` (voicemesh.rpc.handler), which calls ``abort``: a
``VoicemeshError`` becomes its status code with its message; a downstream failure relayed by the
gateway keeps the downstream's code; anything else is a bug, logged with its traceback and answered
INTERNAL without leaking internals.
"""

from __future__ import annotations

import logging

import grpc

from voicemesh.common.errors import (
    DependencyUnavailable,
    FailedPrecondition,
    InvalidRequest,
    ModelFailure,
    Overloaded,
    PermissionDenied,
    TimedOut,
    Unauthenticated,
    VoicemeshError,
)
from voicemesh.common.logs import request_id_var

log = logging.getLogger(__name__)


class RelayedStatus(grpc.RpcError):
    """A status from a downstream service, passed on to the caller with the hop named ("stt: …").

    An RpcError with ``code()`` and ``details()``, like the error of a failed call, so code that
    handles a call's failure (a retry, say) handles a relayed one the same way.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return str(self)


_CODES: dict[type[VoicemeshError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    TimedOut: grpc.StatusCode.DEADLINE_EXCEEDED,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ModelFailure: grpc.StatusCode.INTERNAL,
    DependencyUnavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code(error: VoicemeshError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.UNKNOWN


def to_status(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The status code and message a failed call is answered with."""
    if isinstance(exc, VoicemeshError):
        return status_code(exc), str(exc)
    if isinstance(exc, RelayedStatus):
        return exc.code(), str(exc)
    log.exception("unhandled error")
    return grpc.StatusCode.INTERNAL, f"internal error (request id {request_id_var.get()}); see the server log"

"""Exceptions to gRPC status codes, in one place.

Servicer methods are wrapped with ``@grpc_errors``: a ``VoicemeshError`` becomes its status code with
its message; a downstream failure relayed by the gateway keeps the downstream's code; anything else
is a bug, logged with its traceback and answered INTERNAL without leaking internals.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from voicemesh.common.errors import (
    DependencyUnavailable,
    InvalidRequest,
    ModelFailure,
    Overloaded,
    VoicemeshError,
)
from voicemesh.common.logs import request_id_var

log = logging.getLogger(__name__)

_CODES: dict[type[VoicemeshError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ModelFailure: grpc.StatusCode.INTERNAL,
    DependencyUnavailable: grpc.StatusCode.UNAVAILABLE,
}


class RelayedStatus(Exception):
    """A status from a downstream service, passed on to the caller with the hop named."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def status_code(error: VoicemeshError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.UNKNOWN


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> NoReturn:
    if isinstance(exc, VoicemeshError):
        await context.abort(status_code(exc), str(exc))
    if isinstance(exc, RelayedStatus):
        await context.abort(exc.code, str(exc))
    log.exception("unhandled error")
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error (request id {request_id_var.get()}); see the server log"
    )


F = TypeVar("F", bound=Callable[..., Any])


def grpc_errors(method: F) -> F:
    """Wrap a servicer method (coroutine or async generator) so errors become precise statuses."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for response in method(self, request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort(context, exc)

        return stream  # type: ignore[return-value]

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    return unary  # type: ignore[return-value]

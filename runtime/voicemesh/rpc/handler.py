"""``@rpc_handler``: what every servicer method gets — a precise status, a span, and its metrics.

Errors become statuses (voicemesh.rpc.status), each logged once with the call's request id. Each
call is a server span that continues the caller's trace from the metadata, counted by method and
final code (CANCELLED when the caller went away), with its duration and the calls in progress.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from typing import Any, TypeAlias, TypeVar

import grpc
from opentelemetry import trace

from voicemesh.common.errors import Overloaded
from voicemesh.common.metrics import ACTIVE_RPCS, RPC_SECONDS, RPCS
from voicemesh.common.tracing import incoming_context, tracer
from voicemesh.rpc.status import to_status

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
# What every servicer method is handed; grpc-stubs makes it generic in the request and response.
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


# How loud a failed call is in the log: the caller's own mistakes are theirs to read in the status.
_CALLERS_FAULT = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


class _Call:
    """The bookkeeping of one call: its span, the code it ended with, and its one log line."""

    def __init__(self, method: str, context: Context) -> None:
        self.method = method
        self.code = grpc.StatusCode.OK
        self.started = time.monotonic()
        # Started, not made current: a stream's steps each make it current while they run
        # (``current``), so the context is attached and detached in one task, at one await.
        self.span = tracer.start_span(
            method,
            context=incoming_context(context.invocation_metadata()),
            kind=trace.SpanKind.SERVER,
            record_exception=False,
            set_status_on_exception=False,
        )
        ACTIVE_RPCS.labels(method).inc()

    def current(self) -> AbstractContextManager[trace.Span]:
        return trace.use_span(
            self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    async def fail(self, context: Context, exc: Exception) -> None:
        self.code, message = to_status(exc)
        self.span.set_status(trace.StatusCode.ERROR, f"{self.code.name}: {message}")
        level = logging.INFO if self.code in _CALLERS_FAULT else logging.WARNING
        log.log(level, "%s answered %s: %s", self.method, self.code.name, message)
        if isinstance(exc, Overloaded):
            # HTTP's header for people and proxies, and the trailer gRPC's own retry policy obeys.
            context.set_trailing_metadata(
                (
                    ("retry-after", str(math.ceil(exc.retry_after_s))),
                    ("grpc-retry-pushback-ms", str(round(exc.retry_after_s * 1000))),
                )
            )
        await context.abort(self.code, message)

    def end(self, cancelled: bool) -> None:
        if cancelled:
            self.code = grpc.StatusCode.CANCELLED
        self.span.set_attribute("rpc.grpc.status_code", self.code.value[0])
        self.span.end()
        ACTIVE_RPCS.labels(self.method).dec()
        RPCS.labels(self.method, self.code.name).inc()
        RPC_SECONDS.labels(self.method).observe(time.monotonic() - self.started)


def rpc_handler(method: F) -> F:
    """Wrap a servicer method (coroutine or async generator)."""
    service, _, name = method.__qualname__.partition(".")
    label = f"{service.removesuffix('Servicer')}/{name}"

    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(self: Any, request: Any, context: Context) -> AsyncIterator[Any]:
            call = _Call(label, context)
            responses = method(self, request, context)
            cancelled = False
            try:
                while True:
                    with call.current():
                        try:
                            response = await anext(responses)
                        except StopAsyncIteration:
                            break
                        except grpc.aio.AbortError:
                            raise
                        except Exception as exc:
                            await call.fail(context, exc)
                    yield response
            except (asyncio.CancelledError, GeneratorExit):
                cancelled = True
                raise
            finally:
                # Closed here and now, not later by the garbage collector: a cancelled reply stops
                # its work (llama.cpp, piper) at once, in this task.
                with call.current():
                    await responses.aclose()
                call.end(cancelled)

        return stream  # type: ignore[return-value]

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: Context) -> Any:
        call = _Call(label, context)
        cancelled = False
        try:
            with call.current():
                try:
                    return await method(self, request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await call.fail(context, exc)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            call.end(cancelled)

    return unary  # type: ignore[return-value]

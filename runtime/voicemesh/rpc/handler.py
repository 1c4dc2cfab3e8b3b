"""``@rpc_handler``: what every servicer method gets — a precise status, a span, and its metrics.

Errors become statuses (voicemesh.rpc.status). Each call is a server span that continues the
caller's trace from the metadata, counted by method and final code (CANCELLED when the caller went
away), with its duration and the number of calls in progress.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias, TypeVar

import grpc
from opentelemetry import trace

from voicemesh.common.errors import Overloaded
from voicemesh.common.metrics import ACTIVE_RPCS, RPC_SECONDS, RPCS
from voicemesh.common.tracing import incoming_context, tracer
from voicemesh.rpc.status import to_status

F = TypeVar("F", bound=Callable[..., Any])
# What every servicer method is handed; grpc-stubs makes it generic in the request and response.
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class _Call:
    """The bookkeeping of one call: its span, and the code it ended with."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self.code = grpc.StatusCode.OK

    async def fail(self, context: Context, exc: Exception) -> None:
        self.code, message = to_status(exc)
        self.span.set_status(trace.StatusCode.ERROR, f"{self.code.name}: {message}")
        if isinstance(exc, Overloaded):
            # HTTP's header for people and proxies, and the trailer gRPC's own retry policy obeys.
            context.set_trailing_metadata(
                (
                    ("retry-after", str(math.ceil(exc.retry_after_s))),
                    ("grpc-retry-pushback-ms", str(round(exc.retry_after_s * 1000))),
                )
            )
        await context.abort(self.code, message)


@contextmanager
def _observed(method: str, context: Context) -> Iterator[_Call]:
    started = time.monotonic()
    ACTIVE_RPCS.labels(method).inc()
    with tracer.start_as_current_span(
        method,
        context=incoming_context(context.invocation_metadata()),
        kind=trace.SpanKind.SERVER,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        call = _Call(span)
        try:
            yield call
        except (asyncio.CancelledError, GeneratorExit):
            call.code = grpc.StatusCode.CANCELLED
            raise
        finally:
            span.set_attribute("rpc.grpc.status_code", call.code.value[0])
            ACTIVE_RPCS.labels(method).dec()
            RPCS.labels(method, call.code.name).inc()
            RPC_SECONDS.labels(method).observe(time.monotonic() - started)


def rpc_handler(method: F) -> F:
    """Wrap a servicer method (coroutine or async generator)."""
    service, _, name = method.__qualname__.partition(".")
    label = f"{service.removesuffix('Servicer')}/{name}"

    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(self: Any, request: Any, context: Context) -> AsyncIterator[Any]:
            with _observed(label, context) as call:
                try:
                    async for response in method(self, request, context):
                        yield response
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await call.fail(context, exc)

        return stream  # type: ignore[return-value]

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: Context) -> Any:
        with _observed(label, context) as call:
            try:
                return await method(self, request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await call.fail(context, exc)

    return unary  # type: ignore[return-value]

"""Turn undecodable request bytes into INVALID_ARGUMENT instead of a generic failure.

gRPC Python answers a message it cannot parse (for example a ``string`` field holding bytes that are
not UTF-8) with a vague status. This interceptor swaps each method's deserializer for one that hands
the servicer a marker, and aborts with a message naming the message type and the parser's reason.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc

from voicemesh.common.errors import InvalidRequest
from voicemesh.rpc.handler import Context

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


@dataclass(frozen=True)
class _Undecodable:
    type_name: str
    reason: str

    def message(self) -> str:
        return (
            f"request is not a valid {self.type_name} message ({self.reason}); "
            "string fields must hold valid UTF-8"
        )


def _safe(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    owner = getattr(deserializer, "__self__", None)
    type_name = getattr(getattr(owner, "DESCRIPTOR", None), "full_name", "protobuf")

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:
            return _Undecodable(type_name, str(exc) or type(exc).__name__)

    return deserialize


async def _checked(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
    """A stream's later messages are read by whatever task forwards them (an STT upload, a
    relay to another service), not by the handler: raise the error there, as any bad field would,
    so it reaches the caller as INVALID_ARGUMENT by the same road, instead of an abort from a task
    that does not own the call."""
    async for request in requests:
        if isinstance(request, _Undecodable):
            raise InvalidRequest(request.message())
        yield request


def _wrap(handler: Any) -> Handler:  # grpc-stubs types only the sync API
    deserializer = _safe(handler.request_deserializer)
    serializer = handler.response_serializer
    if handler.unary_unary or handler.unary_stream:
        inner: Any = handler.unary_unary or handler.unary_stream

        async def unary_request(request: Any, context: Context) -> Any:
            if isinstance(request, _Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message())
            return inner(request, context)

        if handler.unary_unary:

            async def unary_unary(request: Any, context: Context) -> Any:
                return await (await unary_request(request, context))

            return grpc.unary_unary_rpc_method_handler(unary_unary, deserializer, serializer)

        async def unary_stream(request: Any, context: Context) -> AsyncIterator[Any]:
            async for response in await unary_request(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(unary_stream, deserializer, serializer)

    inner_stream: Any = handler.stream_unary or handler.stream_stream
    if handler.stream_unary:

        async def stream_unary(requests: AsyncIterator[Any], context: Context) -> Any:
            return await inner_stream(_checked(requests, context), context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, deserializer, serializer)

    async def stream_stream(requests: AsyncIterator[Any], context: Context) -> Any:
        result = inner_stream(_checked(requests, context), context)
        if inspect.isasyncgen(result):
            async for response in result:
                yield response
        else:  # a servicer that writes through context.write
            await result

    return grpc.stream_stream_rpc_method_handler(stream_stream, deserializer, serializer)


class DecodeErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # generic in the stubs only
    """Applied to every voicemesh server."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        return handler if handler is None else _wrap(handler)

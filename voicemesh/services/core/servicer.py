"""Core over gRPC: proto ⇄ engine, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from voicemesh.common.logs import request_id_var
from voicemesh.rpc.handler import rpc_handler
from voicemesh.services.core.engine import Done, ReplyEvent, Responder, Route, Sentence, TextDelta
from voicemesh.v1 import core_pb2 as pb
from voicemesh.v1 import core_pb2_grpc as pb_grpc


def reply_message(event: ReplyEvent) -> dict[str, object]:
    """The oneof field and value for an engine event (shared with the gateway)."""
    if isinstance(event, Route):
        return {"route": pb.RouteChosen(tier=event.tier, model=event.model, reason=event.reason)}
    if isinstance(event, TextDelta):
        return {"text_delta": event.text}
    if isinstance(event, Sentence):
        return {"sentence": pb.SentenceMark(index=event.index, text=event.text)}
    assert isinstance(event, Done)
    done = pb.ReplyDone(
        text=event.text, completion_tokens=event.completion_tokens, finish_reason=event.finish_reason
    )
    return {"done": done}


class CoreServicer(pb_grpc.CoreServiceServicer):
    def __init__(self, engine: Responder) -> None:
        self._engine = engine

    @rpc_handler
    async def Respond(
        self, request: pb.RespondRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RespondResponse]:
        request_id_var.set(request.request_id or "-")
        async for event in self._engine.respond(request.text, request.max_tokens):
            yield pb.RespondResponse(request_id=request.request_id, **reply_message(event))  # type: ignore[arg-type]

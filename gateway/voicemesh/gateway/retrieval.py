"""RetrievalService at the gateway: the RAG service's answer, for the caller's own collections.

Every request's collection is put under the caller's tenant, whatever the client wrote there, so
one tenant never reads or writes another's documents. (Within a tenant the user id is the caller's
word until callers are authenticated.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from voicemesh.gateway.downstream import Downstream
from voicemesh.gateway.throttle import tenant_of
from voicemesh.rpc.handler import Context, rpc_handler
from voicemesh.v1 import retrieval_pb2 as pb
from voicemesh.v1 import retrieval_pb2_grpc as pb_grpc

TIMEOUT_S = 30.0
INGEST_TIMEOUT_S = 3600.0  # an Ingest whose caller set no deadline: embedding a large upload takes a while


class GatewayRetrieval(pb_grpc.RetrievalServiceServicer):
    def __init__(self, downstream: Downstream) -> None:
        self._downstream = downstream

    @rpc_handler
    async def Search(self, request: pb.SearchRequest, context: Context) -> pb.SearchResponse:
        request.collection.tenant = tenant_of(context.invocation_metadata())
        async with self._downstream.guard("rag") as rag:
            response: pb.SearchResponse = await rag.Search(request, timeout=_timeout(context, TIMEOUT_S))
        return response

    @rpc_handler
    async def Ingest(
        self, request_iterator: AsyncIterator[pb.IngestRequest], context: Context
    ) -> pb.IngestResponse:
        tenant = tenant_of(context.invocation_metadata())

        async def forwarded() -> AsyncIterator[pb.IngestRequest]:
            async for request in request_iterator:
                if request.WhichOneof("streaming_request") == "config":
                    request.config.collection.tenant = tenant
                yield request

        async with self._downstream.guard("rag", slot=False) as rag:
            response: pb.IngestResponse = await rag.Ingest(
                forwarded(), timeout=_timeout(context, INGEST_TIMEOUT_S)
            )
        return response

    @rpc_handler
    async def Delete(self, request: pb.DeleteRequest, context: Context) -> pb.DeleteResponse:
        request.collection.tenant = tenant_of(context.invocation_metadata())
        async with self._downstream.guard("rag", slot=False) as rag:
            response: pb.DeleteResponse = await rag.Delete(request, timeout=_timeout(context, TIMEOUT_S))
        return response

    @rpc_handler
    async def Stats(self, request: pb.StatsRequest, context: Context) -> pb.StatsResponse:
        request.collection.tenant = tenant_of(context.invocation_metadata())
        async with self._downstream.guard("rag", slot=False) as rag:
            response: pb.StatsResponse = await rag.Stats(request, timeout=_timeout(context, TIMEOUT_S))
        return response


def _timeout(context: Context, default_s: float) -> float:
    remaining = context.time_remaining()
    return default_s if remaining is None else max(0.001, remaining - 0.05)

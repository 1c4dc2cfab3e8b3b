"""RetrievalService at the gateway: the RAG service's answer, for the caller's own collections.

Every request's collection is put under the caller's tenant, whatever the client wrote there, so
one tenant never reads or writes another's documents, and under a user the caller's credential
covers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from voicemesh.common import limits
from voicemesh.common.identity import ACTS_FOR_OTHERS, Identity
from voicemesh.common.streams import split_config
from voicemesh.gateway.auth import caller
from voicemesh.gateway.downstream import Downstream
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
        _own(request.collection, caller())
        async with self._downstream.guard("rag") as rag:
            response: pb.SearchResponse = await rag.Search(request, timeout=_timeout(context, TIMEOUT_S))
        return response

    @rpc_handler
    async def Ingest(
        self, request_iterator: AsyncIterator[pb.IngestRequest], context: Context
    ) -> pb.IngestResponse:
        identity = caller()
        # The stream's shape and the collection are checked here, before anything is relayed: an
        # RAG service that refused them would answer while this call was still writing, and
        # gRPC's asyncio client reports that race as its own INTERNAL, hiding the refusal.
        config, documents = await split_config(request_iterator, "document")
        _own(config.collection, identity, writes=True)
        limits.check_id("collection.user_id", config.collection.user_id)
        limits.check_collection_name(config.collection.name)
        async with self._downstream.guard("rag", slot=False) as rag:
            call = rag.Ingest(timeout=_timeout(context, INGEST_TIMEOUT_S))
            # Read here, in the call's own task, not by gRPC's relay of a request iterator: a
            # message that fails ends this call with its status instead of leaving the relayed
            # one to time out.
            try:
                await call.write(pb.IngestRequest(config=config))
                async for document in documents:
                    if call.done():
                        break  # the RAG service has answered already: its status is the reply
                    await call.write(pb.IngestRequest(document=document))
                await call.done_writing()
            except BaseException:
                call.cancel()
                raise
            response: pb.IngestResponse = await call
        return response

    @rpc_handler
    async def Delete(self, request: pb.DeleteRequest, context: Context) -> pb.DeleteResponse:
        _own(request.collection, caller(), writes=True)
        async with self._downstream.guard("rag", slot=False) as rag:
            response: pb.DeleteResponse = await rag.Delete(request, timeout=_timeout(context, TIMEOUT_S))
        return response

    @rpc_handler
    async def Stats(self, request: pb.StatsRequest, context: Context) -> pb.StatsResponse:
        _own(request.collection, caller())
        async with self._downstream.guard("rag", slot=False) as rag:
            response: pb.StatsResponse = await rag.Stats(request, timeout=_timeout(context, TIMEOUT_S))
        return response


def _own(collection: pb.Collection, identity: Identity, *, writes: bool = False) -> None:
    """Put the collection under the caller's tenant and a user its credential covers; the tenant's
    shared documents (no user) are read by all of it and changed only with an admin or service key."""
    collection.tenant = identity.tenant
    collection.user_id = identity.user_for(collection.user_id, what="collection.user_id")
    if writes and not collection.user_id:
        identity.require(ACTS_FOR_OTHERS, "changing the tenant's shared documents")


def _timeout(context: Context, default_s: float) -> float:
    remaining = context.time_remaining()
    return default_s if remaining is None else max(0.001, remaining - 0.05)

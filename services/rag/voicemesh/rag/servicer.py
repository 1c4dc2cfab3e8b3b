"""RetrievalService over gRPC: proto ⇄ engine, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.protobuf.timestamp_pb2 import Timestamp

from voicemesh.common import limits
from voicemesh.common.logs import request_id_var
from voicemesh.common.streams import split_config
from voicemesh.rag.engine import Found, IncomingDocument, Retriever, SearchOptions
from voicemesh.rag.store import CollectionKey
from voicemesh.rpc.handler import Context, rpc_handler
from voicemesh.v1 import retrieval_pb2 as pb
from voicemesh.v1 import retrieval_pb2_grpc as pb_grpc

FUSIONS = {pb.FUSION_UNSPECIFIED: "", pb.FUSION_RECIPROCAL_RANK: "rrf", pb.FUSION_WEIGHTED: "weighted"}


def collection_key(collection: pb.Collection) -> CollectionKey:
    limits.check_id("collection.tenant", collection.tenant)
    limits.check_id("collection.user_id", collection.user_id)
    return CollectionKey(
        collection.tenant or "default", collection.user_id, limits.check_collection_name(collection.name)
    )


def search_options(request: pb.SearchRequest) -> SearchOptions:
    options = request.options
    return SearchOptions(
        top_k=request.top_k or 5,
        dense=not options.skip_dense,
        keyword=not options.skip_keyword,
        rerank=not options.skip_rerank,
        fusion=FUSIONS.get(options.fusion, ""),
        exact=options.exact,
        rescore=not options.skip_rescore,
        min_dense=options.min_dense_score,
    )


def passage_message(found: Found) -> pb.Passage:
    p, s = found.passage, found.stages
    return pb.Passage(
        document_id=p.document_id,
        text=p.text,
        score=found.score,
        passage_id=p.passage_id,
        source=p.source,
        title=p.title,
        heading=p.heading,
        start_offset=p.start,
        end_offset=p.end,
        stages=pb.StageScores(
            dense=s.dense,
            dense_rank=s.dense_rank,
            keyword=s.keyword,
            keyword_rank=s.keyword_rank,
            fused=s.fused,
            rerank=s.rerank,
        ),
    )


class RetrievalServicer(pb_grpc.RetrievalServiceServicer):
    def __init__(self, engine: Retriever) -> None:
        self._engine = engine

    @rpc_handler
    async def Search(self, request: pb.SearchRequest, context: Context) -> pb.SearchResponse:
        request_id_var.set(request.request_id or "-")
        result = await self._engine.search(
            collection_key(request.collection), request.query, search_options(request)
        )
        return pb.SearchResponse(
            request_id=request.request_id,
            passages=[passage_message(found) for found in result.found],
            timings=pb.SearchTimings(**result.timings_ms),
            generation=result.generation,
        )

    @rpc_handler
    async def Ingest(
        self, request_iterator: AsyncIterator[pb.IngestRequest], context: Context
    ) -> pb.IngestResponse:
        config, documents = await split_config(request_iterator, "document")
        request_id_var.set(config.request_id or "-")
        key = collection_key(config.collection)

        async def incoming() -> AsyncIterator[IncomingDocument]:
            async for document in documents:
                data = document.data if document.WhichOneof("content") == "data" else document.text.encode()
                yield IncomingDocument(
                    document.document_id, document.source, document.title, document.media_type, data
                )

        result = await self._engine.ingest(key, incoming())
        return pb.IngestResponse(
            documents=result.documents,
            passages=result.passages,
            errors=[
                pb.DocumentError(document_id=e.document_id, source=e.source, message=e.message)
                for e in result.errors
            ],
            unchanged=result.unchanged,
            generation=result.generation,
        )

    @rpc_handler
    async def Delete(self, request: pb.DeleteRequest, context: Context) -> pb.DeleteResponse:
        request_id_var.set(request.request_id or "-")
        result = await self._engine.delete(
            collection_key(request.collection), list(request.document_ids), request.all_documents
        )
        return pb.DeleteResponse(
            documents=result.documents, passages=result.passages, generation=result.generation
        )

    @rpc_handler
    async def Stats(self, request: pb.StatsRequest, context: Context) -> pb.StatsResponse:
        stats = await self._engine.stats(collection_key(request.collection))
        built = Timestamp()
        if stats.built_at:
            built.FromNanoseconds(int(stats.built_at * 1e9))
        return pb.StatsResponse(
            documents=stats.documents,
            passages=stats.passages,
            generation=stats.generation,
            dense_index=stats.dense_index,
            keyword_index=stats.keyword_index,
            embedder=stats.embedder,
            reranker=stats.reranker,
            bytes=stats.bytes,
            built_at=built if stats.built_at else None,
        )

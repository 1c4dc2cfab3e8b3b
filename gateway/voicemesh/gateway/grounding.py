"""A turn's grounding: the passages of the user's documents its reply is made from.

The search has its own deadline (``retrieval_timeout_ms``) and its own breaker, like the TTS: a slow,
dead or open RAG service costs the reply its grounding (a ``grounding_failed`` event says why), never
the reply. Passages too far from the question in meaning are left out (by the RAG service, before
it reranks), so small talk is not answered from the user's manuals and costs no reranking.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from voicemesh.common.errors import Overloaded
from voicemesh.common.tracing import outgoing_metadata
from voicemesh.gateway.downstream import Downstream
from voicemesh.rpc.status import RelayedStatus, to_status
from voicemesh.v1 import gateway_pb2, retrieval_pb2

if TYPE_CHECKING:  # turns.py builds on this module
    from voicemesh.gateway.turns import EmitReply, Turn

log = logging.getLogger(__name__)


def collection_of(tenant: str, user_id: str, config: gateway_pb2.RetrievalConfig) -> retrieval_pb2.Collection:
    """The caller's collection: theirs (or their tenant's shared one, without a user), by name."""
    return retrieval_pb2.Collection(tenant=tenant, user_id=user_id, name=config.collection)


def citation_of(index: int, passage: retrieval_pb2.Passage) -> gateway_pb2.Citation:
    return gateway_pb2.Citation(
        index=index,
        source=passage.source,
        title=passage.title,
        heading=passage.heading,
        passage_id=passage.passage_id,
        document_id=passage.document_id,
        score=passage.score,
    )


class Grounding:
    def __init__(
        self, downstream: Downstream, *, timeout_s: float = 0.4, top_k: int = 3, min_score: float = 0.35
    ) -> None:
        self._downstream = downstream
        self._timeout_s = timeout_s
        self._top_k = top_k
        self._min_score = min_score

    async def passages(self, turn: Turn, output: EmitReply) -> list[retrieval_pb2.Passage]:
        config = turn.retrieval
        if config.off:
            return []
        request = retrieval_pb2.SearchRequest(
            request_id=turn.request_id,
            query=turn.text,
            top_k=config.top_k or self._top_k,
            collection=collection_of(turn.tenant, turn.user_id, config),
            options=retrieval_pb2.SearchOptions(min_dense_score=self._min_score),
        )
        try:
            # Not the caller's deadline: running out of ours is the RAG service's slowness, for its breaker.
            async with self._downstream.guard("rag") as rag:
                timeout = min(self._timeout_s, turn.deadline.timeout_for("rag"))
                found = await rag.Search(request, timeout=timeout, metadata=outgoing_metadata())
        except (RelayedStatus, Overloaded) as exc:
            code, message = to_status(exc)
            log.warning("grounding failed: %s: %s", code.name, message)
            await output(gateway_pb2.GroundingFailed(code=code.value[0], message=message))
            return []
        return list(found.passages)

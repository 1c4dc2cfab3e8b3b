"""The retrieval process: its settings become the embedders, the reranker, the engine and the server."""

from __future__ import annotations

from pathlib import Path

from voicemesh.common.blocking import BlockingPool
from voicemesh.common.components import RAG
from voicemesh.common.config import ConfigError
from voicemesh.rag.config import RagSettings
from voicemesh.rag.embedding import Embedder, EmbedderFiles, bundled
from voicemesh.rag.engine import Retriever, RetrieverSettings
from voicemesh.rag.generation import DenseSettings
from voicemesh.rag.rerank import CrossEncoderReranker, EmbedderReranker, Reranker
from voicemesh.rag.servicer import RetrievalServicer
from voicemesh.rpc.host import ServiceHost, serve_until_signalled, service_host
from voicemesh.rpc.process import run_process
from voicemesh.v1 import retrieval_pb2_grpc


def embedder_files(name: str, setting: str) -> EmbedderFiles:
    """A bundled embedder by name, or a sentence-transformers ONNX folder by path."""
    if name in ("minilm", "mpnet"):
        return bundled(name)
    folder = Path(name)
    if not (folder / "model.onnx").exists() or not (folder / "tokenizer.json").exists():
        raise ConfigError(
            f"{setting}={name}: not minilm or mpnet, nor a folder with model.onnx and tokenizer.json"
        )
    return EmbedderFiles(
        folder.name, f"{folder.name} (ONNX)", folder / "model.onnx", folder / "tokenizer.json", 512
    )


def build_reranker(settings: RagSettings) -> Reranker | None:
    if settings.reranker == "none":
        return None
    if settings.reranker == "mpnet":
        return EmbedderReranker(Embedder(bundled("mpnet")))
    folder = Path(settings.reranker)
    if not folder.is_dir():
        raise ConfigError(
            f"VOICEMESH_RAG_RERANKER={settings.reranker}: not mpnet, none, or a cross-encoder folder"
        )
    return CrossEncoderReranker(folder)


def build_engine(settings: RagSettings) -> Retriever:
    dense = DenseSettings(
        settings.ivf_nlist, settings.pq_m, settings.pq_nbits, settings.nprobe, settings.rescore
    )
    return Retriever(
        settings.index_path(),
        Embedder(embedder_files(settings.embedder, "VOICEMESH_RAG_EMBEDDER")),
        build_reranker(settings),
        RetrieverSettings(
            dense=dense,
            fusion=settings.fusion,
            keyword_weight=settings.keyword_weight,
            candidates=settings.candidates,
            rerank_candidates=settings.rerank_candidates,
            passage_words=settings.passage_words,
        ),
        query_pool=BlockingPool(settings.workers, "rag-query"),
        ingest_pool=BlockingPool(settings.ingest_workers, "rag-ingest", nice=settings.ingest_nice),
    )


def build_host(settings: RagSettings, engine: Retriever) -> ServiceHost:
    return service_host(
        (
            retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server,
            RetrievalServicer(engine),
            RAG.services[0],
        ),
        settings=settings,
    )


async def serve(settings: RagSettings) -> None:
    engine = build_engine(settings)
    engine.start()
    try:
        await serve_until_signalled(build_host(settings, engine), settings)
    finally:
        await engine.close()


def main() -> None:
    run_process(RagSettings, serve)

"""Settings of the RAG process (env prefix VOICEMESH_RAG_, file table [rag])."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voicemesh.common.components import RAG
from voicemesh.common.config import ServiceSettings, data_dir


class RagSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=RAG.env_prefix, extra="forbid")
    section = RAG.name

    port: int = RAG.port
    metrics_port: int = RAG.metrics_port
    index_dir: str = Field(
        "", description="Where collections are kept; empty means $XDG_DATA_HOME/voicemesh/rag."
    )
    embedder: str = Field(
        "minilm",
        description="Dense embedder: minilm (all-MiniLM-L6-v2 int8, 384-d), mpnet (all-mpnet-base-v2, "
        "768-d), or a folder holding a sentence-transformers model.onnx and tokenizer.json.",
    )
    reranker: str = Field(
        "mpnet",
        description="Rerank stage: mpnet (cosine under all-mpnet-base-v2, its vectors computed in the "
        "background at ingestion), none, or a folder holding an ONNX cross-encoder (model.onnx and "
        "tokenizer.json).",
    )
    fusion: str = Field(
        "rrf", pattern="^(rrf|weighted)$", description="How dense and keyword lists are fused."
    )
    keyword_weight: float = Field(
        0.3, ge=0, description="Weight of the keyword list in fusion (the dense list's is 1)."
    )
    candidates: int = Field(50, ge=1, le=1000, description="Passages each retriever hands to fusion.")
    rerank_candidates: int = Field(50, ge=1, le=500, description="Fused passages the reranker scores.")
    ivf_nlist: int = Field(100, ge=1, description="IVF lists of the dense index.")
    pq_m: int = Field(8, ge=1, description="PQ sub-quantizers (the embedder's dimensions must divide by it).")
    pq_nbits: int = Field(8, ge=1, le=16, description="Bits per PQ code.")
    # Measured at 10,000 passages (MiniLM, m=8): nprobe 16 + 100 re-scored gave recall@5 56.7 against
    # 61.4 exact; 64 + 1,000 gives 60.6, for ~5 ms of dense search.
    nprobe: int = Field(64, ge=1, description="IVF lists searched per query.")
    rescore: int = Field(
        1000, ge=0, description="IVF-PQ candidates scored again exactly from float16 vectors."
    )
    passage_words: int = Field(
        80,
        ge=16,
        le=1000,
        description="Most words in one passage (about 110 tokens: both embedders see it whole).",
    )
    ingest_workers: int = Field(2, ge=1, le=64, description="Threads that embed and build for ingestion.")
    ingest_nice: int = Field(
        10, ge=0, le=19, description="How much lower ingestion's threads run than searches (setpriority)."
    )

    def index_path(self) -> Path:
        return Path(self.index_dir) if self.index_dir else data_dir() / "rag"

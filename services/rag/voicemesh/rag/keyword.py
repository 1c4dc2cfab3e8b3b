"""BM25 keyword search, by two engines that give the same scores.

``rank-bm25`` (the design card's library) scores every passage in Python for each query term, which
is fine for a small collection and too slow for a large one. Past ``SPARSE_FROM`` passages the
collection uses a sparse matrix of precomputed BM25 weights instead: a query sums the columns of its
terms. Both use rank-bm25's Okapi formula and parameters, so the scores are equal (a test checks).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

K1, B, EPSILON = 1.5, 0.75, 0.25  # rank_bm25.BM25Okapi's defaults
SPARSE_FROM = 5_000  # passages; measured in bench/retrieval.py: rank-bm25 crosses 10 ms per query near here
_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class KeywordIndex(Protocol):
    engine: str

    def scores(self, query: Sequence[str]) -> np.ndarray: ...


class RankBm25:
    """rank-bm25 itself, built from the passages' tokens when the generation is opened."""

    engine = "rank-bm25"

    def __init__(self, corpus: Sequence[Sequence[str]]) -> None:
        from rank_bm25 import BM25Okapi

        self._size = len(corpus)
        # rank-bm25 divides by the vocabulary's size: a collection whose passages hold no word at
        # all (punctuation, symbols) has none, and would fail every time it is opened.
        words = any(tokens for tokens in corpus)
        self._bm25 = BM25Okapi([list(t) for t in corpus], k1=K1, b=B, epsilon=EPSILON) if words else None

    def scores(self, query: Sequence[str]) -> np.ndarray:
        if self._bm25 is None:
            return np.zeros(self._size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(list(query)), dtype=np.float32)


class SparseBm25:
    """The same weights, precomputed: one column of (passage, weight) pairs per term, on disk."""

    engine = "sparse BM25"
    FILES = ("bm25_weights.npy", "bm25_rows.npy", "bm25_starts.npy", "bm25_terms.sqlite")

    def __init__(self, folder: Path, passages: int) -> None:
        self._weights = np.load(folder / "bm25_weights.npy", mmap_mode="r")
        self._rows = np.load(folder / "bm25_rows.npy", mmap_mode="r")
        self._starts = np.load(folder / "bm25_starts.npy", mmap_mode="r")
        self._terms = sqlite3.connect(
            f"file:{folder / 'bm25_terms.sqlite'}?mode=ro", uri=True, check_same_thread=False
        )
        self._passages = passages

    def scores(self, query: Sequence[str]) -> np.ndarray:
        scores = np.zeros(self._passages, dtype=np.float32)
        counts = Counter(query)  # rank-bm25 adds a repeated query term once per repetition
        found = self._terms.execute(
            f"SELECT term, col FROM terms WHERE term IN ({','.join('?' * len(counts))})", list(counts)
        ).fetchall()
        for term, column in found:
            start, end = int(self._starts[column]), int(self._starts[column + 1])
            rows = self._rows[start:end]
            scores[rows] += counts[term] * self._weights[start:end]
        return scores

    @staticmethod
    def build(corpus: Sequence[Sequence[str]], folder: Path) -> None:
        """Write the weights of ``corpus`` (each passage's tokens) into ``folder``."""
        n = len(corpus)
        lengths = np.array([len(tokens) for tokens in corpus], dtype=np.float64)
        average = float(lengths.mean()) if n else 0.0
        postings: dict[str, list[tuple[int, int]]] = {}
        for row, tokens in enumerate(corpus):
            for term, freq in Counter(tokens).items():
                postings.setdefault(term, []).append((row, freq))
        # rank-bm25's idf: log(N - df + 0.5) - log(df + 0.5), negatives raised to eps * the mean idf.
        idf = {term: math.log(n - len(p) + 0.5) - math.log(len(p) + 0.5) for term, p in postings.items()}
        floor = EPSILON * (sum(idf.values()) / len(idf)) if idf else 0.0
        terms = sorted(postings)
        starts = np.zeros(len(terms) + 1, dtype=np.int64)
        total = sum(len(postings[t]) for t in terms)
        rows = np.empty(total, dtype=np.int32)
        weights = np.empty(total, dtype=np.float32)
        at = 0
        for column, term in enumerate(terms):
            entries = np.array(postings[term], dtype=np.int64)
            counts = entries[:, 1].astype(np.float64)
            length = lengths[entries[:, 0]]
            term_idf = idf[term] if idf[term] >= 0 else floor
            weight = term_idf * (counts * (K1 + 1)) / (counts + K1 * (1 - B + B * length / average))
            end = at + len(entries)
            rows[at:end], weights[at:end] = entries[:, 0], weight
            starts[column + 1] = end
            at = end
        np.save(folder / "bm25_weights.npy", weights)
        np.save(folder / "bm25_rows.npy", rows)
        np.save(folder / "bm25_starts.npy", starts)
        with sqlite3.connect(folder / "bm25_terms.sqlite") as db:
            db.execute("CREATE TABLE terms (term TEXT PRIMARY KEY, col INTEGER NOT NULL) WITHOUT ROWID")
            db.executemany("INSERT INTO terms VALUES (?, ?)", ((t, c) for c, t in enumerate(terms)))
        (folder / "bm25.json").write_text(json.dumps({"terms": len(terms), "postings": total}))

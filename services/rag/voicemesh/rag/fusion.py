"""Fusing the dense and keyword lists into one order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RRF_K = 60  # the constant of Cormack et al.'s reciprocal-rank fusion


def reciprocal_rank(ranked: Sequence[tuple[np.ndarray, float]]) -> dict[int, float]:
    """Σ weight / (RRF_K + rank) over the lists each row is in (``ranked``: rows best first, weight)."""
    fused: dict[int, float] = {}
    for rows, weight in ranked:
        for rank, row in enumerate(rows.tolist(), start=1):
            fused[row] = fused.get(row, 0.0) + weight / (RRF_K + rank)
    return fused


def weighted(rows: np.ndarray, scored: Sequence[tuple[np.ndarray, float]]) -> dict[int, float]:
    """Σ weight * standardised score: each list's scores (given for every one of ``rows``) are
    centred and scaled over ``rows``, so cosines and BM25 values add up on one scale."""
    total = np.zeros(len(rows), dtype=np.float64)
    for scores, weight in scored:
        spread = float(scores.std())
        if spread > 0:
            total += weight * (scores - scores.mean()) / spread
    return dict(zip(rows.tolist(), total.tolist(), strict=True))

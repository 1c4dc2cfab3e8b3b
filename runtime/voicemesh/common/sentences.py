"""Incremental sentence boundary detection for text that arrives in pieces.

Both the core (sentence marks) and TTS (speak each sentence as soon as it is complete) use it, so a
reply is cut the same way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Terminal punctuation, optional closing quotes/brackets, then whitespace: the whitespace is what
# proves the sentence ended (a "." may still be followed by "5" in "3.5").
_BOUNDARY = re.compile(r"[.!?…]+[\"'\u201d\u2019)\]]*\s+|\n\s*")
_CLAUSE = re.compile(r"[,;:]\s+")
# Words a speaker naturally pauses before: the first piece may end just ahead of one.
_CONNECTIVE = re.compile(
    r"\s+(?=(?:that|which|who|because|when|where|while|with|and|but|so|although|since|if|until)\s)",
    re.IGNORECASE,
)
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "a.m",
        "p.m",
        "no",
        "approx",
        "dept",
        "est",
        "fig",
        "inc",
        "ltd",
        "co",
    ]
)


# A boundary that began in text already scanned is found again from this far back.
_LOOKBACK = 32
# Longest piece handed on without an end in sight: text with no punctuation is cut at a space, so
# synthesis never gets one unbounded "sentence" (and no push rescans more than this).
MAX_SENTENCE_CHARS = 400


def _cut(text: str) -> tuple[list[str], str]:
    """Pieces of at most MAX_SENTENCE_CHARS cut off the front of ``text`` at spaces, and the rest."""
    text = text.lstrip()
    pieces = []
    while len(text) > MAX_SENTENCE_CHARS:
        cut = text.rfind(" ", 0, MAX_SENTENCE_CHARS) + 1 or MAX_SENTENCE_CHARS
        pieces.append(text[:cut].strip())
        text = text[cut:].lstrip()
    return pieces, text


def _ends_with_abbreviation(text: str) -> bool:
    words = text.rstrip(".").rsplit(None, 1)
    if not words:
        return False
    last = words[-1].lower()
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())


class SentenceSplitter:
    """Feed text deltas; get back each sentence once its end is certain.

    With ``first_clause_words``, the first piece may end at a comma, semicolon or colon once it has
    that many words, or before a connective ("that", "because", "with" …) once it has two more:
    speech can start on "In the heart of a bustling market," or "The story is a classic romance"
    instead of waiting for a long first sentence to be written and synthesized whole.
    """

    def __init__(self, first_clause_words: int = 0) -> None:
        self._buffer = ""
        self._first_clause_words = first_clause_words

    def push(self, delta: str) -> Iterator[str]:
        # Only the new text (and a little before it) can hold a new boundary: one-character deltas
        # cost each push the delta, not the whole unfinished sentence again.
        scan_from = max(0, len(self._buffer) - _LOOKBACK)
        self._buffer += delta
        if self._first_clause_words:
            yield from self._first_clause()
            scan_from = 0
        start = 0
        for match in _BOUNDARY.finditer(self._buffer, scan_from):
            candidate = self._buffer[start : match.end()].strip()
            if match.group().startswith(".") and _ends_with_abbreviation(candidate):
                continue
            pieces, rest = _cut(candidate)
            yield from pieces
            if rest:
                yield rest
            start = match.end()
        pieces, self._buffer = _cut(self._buffer[start:])
        if pieces:
            self._first_clause_words = 0
            yield from pieces

    def _first_clause(self) -> Iterator[str]:
        sentence_end = _BOUNDARY.search(self._buffer)
        limit = sentence_end.start() if sentence_end is not None else len(self._buffer)
        cuts = [(m.end(), self._first_clause_words) for m in _CLAUSE.finditer(self._buffer, 0, limit + 1)]
        cuts += [
            (m.end(), self._first_clause_words + 2) for m in _CONNECTIVE.finditer(self._buffer, 0, limit)
        ]
        for cut, needed in sorted(cuts):
            clause = self._buffer[:cut].strip()
            if len(clause.split()) >= needed:
                self._first_clause_words = 0
                self._buffer = self._buffer[cut:]
                yield clause
                return
        if sentence_end is not None:
            self._first_clause_words = 0  # the first sentence is short: no clause to cut

    @property
    def unfinished(self) -> str:
        """Text pushed after the last boundary, not yet part of a sentence given out."""
        return self._buffer

    def flush(self) -> Iterator[str]:
        rest, self._buffer = self._buffer.strip(), ""
        if rest:
            yield rest


def split_sentences(text: str) -> list[str]:
    splitter = SentenceSplitter()
    return [*splitter.push(text), *splitter.flush()]

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


def _ends_with_abbreviation(text: str) -> bool:
    words = text.rstrip(".").rsplit(None, 1)
    if not words:
        return False
    last = words[-1].lower()
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())


class SentenceSplitter:
    """Feed text deltas; get back each sentence once its end is certain."""

    def __init__(self) -> None:
        self._buffer = ""

    def push(self, delta: str) -> Iterator[str]:
        self._buffer += delta
        start = 0
        for match in _BOUNDARY.finditer(self._buffer):
            candidate = self._buffer[start : match.end()].strip()
            if match.group().startswith(".") and _ends_with_abbreviation(candidate):
                continue
            if candidate:
                yield candidate
            start = match.end()
        self._buffer = self._buffer[start:]

    def flush(self) -> Iterator[str]:
        rest, self._buffer = self._buffer.strip(), ""
        if rest:
            yield rest


def split_sentences(text: str) -> list[str]:
    splitter = SentenceSplitter()
    return [*splitter.push(text), *splitter.flush()]

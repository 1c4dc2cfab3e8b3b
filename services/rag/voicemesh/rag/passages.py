"""A parsed document becomes passages: a few sentences each, never across a heading, each with a
stable id and its place in the document."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from voicemesh.rag.documents import ParsedDocument

# A sentence ends at . ! ? (and what closes it) before whitespace, or at a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Passage:
    passage_id: str
    document_id: str
    heading: str
    start: int  # offsets into the document's text
    end: int
    text: str

    def embedding_text(self) -> str:
        return embedding_text(self.heading, self.text)


def embedding_text(heading: str, text: str) -> str:
    """What the embedders and BM25 see: the heading says what a short passage is about."""
    return f"{heading}: {text}" if heading else text


def split(document_id: str, document: ParsedDocument, max_words: int = 80) -> list[Passage]:
    """Sentences packed into passages of at most ``max_words`` words (a longer sentence is cut at
    that many words). The id hashes the document id, heading and text (and how often that text
    came before), so an unchanged passage keeps its id when its document is ingested again."""
    passages: list[Passage] = []
    seen: Counter[tuple[str, str]] = Counter()
    for section in document.sections:
        for start, end in _pack(document.text, section.start, section.end, max_words):
            text = document.text[start:end]
            key = (section.heading, text)
            digest = hashlib.sha1(
                f"{document_id}\0{section.heading}\0{text}\0{seen[key]}".encode(), usedforsecurity=False
            )
            seen[key] += 1
            passages.append(Passage(digest.hexdigest()[:16], document_id, section.heading, start, end, text))
    return passages


def _pack(text: str, start: int, end: int, max_words: int) -> Iterator[tuple[int, int]]:
    """(start, end) spans of whole sentences, each span at most ``max_words`` words."""
    span_start = span_end = -1
    words = 0
    for s_start, s_end in _sentences(text, start, end):
        count = len(_WORD.findall(text, s_start, s_end))
        if count > max_words:  # one sentence too long to keep whole: cut it by words
            if span_start >= 0:
                yield span_start, span_end
                span_start, words = -1, 0
            yield from _cut(text, s_start, s_end, max_words)
            continue
        if span_start >= 0 and words + count > max_words:
            yield span_start, span_end
            span_start, words = -1, 0
        if span_start < 0:
            span_start = s_start
        span_end, words = s_end, words + count
    if span_start >= 0:
        yield span_start, span_end


def _sentences(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    position = start
    for boundary in _SENTENCE_END.finditer(text, start, end):
        if boundary.start() > position:
            yield from _trimmed(text, position, boundary.start())
        position = boundary.end()
    if position < end:
        yield from _trimmed(text, position, end)


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        yield start, end


def _cut(text: str, start: int, end: int, max_words: int) -> Iterator[tuple[int, int]]:
    matches = list(_WORD.finditer(text, start, end))
    for first in range(0, len(matches), max_words):
        chunk = matches[first : first + max_words]
        yield chunk[0].start(), chunk[-1].end()

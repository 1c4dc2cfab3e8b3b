"""The parts of the given passages a reply is made from, within a word budget.

Every word of grounding is prefill the model pays before its first token: on 2 cores the embedded
135M model reads about 250 prompt tokens a second (bench/latency.py --retrieval both), so three
80-word passages would cost over a second of silence. Each passage keeps the sentences that share
the most words with the question, in their own order, until the budget is spent; the best passage
always keeps its best sentence. A larger model behind an endpoint reads fast: give it 0 (whole
passages).
"""

from __future__ import annotations

import re

from voicemesh.core.context import Source

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
WORD = re.compile(r"[a-z0-9]+")
# Words that say nothing about which sentence answers: left out of the overlap.
COMMON = frozenset(
    " ".join(
        (
            "a an and are as at be by can do does for from had has have how i in is it its me my of on",
            "or our so that the their them then there they this to was we what when where which who why",
            "will with you your",
        )
    ).split()
)


def _words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if w not in COMMON}


def fit(sources: list[Source], question: str, budget_words: int) -> list[Source]:
    """``sources`` cut to at most ``budget_words`` words in all (0: left whole), best passage first."""
    if budget_words <= 0 or sum(len(s.text.split()) for s in sources) <= budget_words:
        return sources
    asked = _words(question)
    kept: list[Source] = []
    left = budget_words
    for source in sources:
        sentences = [s for s in SENTENCE_END.split(source.text) if s.strip()]
        ranked = sorted(range(len(sentences)), key=lambda i: (-len(asked & _words(sentences[i])), i))
        chosen: list[int] = []
        for i in ranked:
            size = len(sentences[i].split())
            if size <= left:
                chosen.append(i)
                left -= size
            elif not kept and not chosen:  # the best passage keeps at least its best sentence's start
                chosen.append(i)
                sentences[i] = " ".join(sentences[i].split()[:left])
                left = 0
        if chosen:
            text = " ".join(sentences[i].strip() for i in sorted(chosen))
            kept.append(Source(source.title, source.heading, text))
        if left <= 0:
            break
    return kept

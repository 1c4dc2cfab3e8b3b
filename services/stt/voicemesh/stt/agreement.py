"""LocalAgreement-2: commit the words that two consecutive decodes of a growing window agree on.

Whisper re-reads the whole utterance each time, so a partial can change its mind about any word.
A word both of the last two hypotheses start with is unlikely to change again (Macháček et al.,
"Turning Whisper into Real-Time Transcription System", 2023); once committed it is never taken
back, so a client can act on it.

The last ``holdback`` words of a hypothesis are never committed: they lie at the edge of the audio,
where a word may be cut in half, and two decodes can agree on the same wrong guess there ("apples,
I love" for "apples, a loaf" was seen twice in a row).
"""

from __future__ import annotations

import re


def _key(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


class LocalAgreement:
    def __init__(self, holdback: int = 2) -> None:
        self._holdback = holdback
        self.committed: list[str] = []
        self._previous: list[str] = []

    def update(self, hypothesis: list[str]) -> list[str]:
        """Take a new hypothesis; return the partial to show: committed words, then its tail."""
        agreed = 0
        settled = hypothesis[: max(0, len(hypothesis) - self._holdback)]
        for mine, theirs in zip(self._previous, settled, strict=False):
            if _key(mine) != _key(theirs):
                break
            agreed += 1
        if agreed > len(self.committed) and all(
            _key(a) == _key(b) for a, b in zip(self.committed, hypothesis, strict=False)
        ):
            self.committed = self.committed + hypothesis[len(self.committed) : agreed]
        self._previous = hypothesis
        keep = len(self.committed)
        if [_key(w) for w in hypothesis[:keep]] == [_key(w) for w in self.committed]:
            return self.committed + hypothesis[keep:]
        return list(self.committed)  # the new decode disagrees with what was promised: show only that

"""How long a spoken reply runs: a sentence budget, and a token budget that ends on a sentence."""

from __future__ import annotations

import re

from voicemesh.common.sentences import SentenceSplitter

# Tokens a reply may run past its token budget to reach the end of its sentence.
SENTENCE_GRACE_TOKENS = 48
_WORD_REST = re.compile(r"\S+")  # the rest of a word under way, where the text goes on without a space


class ReplyBudget:
    """Where a reply stops: after its sentence budget ("sentences"), or past its token budget at the
    next sentence end ("length"; within SENTENCE_GRACE_TOKENS, else at the end of the word under
    way). Text past the stop is never let out, so speech never stops mid-word."""

    def __init__(self, sentences: int, tokens: int) -> None:
        self._sentences = sentences
        self._tokens = tokens
        self._splitter = SentenceSplitter()
        self._text = ""  # everything the model wrote
        self._out = 0  # how much of it has been let out
        self._sentence_end = 0  # where the last finished sentence ends in it
        self.count = 0  # sentences finished
        self.generated = 0
        self.stopped = ""  # why the budget ended the reply; empty while it runs

    def push(self, text: str) -> tuple[str, list[str]]:
        """The part of ``text`` to let out now, and the sentences it finishes."""
        self.generated += 1
        over = self.generated > self._tokens
        self._text += text
        finished = []
        for sentence in list(self._splitter.push(text)):
            finished.append(sentence)
            self.count += 1
            found = self._text.find(sentence, self._sentence_end)
            self._sentence_end = found + len(sentence) if found >= 0 else len(self._text)
            if over or self.count == self._sentences:
                self.stopped = "length" if over else "sentences"
                return self._let_out(self._sentence_end), finished
        if not over:
            return self._let_out(len(self._text)), finished
        if self.generated < self._tokens + SENTENCE_GRACE_TOKENS:
            return "", finished  # held until its sentence ends
        self.stopped = "length"  # no sentence end in sight: finish the word under way, and stop
        word = _WORD_REST.match(self._text, self._out)
        return self._let_out(word.end() if word else self._out), finished

    def flush(self) -> tuple[str, list[str]]:
        """At the model's own end: the text still held, and the last sentence."""
        if self.stopped:
            return "", []
        return self._let_out(len(self._text)), list(self._splitter.flush())

    def _let_out(self, upto: int) -> str:
        text, self._out = self._text[self._out : upto], max(self._out, upto)
        return text

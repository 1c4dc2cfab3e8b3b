"""Whether a pause ends the turn: the sound of the speech and the words, judged together. No gRPC.

Silence alone ends a turn too early for a person who breathes mid-sentence and too late for one who
has plainly finished. In semantic mode each pause of ``speech_pad_ms`` is judged once: Smart Turn's
probability from the audio, and the transcript decoded in that same pause. The words only veto:
an utterance that stops on "and", "for", "the" or "um" (or on a comma) is unfinished whatever its
intonation; otherwise the audio model decides, and a pause that only sounded unfinished is heard
once more when it is as long as a fixed endpoint's silence. (A question mark settles nothing: Whisper tiny
puts one after a fragment as readily as it hears a "you?" in the silence after one.) A turn
judged unfinished waits for more speech up to ``max_wait_ms`` of silence; if none comes, it ends
there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Mode(Enum):
    FIXED = "fixed"
    SEMANTIC = "semantic"


@dataclass(frozen=True)
class Semantic:
    """A semantic stream's settings."""

    threshold: float  # Smart Turn probability at or over which a pause can end the turn
    second_look_after: int  # samples of pause at which one that sounded unfinished is heard again


# Words a finished English sentence does not end on: conjunctions, prepositions, articles,
# possessives, auxiliaries that need a verb, and fillers.
TRAILING = frozenset(
    """
    and or but so because if when while although though unless until than that which who whose
    whom where whether as since after before
    for to of in on at by with from into onto about over under between through during without
    against toward towards upon like
    a an the my your his her its our their this these those some any every each no
    is are was were am be been being do does did have has had can could will would shall should
    may might must
    um uh er erm hmm
    """.split()  # noqa: SIM905 (a word list reads best as words)
)
_WORD = re.compile(r"[a-z']+")


@dataclass(frozen=True)
class Judgement:
    complete: bool
    reason: str  # "words_unfinished", "sound_complete" or "sound_unfinished"
    probability: float


def unfinished(text: str) -> bool:
    """Whether the words plainly stop before the sentence does."""
    stripped = text.strip()
    if not stripped or stripped.endswith((",", "-", "—", "…", "...", ":")):
        return True
    words = _WORD.findall(stripped.lower())
    return not words or words[-1] in TRAILING


def judge(probability: float, text: str, semantic: Semantic) -> Judgement:
    """The pause's verdict from Smart Turn's ``probability`` and the transcript decoded in it."""
    if unfinished(text):
        return Judgement(False, "words_unfinished", probability)
    if probability >= semantic.threshold:
        return Judgement(True, "sound_complete", probability)
    return Judgement(False, "sound_unfinished", probability)

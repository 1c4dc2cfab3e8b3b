from __future__ import annotations

from voicemesh.common.sentences import SentenceSplitter, split_sentences


def test_sentences_are_released_only_when_their_end_is_certain() -> None:
    splitter = SentenceSplitter()
    assert list(splitter.push("It costs 3.")) == []
    assert list(splitter.push("5 euros. Dr. Smith")) == ["It costs 3.5 euros."]
    assert list(splitter.push(" agrees! Really")) == ["Dr. Smith agrees!"]
    assert list(splitter.flush()) == ["Really"]


def test_quotes_newlines_and_abbreviations() -> None:
    text = 'He said "stop." Then left.\nNew line e.g. this one? Yes'
    assert split_sentences(text) == ['He said "stop."', "Then left.", "New line e.g. this one?", "Yes"]


def test_the_first_piece_may_end_at_a_clause_so_speech_starts_sooner() -> None:
    splitter = SentenceSplitter(first_clause_words=4)
    assert list(splitter.push("In the heart of a market,")) == []  # no space yet: "," could be "3,5"
    assert list(splitter.push(" where dragons roamed, there lived")) == ["In the heart of a market,"]
    assert list(splitter.push(" Zephyr, a dragon. Then, he flew. ")) == [
        "where dragons roamed, there lived Zephyr, a dragon.",  # only the first piece is a clause
        "Then, he flew.",
    ]
    short = SentenceSplitter(first_clause_words=4)
    assert list(short.push("Yes, it is. Well, I think so, and more. ")) == [
        "Yes, it is.",  # too few words before the comma: the sentence goes whole
        "Well, I think so, and more.",
    ]


def test_a_long_first_sentence_may_end_before_a_connective() -> None:
    splitter = SentenceSplitter(first_clause_words=4)
    text = "The story of Romeo and Juliet is a classic romance that has been filmed often. It is sad. "
    assert list(splitter.push(text)) == [
        "The story of Romeo and Juliet is a classic romance",  # "and" came after only 3 words
        "that has been filmed often.",
        "It is sad.",
    ]
    waiting = SentenceSplitter(first_clause_words=4)
    assert list(waiting.push("I think the answer is clearly tha")) == []  # "tha…" may be "thatch"


def test_text_in_one_character_deltas_is_cut_as_if_it_came_whole_and_in_bounded_work() -> None:
    import time
    from pathlib import Path

    from voicemesh.common.sentences import MAX_SENTENCE_CHARS

    text = " ".join(Path("/usr/share/common-licenses/GPL-3").read_text().split())[:20_000]
    for first_clause_words in (0, 4):
        whole = SentenceSplitter(first_clause_words)
        at_once = [*whole.push(text), *whole.flush()]
        piecewise = SentenceSplitter(first_clause_words)
        pieces = [s for c in text for s in piecewise.push(c)] + list(piecewise.flush())
        assert pieces == at_once and len(pieces) > 100
    # 32,000 characters with no sentence end, one at a time (a reply that never stops): pieces no
    # longer than the cap, cut at spaces; the review timed the old splitter at 37 s on this.
    splitter = SentenceSplitter(first_clause_words=4)
    started = time.monotonic()
    endless = [s for c in ("word " * 6400) for s in splitter.push(c)] + list(splitter.flush())
    assert time.monotonic() - started < 5.0
    assert all(len(p) <= MAX_SENTENCE_CHARS and p.endswith("word") for p in endless)
    assert " ".join(endless) == ("word " * 6400).strip()

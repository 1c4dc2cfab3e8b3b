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

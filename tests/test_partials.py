"""Partial transcripts (LocalAgreement-2) and per-stream endpointing, over real gRPC."""

from __future__ import annotations

import asyncio
import itertools
import re

import grpc
import numpy as np
import pytest

from voicemesh.client.sdk import AsyncClient, wav_chunks
from voicemesh.common.audio import WavAudio
from voicemesh.common.samples import float_to_pcm16
from voicemesh.stt.agreement import LocalAgreement
from voicemesh.v1 import speech_to_text_pb2 as pb

LONG = (
    "Yesterday I went to the market to buy some apples, a loaf of bread, "
    "and a bottle of olive oil for the salad."
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def test_local_agreement_commits_what_two_decodes_share_and_never_takes_it_back() -> None:
    agreement = LocalAgreement(holdback=0)
    assert agreement.update(["Yes,", "true."]) == ["Yes,", "true."]
    assert agreement.committed == []
    assert agreement.update(["Yesterday", "I", "went"]) == ["Yesterday", "I", "went"]
    assert agreement.committed == []
    agreement.update(["Yesterday", "I", "went", "to", "the"])
    assert agreement.committed == ["Yesterday", "I", "went"]
    # Punctuation and case do not count as disagreement.
    agreement.update(["yesterday", "I", "went", "to", "the,", "market"])
    assert agreement.committed == ["Yesterday", "I", "went", "to", "the,"]
    # A decode that contradicts committed words shows only what was promised, and commits nothing.
    assert agreement.update(["Yes", "today"]) == ["Yesterday", "I", "went", "to", "the,"]
    assert agreement.committed == ["Yesterday", "I", "went", "to", "the,"]


def test_local_agreement_holds_back_the_words_at_the_edge_of_the_audio() -> None:
    agreement = LocalAgreement(holdback=2)
    agreement.update(["to", "buy", "some", "apples,", "I", "love"])
    agreement.update(["to", "buy", "some", "apples,", "I", "love"])  # the same guess at a cut word
    assert agreement.committed == ["to", "buy", "some", "apples,"]
    agreement.update(["to", "buy", "some", "apples,", "a", "loaf", "of", "bread"])
    assert agreement.committed == ["to", "buy", "some", "apples,"]


async def test_partials_grow_while_the_user_speaks_and_come_before_the_final(stt_stream, speak) -> None:  # type: ignore[no-untyped-def]
    speech = speak(LONG)
    config = pb.RecognitionConfig(interim_results=True)
    responses = await stt_stream(speech.pcm, config, pace=1.0)  # as a microphone would
    results = [r.result for r in responses if r.WhichOneof("event") == "result"]
    partials, finals = [r for r in results if not r.is_final], [r for r in results if r.is_final]
    assert len(finals) == 1 and results[-1].is_final
    assert len(partials) >= 4, [p.transcript for p in partials]
    final = words(finals[0].transcript)
    committed = [words(p.committed_transcript) for p in partials]
    for earlier, later in itertools.pairwise(committed):
        assert later[: len(earlier)] == earlier  # committed words are never taken back
    assert len(committed[-1]) >= len(final) // 2  # most of it was settled before the end
    # The final decode hears the whole utterance and may still correct a committed word (tiny.en
    # has committed "apples, I love" twice running for "apples, a loaf"), but not many.
    same = sum(a == b for a, b in zip(final, committed[-1], strict=False))
    assert same >= 0.8 * len(committed[-1]), (committed[-1], final)
    for partial in partials:
        assert 0.0 <= partial.stability <= 1.0
        assert words(partial.transcript)[: len(words(partial.committed_transcript))] == words(
            partial.committed_transcript
        )
    ends = [p.audio_end_s for p in partials]
    assert ends == sorted(ends) and ends[-1] <= finals[0].audio_end_s + 0.6


async def test_no_partials_unless_asked(stt_stream, speak) -> None:  # type: ignore[no-untyped-def]
    responses = await stt_stream(speak(LONG).pcm, pb.RecognitionConfig())
    assert all(r.result.is_final for r in responses if r.WhichOneof("event") == "result")


async def test_endpointing_is_tuned_per_stream(stt_stream, speak_trimmed) -> None:  # type: ignore[no-untyped-def]
    gap = np.zeros(int(0.35 * 16_000), dtype=np.float32)
    pad = np.zeros(8_000, dtype=np.float32)
    parts = [
        pad,
        speak_trimmed("Open the window."),
        gap,
        speak_trimmed("Close the door."),
        pad,
    ]
    pcm = float_to_pcm16(np.concatenate(parts))

    async def finals(endpointing: pb.Endpointing) -> list[str]:
        config = pb.RecognitionConfig(endpointing=endpointing)
        responses = await stt_stream(pcm, config)
        return [" ".join(words(r.result.transcript)) for r in responses if r.WhichOneof("event") == "result"]

    fixed = pb.ENDPOINTING_MODE_FIXED
    assert await finals(pb.Endpointing(mode=fixed)) == ["open the window close the door"]  # 350 < 500 ms
    assert await finals(pb.Endpointing(mode=fixed, min_silence_ms=200)) == [
        "open the window",
        "close the door",
    ]
    # Semantic (the default): two finished commands are two turns, 350 ms apart or not.
    assert await finals(pb.Endpointing()) == ["open the window", "close the door"]


async def test_a_long_utterance_is_cut_at_max_utterance_s(stt_stream, speak) -> None:  # type: ignore[no-untyped-def]
    config = pb.RecognitionConfig(endpointing=pb.Endpointing(max_utterance_s=2))
    responses = await stt_stream(speak(LONG).pcm, config)
    results = [r.result for r in responses if r.WhichOneof("event") == "result"]
    assert len(results) >= 3
    assert all(r.audio_end_s - r.audio_start_s <= 2.3 for r in results)


@pytest.mark.parametrize(
    ("endpointing", "message"),
    [
        (pb.Endpointing(min_silence_ms=50), "endpointing.min_silence_ms 50 is out of range"),
        (pb.Endpointing(max_utterance_s=120), "endpointing.max_utterance_s 120 is out of range"),
    ],
)
async def test_bad_endpointing_is_refused(stt_stream, endpointing, message) -> None:  # type: ignore[no-untyped-def]
    # Config only: audio written while the server is refusing the config can race its status, and
    # grpc-python then reports the failed write (INTERNAL) instead of the server's answer.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stt_stream(b"", pb.RecognitionConfig(endpointing=endpointing))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")


async def test_gateway_relays_partials_and_answers_once(mesh, speak) -> None:  # type: ignore[no-untyped-def]
    speech = speak(LONG)

    async def paced():  # type: ignore[no-untyped-def]
        for chunk in wav_chunks(WavAudio(speech.pcm, speech.sample_rate_hz)):
            yield chunk
            await asyncio.sleep(0.05)

    transcripts, kinds = [], []
    async with AsyncClient(mesh.gateway, timeout_s=120) as client:
        async for event in client.converse(paced(), speak=False, interim_results=True):
            kinds.append(event.WhichOneof("event"))
            if kinds[-1] == "transcript":
                transcripts.append(event.transcript)
    assert [t.is_final for t in transcripts].count(True) == 1 and transcripts[-1].is_final
    assert len(transcripts) >= 3
    assert kinds.count("turn_done") == 1

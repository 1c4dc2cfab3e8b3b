"""Real-time conversation through the running mesh: barge-in, preemptive replies, metrics, traces."""

from __future__ import annotations

import re

import numpy as np
import pytest

from voicemesh.client.live import RATE_HZ, LiveCall
from voicemesh.common.metrics import scrape
from voicemesh.common.samples import float_to_pcm16
from voicemesh.gateway.conversation import same_words
from voicemesh.listening.segmenter import Segmenter, SegmenterConfig, SpeechStart, Utterance
from voicemesh.listening.vad import SileroVad
from voicemesh.rpc.launcher import gateway_channel
from voicemesh.v1 import gateway_pb2 as pb
from voicemesh.v1 import speech_to_text_pb2 as stt_pb

LONG_QUESTION = "Tell me a long story about a brave knight and a dragon."
INTERRUPTION = "What time is it right now?"


def silence(seconds: float) -> bytes:
    return b"\0\0" * int(seconds * RATE_HZ)


def reply_config(**endpointing: int) -> pb.ConverseConfig:
    return pb.ConverseConfig(
        reply=pb.ReplyConfig(synthesize_audio=True), endpointing=stt_pb.Endpointing(**endpointing)
    )


def is_(kind: str, turn: int) -> object:
    return lambda heard: heard.kind == kind and heard.turn == turn


def test_a_sound_shorter_than_min_speech_makes_no_utterance(speak_trimmed) -> None:  # type: ignore[no-untyped-def]
    vad = SileroVad()
    burst = speak_trimmed("Hey!")[: RATE_HZ // 10]  # 100 ms of voice: a cough's worth
    audio = np.concatenate([np.zeros(8000, np.float32), burst, np.zeros(RATE_HZ, np.float32)])

    def events(min_speech_ms: int) -> list[object]:
        segmenter = Segmenter(vad.stream(), SegmenterConfig(min_speech_ms=min_speech_ms))
        return [*segmenter.push(audio), *segmenter.flush()]

    assert events(200) == []
    heard = events(32)  # the same burst does reach the VAD: only the minimum keeps it out
    assert [type(e) for e in heard] == [SpeechStart, Utterance]


def test_same_words_ignores_case_and_punctuation() -> None:
    assert same_words("What time is it?", "what time is it")
    assert not same_words("What time is it?", "What time is it now?")


async def test_speaking_over_the_reply_stops_it_and_cancels_its_work(mesh, speak_trimmed) -> None:  # type: ignore[no-untyped-def]
    before = {name: scrape(address) for name, address in mesh.metrics.items()}
    config = reply_config()
    config.reply.max_sentences = 50  # still being written when its first sentence plays, on any box
    async with gateway_channel(mesh.gateway) as channel, LiveCall(channel, config) as call:
        call.say(silence(0.3) + float_to_pcm16(speak_trimmed(LONG_QUESTION)))
        await call.wait(is_("reply_audio", 0), timeout_s=60)  # the reply is playing
        call.say(float_to_pcm16(speak_trimmed(INTERRUPTION)))
        await call.wait(is_("turn_done", 1), timeout_s=60)
        await call.finish(0.2)
    after = {name: scrape(address) for name, address in mesh.metrics.items()}

    onset = call.of("speech_started", 1)[0]
    (interrupted,) = call.of("interrupted", 0)
    assert interrupted.at - onset.at <= 0.1  # stop playback within 100 ms of the detected onset
    event = interrupted.response.interrupted
    assert event.by_utterance_index == 1 and event.audio_sent_s > 0 and event.reply_text
    # Nothing of the old reply after the stop, and it never completes.
    position = call.events.index(interrupted)
    assert not [h for h in call.events[position + 1 :] if h.turn == 0]
    assert not call.of("turn_done", 0)
    # The new turn is the interruption, answered whole.
    final = next(h for h in call.of("transcript", 1) if h.response.transcript.is_final)
    assert same_words(final.response.transcript.transcript, INTERRUPTION)
    assert call.of("reply_audio", 1)

    def grew(service: str, metric: str) -> float:
        return after[service].get(metric, 0.0) - before[service].get(metric, 0.0)

    # The services stopped the work itself: the llama.cpp generation and the piper stream, counted
    # by the services where the work ends, and the calls ended as CANCELLED.
    assert grew("gateway", "voicemesh_barge_ins_total") == 1
    assert grew("core", 'voicemesh_work_stopped_total{kind="llama"}') >= 1
    assert grew("tts", 'voicemesh_work_stopped_total{kind="synthesis"}') >= 1
    assert grew("core", 'voicemesh_rpcs_total{code="CANCELLED",method="Core/Respond"}') >= 1


@pytest.mark.parametrize(("min_speech_ms", "interrupts"), [(0, False), (32, True)])
async def test_a_short_noise_does_not_interrupt_unless_the_minimum_allows_it(  # type: ignore[no-untyped-def]
    mesh, speak_trimmed, min_speech_ms: int, interrupts: bool
) -> None:
    burst = float_to_pcm16(speak_trimmed("Hey!")[: RATE_HZ // 10])
    config = reply_config(min_speech_ms=min_speech_ms) if min_speech_ms else reply_config()
    async with gateway_channel(mesh.gateway) as channel, LiveCall(channel, config) as call:
        call.say(silence(0.3) + float_to_pcm16(speak_trimmed(LONG_QUESTION)))
        await call.wait(is_("reply_audio", 0), timeout_s=60)
        call.say(burst + silence(1.0))
        await call.wait(lambda h: h.turn == 0 and h.kind in ("interrupted", "turn_done"), timeout_s=60)
        await call.finish()
    assert bool(call.of("interrupted", 0)) is interrupts
    assert bool(call.of("speech_started", 1)) is interrupts


async def test_partials_speculation_and_a_preemptive_reply_in_one_turn(mesh, speak_trimmed) -> None:  # type: ignore[no-untyped-def]
    before = scrape(mesh.metrics["gateway"])
    config = reply_config(min_silence_ms=1000)  # room in the pause for the speculative decode
    config.interim_results = True
    question = "Yesterday I went to the market to buy some apples. What should I cook with them?"
    async with gateway_channel(mesh.gateway) as channel, LiveCall(channel, config) as call:
        call.say(silence(0.3) + float_to_pcm16(speak_trimmed(question)))
        await call.wait(is_("turn_done", 0), timeout_s=90)
        await call.finish()
    results = [h.response.transcript for h in call.of("transcript", 0)]
    final_at = next(i for i, r in enumerate(results) if r.is_final)
    assert final_at >= 2 and not any(r.is_final for r in results[:final_at])  # partials came first
    speculative = [r for r in results if r.speculative]
    assert speculative and same_words(speculative[-1].transcript, results[final_at].transcript)
    # The reply began on the speculative transcript and was kept when the final one matched it.
    grown = scrape(mesh.metrics["gateway"])
    kept = 'voicemesh_preemptive_turns_total{outcome="kept"}'
    assert grown.get(kept, 0) - before.get(kept, 0) == 1
    timings = call.of("turn_done", 0)[0].response.turn_done.timings
    assert 0 < timings.final_transcript_ms <= timings.first_token_ms <= timings.first_audio_ms


async def test_every_process_exports_metrics(mesh) -> None:  # type: ignore[no-untyped-def]
    for service in ("gateway", "stt", "core", "tts"):
        metrics = scrape(mesh.metrics[service])
        assert metrics["process_resident_memory_bytes"] > 10e6
        assert any(name.startswith("voicemesh_rpcs_total{") for name in metrics), service
    gateway = scrape(mesh.metrics["gateway"])
    for stage in ("final_transcript", "first_token", "first_sentence", "first_audio"):
        assert gateway[f'voicemesh_stage_seconds_count{{stage="gateway.{stage}"}}'] >= 1
    assert scrape(mesh.metrics["core"])['voicemesh_tokens_generated_total{tier="local"}'] > 0
    assert any(re.match(r'voicemesh_active_rpcs\{method="Gateway/Converse"\}', n) for n in gateway)


async def test_one_turn_is_one_trace_across_every_service(mesh, otlp_collector, speak_trimmed) -> None:  # type: ignore[no-untyped-def]
    config = reply_config()
    config.request_id = "trace-me"
    async with gateway_channel(mesh.gateway) as channel, LiveCall(channel, config) as call:
        call.say(silence(0.3) + float_to_pcm16(speak_trimmed("What is the capital of France?")))
        await call.wait(is_("turn_done", 0), timeout_s=60)
        await call.finish()

    def traced() -> dict[str, set[str]] | None:
        turn = [
            s
            for _, s in otlp_collector.spans()
            if s.name == "turn" and _attr(s, "voicemesh.request_id") == "trace-me.0"
        ]
        if not turn:
            return None
        trace_id = turn[0].trace_id
        services: dict[str, set[str]] = {}
        for service, span in otlp_collector.spans():
            if span.trace_id == trace_id:
                services.setdefault(service, set()).add(span.name)
        return services

    services = await otlp_collector.wait_for(lambda: (s := traced()) is not None and len(s) == 5 and s)
    assert services["voicemesh-gateway"] >= {"Gateway/Converse", "turn"}
    assert any(name.endswith("/Search") for name in services["voicemesh-rag"])  # the grounding
    assert "SpeechToText/StreamingRecognize" in services["voicemesh-stt"]
    assert "Core/Respond" in services["voicemesh-core"]
    assert "TextToSpeech/StreamingSynthesize" in services["voicemesh-tts"]


def _attr(span: object, key: str) -> str | None:
    for attribute in span.attributes:  # type: ignore[attr-defined]
        if attribute.key == key:
            return str(attribute.value.string_value)
    return None

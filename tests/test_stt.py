"""Speech-to-text over real gRPC: piper speaks, Silero segments, Whisper transcribes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import jiwer
import pytest
from conftest import busy_cores
from prometheus_client import REGISTRY

from voicemesh.stt.recognizer import WhisperRecognizer
from voicemesh.v1 import audio_pb2
from voicemesh.v1 import speech_to_text_pb2 as pb
from voicemesh.v1 import speech_to_text_pb2_grpc as pb_grpc

SENTENCES = [
    "The weather in Berlin is cold and rainy today.",
    "Please turn off the lights in the kitchen.",
    "My favourite book was written by a famous author from Ireland.",
]


def requests(
    pcm: bytes, rate: int, channels: int = 1, chunk_ms: int = 100
) -> Iterator[pb.StreamingRecognizeRequest]:
    fmt = audio_pb2.AudioFormat(
        encoding=audio_pb2.AUDIO_ENCODING_LINEAR16, sample_rate_hz=rate, channels=channels
    )
    yield pb.StreamingRecognizeRequest(config=pb.RecognitionConfig(audio_format=fmt, request_id="t-1"))
    step = rate * chunk_ms // 1000 * 2 * channels
    for offset in range(0, len(pcm), step):
        yield pb.StreamingRecognizeRequest(audio_content=pcm[offset : offset + step])


def normalise(text: str) -> str:
    return jiwer.RemovePunctuation()(text.lower()).replace("favorite", "favourite").strip()


async def recognize(
    channel: grpc.aio.Channel, pcm: bytes, rate: int, channels: int = 1
) -> list[pb.StreamingRecognizeResponse]:
    stub = pb_grpc.SpeechToTextServiceStub(channel)
    return [r async for r in stub.StreamingRecognize(requests(pcm, rate, channels))]


async def test_round_trip_word_error_rate(stt_channel: grpc.aio.Channel, speak) -> None:  # type: ignore[no-untyped-def]
    hypotheses = []
    for sentence in SENTENCES:
        speech = speak(sentence)
        responses = await recognize(stt_channel, speech.pcm, speech.sample_rate_hz)
        finals = [r.result for r in responses if r.WhichOneof("event") == "result" and r.result.is_final]
        hypotheses.append(" ".join(f.transcript for f in finals))
    error = jiwer.wer([normalise(s) for s in SENTENCES], [normalise(h) for h in hypotheses])
    assert error <= 0.15, f"WER {error:.2%}: {hypotheses}"


async def test_events_carry_words_times_and_confidence(stt_channel: grpc.aio.Channel, speak) -> None:  # type: ignore[no-untyped-def]
    speech = speak("Turn on the radio.", pad_s=1.0)
    responses = await recognize(stt_channel, speech.pcm, speech.sample_rate_hz)
    kinds = [r.WhichOneof("event") for r in responses]
    assert kinds == ["speech_started", "speech_ended", "result"]
    assert all(r.request_id == "t-1" for r in responses)
    started, ended, result = responses[0].speech_started, responses[1].speech_ended, responses[2].result
    assert 0.6 < started.audio_offset_s < 1.2  # one second of silence, minus the 200 ms pad
    assert result.is_final and result.stability == 1.0
    assert 0 < result.confidence <= 1
    assert [normalise(w.word) for w in result.words] == ["turn", "on", "the", "radio"]
    starts = [w.start_s for w in result.words]
    assert (
        starts == sorted(starts)
        and started.audio_offset_s <= starts[0] < result.words[-1].end_s <= ended.audio_offset_s + 0.5
    )


@pytest.mark.parametrize(("rate", "channels"), [(8_000, 1), (22_050, 2), (44_100, 1), (48_000, 2)])
async def test_any_common_rate_and_channel_count(
    stt_channel: grpc.aio.Channel, speak, rate: int, channels: int
) -> None:  # type: ignore[no-untyped-def]
    speech = speak("Set a timer for ten minutes.", rate=rate, channels=channels)
    responses = await recognize(stt_channel, speech.pcm, rate, channels)
    text = " ".join(r.result.transcript for r in responses if r.WhichOneof("event") == "result")
    assert (
        jiwer.wer(normalise(speech.text).replace("10", "ten"), normalise(text).replace("10", "ten")) <= 0.2
    ), text


async def test_two_utterances_in_one_stream(stt_channel: grpc.aio.Channel, speak) -> None:  # type: ignore[no-untyped-def]
    first, second = speak("Good morning."), speak("What time is it?")
    responses = await recognize(stt_channel, first.pcm + second.pcm, first.sample_rate_hz)
    finals = [r.result for r in responses if r.WhichOneof("event") == "result"]
    assert [f.utterance_index for f in finals] == [0, 1]
    assert normalise(finals[1].transcript) == "what time is it"


def test_a_decode_beside_busy_cores_runs_on_one_thread_and_hears_the_same(speak_trimmed) -> None:  # type: ignore[no-untyped-def]
    recognizer = WhisperRecognizer()
    audio = speak_trimmed("Turn the kitchen lights off at nine thirty tonight.")
    alone = recognizer.transcribe(audio).text
    before = _one_thread_decodes()
    with busy_cores():
        time.sleep(1.5)  # most of what the recognizer has seen since its last decode is busy cores
        beside = recognizer.transcribe(audio).text
    assert _one_thread_decodes() == before + 1
    assert beside == alone, (alone, beside)


def _one_thread_decodes() -> float:
    return REGISTRY.get_sample_value("voicemesh_whisper_decodes_total", {"threads": "one"}) or 0.0

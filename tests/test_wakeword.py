"""Wake word, ring and gate on real models; the STT service's server-side wake word over gRPC."""

from __future__ import annotations

import re
import shutil
import tracemalloc
from pathlib import Path

import grpc
import numpy as np
import pytest

from voicemesh.common.errors import InvalidRequest
from voicemesh.common.samples import float_to_pcm16
from voicemesh.listening.gate import Closed, Gate, Opened, Passed
from voicemesh.listening.ring import SampleRing
from voicemesh.listening.vad import SileroVad
from voicemesh.listening.wakeword import WakeWordModels, bundled_models
from voicemesh.v1 import speech_to_text_pb2 as pb

RATE = 16_000


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


@pytest.fixture(scope="module")
def jarvis() -> WakeWordModels:
    return WakeWordModels(["hey_jarvis"])


def detections(models: WakeWordModels, audio: np.ndarray, chunk: int = 1280, patience: int = 2) -> list:  # type: ignore[type-arg]
    stream = models.stream(patience=patience)
    found = []
    for offset in range(0, audio.size, chunk):
        found += stream.push(audio[offset : offset + chunk])
    return found


def test_ring_keeps_the_newest_samples_by_absolute_position() -> None:
    ring = SampleRing(10)
    data = np.arange(37, dtype=np.float32)
    for start, size in [(0, 3), (3, 9), (12, 1), (13, 24)]:  # small writes, wrap-arounds, an oversized write
        ring.extend(data[start : start + size])
        assert ring.end == start + size
        assert ring.start == max(0, ring.end - 10)
        np.testing.assert_array_equal(ring.since(0), data[ring.start : ring.end])
        recent = max(0, ring.end - 4)
        np.testing.assert_array_equal(ring.since(recent), data[recent : ring.end])
    assert ring.since(ring.end).size == 0


def test_bundled_models_are_found_and_bad_names_are_explained() -> None:
    assert {"hey_jarvis", "alexa", "hey_mycroft", "hey_rhasspy"} <= set(bundled_models())
    with pytest.raises(InvalidRequest, match=r"neither a bundled model .*hey_jarvis"):
        WakeWordModels(["hey_computer"])


def test_wake_word_fires_once_at_the_end_of_the_phrase(jarvis, wake_recording) -> None:  # type: ignore[no-untyped-def]
    for chunk in (1280, 320, 4000):  # chunking must not change what is heard
        found = detections(jarvis, wake_recording.audio, chunk)
        assert [d.model for d in found] == ["hey_jarvis"]
        late_ms = (found[0].crossed_sample - wake_recording.wake_end) * 1000 / RATE
        assert -100 <= late_ms <= 300, f"crossed {late_ms:.0f} ms from the end of the phrase"
        assert found[0].end_sample == found[0].crossed_sample + 1280  # the default patience


def test_patience_fires_later_but_cuts_in_the_same_place(jarvis, wake_recording) -> None:  # type: ignore[no-untyped-def]
    (once,) = detections(jarvis, wake_recording.audio, patience=1)
    (twice,) = detections(jarvis, wake_recording.audio, patience=2)
    assert twice.end_sample == once.end_sample + 1280
    assert twice.crossed_sample == once.crossed_sample == once.end_sample


def test_speech_without_the_wake_word_does_not_fire(jarvis, wake_recording) -> None:  # type: ignore[no-untyped-def]
    # The recording with the wake phrase cut out: the same voice, the same words around it.
    rec = wake_recording
    cut = np.concatenate([rec.audio[: rec.before_end + RATE // 2], rec.audio[rec.wake_end + 2400 :]])
    assert detections(jarvis, cut) == []


def test_a_custom_model_path_is_loaded_by_its_file_name(tmp_path: Path, wake_recording) -> None:  # type: ignore[no-untyped-def]
    custom = tmp_path / "my_assistant.onnx"
    shutil.copy(bundled_models()["hey_jarvis"], custom)
    models = WakeWordModels([str(custom)])
    assert models.names == ["my_assistant"]
    assert [d.model for d in detections(models, wake_recording.audio)] == ["my_assistant"]


def test_gate_passes_only_the_command(jarvis, wake_recording) -> None:  # type: ignore[no-untyped-def]
    rec = wake_recording
    gate = Gate(SileroVad(), jarvis.stream())
    passed: list[np.ndarray] = []
    opened: list[Opened] = []
    closed: list[Closed] = []
    for offset in range(0, rec.audio.size, 1280):
        for event in gate.push(rec.audio[offset : offset + 1280]):
            if isinstance(event, Opened):
                opened.append(event)
                passed.append(event.audio)
            elif isinstance(event, Passed):
                passed.append(event.audio)
            elif isinstance(event, Closed):
                closed.append(event)
    assert len(opened) == 1 and len(closed) == 1
    assert closed[0].reason == "end_of_speech"
    start = opened[0].start_sample
    assert rec.before_end < rec.wake_end - RATE // 2 < start < rec.wake_end  # inside the phrase's tail
    sent = np.concatenate(passed)
    np.testing.assert_array_equal(sent, rec.audio[start : start + sent.size])
    assert rec.command_end < start + sent.size < rec.after_start


def test_detectors_are_shared_and_each_stream_is_small(jarvis) -> None:  # type: ignore[no-untyped-def]
    vad = SileroVad()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    gates = [Gate(vad, jarvis.stream()) for _ in range(100)]
    for gate in gates:
        gate.push(np.zeros(RATE, dtype=np.float32))  # fill every buffer once
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    per_stream = grown / len(gates)
    # The models are ~5 MB; a stream that loaded its own would be far over this.
    assert per_stream < 200 * 1024, f"{per_stream / 1024:.0f} KiB per stream"
    assert gates[0].nbytes() < 100 * 1024


async def test_stt_service_transcribes_only_what_follows_the_wake_word(stt_stream, wake_recording) -> None:  # type: ignore[no-untyped-def]
    rec = wake_recording
    # Fixed endpointing for the count: semantic endpointing also ends a turn at piper's 0.3 s comma
    # pause in "The weather was lovely yesterday, so …" (Smart Turn hears it finished).
    fixed = pb.Endpointing(mode=pb.ENDPOINTING_MODE_FIXED)
    everything = await stt_stream(rec.pcm, pb.RecognitionConfig(endpointing=fixed))
    heard = [words(r.result.transcript) for r in everything if r.WhichOneof("event") == "result"]
    assert len(heard) == 3 and "weather" in heard[0] and "meeting" in heard[2]  # all three without it

    config = pb.RecognitionConfig(request_id="w", wake_word=pb.WakeWordConfig(models=["hey_jarvis"]))
    responses = await stt_stream(rec.pcm, config)
    kinds = [r.WhichOneof("event") for r in responses]
    assert kinds == ["wake_word", "speech_started", "speech_ended", "result"]
    wake, result = responses[0].wake_word, responses[3].result
    assert wake.model == "hey_jarvis" and wake.score >= 0.5 and wake.utterance_index == 0
    assert rec.seconds(rec.wake_end) - 0.5 < wake.audio_offset_s < rec.seconds(rec.wake_end)
    assert words(result.transcript) == rec.command
    assert result.audio_start_s >= wake.audio_offset_s  # times stay those of the whole stream


async def test_stt_listens_again_after_each_command(stt_stream, wake_recording) -> None:  # type: ignore[no-untyped-def]
    rec = wake_recording
    twice = float_to_pcm16(np.concatenate([rec.audio, rec.audio]))
    config = pb.RecognitionConfig(wake_word=pb.WakeWordConfig())  # the service's default model
    responses = await stt_stream(twice, config)
    wakes = [r.wake_word for r in responses if r.WhichOneof("event") == "wake_word"]
    results = [r.result for r in responses if r.WhichOneof("event") == "result"]
    assert [w.utterance_index for w in wakes] == [0, 1]
    assert [words(r.transcript) for r in results] == [rec.command, rec.command]
    assert wakes[1].audio_offset_s > rec.audio.size / RATE


@pytest.mark.parametrize(
    ("wake", "message"),
    [
        (pb.WakeWordConfig(models=["hey_computer"]), "hey_computer not loaded here; choose from hey_jarvis"),
        (pb.WakeWordConfig(threshold=1.5), "wake_word.threshold 1.5 is out of range"),
    ],
)
async def test_stt_rejects_a_bad_wake_word_config(stt_stream, wake, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # config only, as in test_bad_endpointing…
        await stt_stream(b"", pb.RecognitionConfig(wake_word=wake))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")


def test_a_name_repeated_a_hundred_thousand_times_is_one_classifier(jarvis) -> None:  # type: ignore[no-untyped-def]
    stream = jarvis.stream(models=["hey_jarvis"] * 100_000)
    assert len(stream._classifiers) == 1
    with pytest.raises(InvalidRequest) as caught:
        jarvis.stream(models=[f"nope{i}" for i in range(100_000)])
    assert len(str(caught.value)) < 300  # the refusal names a few, not all of them

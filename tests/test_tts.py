"""Text-to-speech over real gRPC: piper, sentence by sentence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from voicemesh.v1 import text_to_speech_pb2 as pb
from voicemesh.v1 import text_to_speech_pb2_grpc as pb_grpc


async def test_first_sentence_is_spoken_before_the_last_text_arrives(tts_channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.TextToSpeechServiceStub(tts_channel)
    first_audio = asyncio.Event()
    sent_after_audio: list[str] = []

    async def requests() -> AsyncIterator[pb.StreamingSynthesizeRequest]:
        yield pb.StreamingSynthesizeRequest(config=pb.SynthesisConfig(request_id="tts-1"))
        for delta in ["Hello there", ", my friend. ", "How are"]:
            yield pb.StreamingSynthesizeRequest(text_delta=delta)
        # The rest is held back until audio for the first sentence has come out.
        await asyncio.wait_for(first_audio.wait(), timeout=30)
        for delta in [" you today?", " Fine."]:
            sent_after_audio.append(delta)
            yield pb.StreamingSynthesizeRequest(text_delta=delta)

    sentences: dict[int, str] = {}
    audio_bytes = 0
    async for response in stub.StreamingSynthesize(requests()):
        assert response.request_id == "tts-1"
        audio = response.audio
        if audio.sentence:
            sentences[audio.sentence_index] = audio.sentence
        audio_bytes += len(audio.audio_content)
        assert audio.sample_rate_hz == 22_050
        first_audio.set()
    assert sent_after_audio == [" you today?", " Fine."]
    assert sentences == {0: "Hello there, my friend.", 1: "How are you today?", 2: "Fine."}
    assert audio_bytes > 22_050 * 2  # over a second of speech


async def test_synthesize_resamples_and_marks_sentence_ends(tts_channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.TextToSpeechServiceStub(tts_channel)
    request = pb.SynthesizeRequest(config=pb.SynthesisConfig(sample_rate_hz=16_000), text="One. Two words.")
    responses = [r async for r in stub.Synthesize(request)]
    assert {r.audio.sample_rate_hz for r in responses} == {16_000}
    ends = [(r.audio.sentence_index, r.audio.sentence_end) for r in responses if r.audio.sentence_end]
    assert ends == [(0, True), (1, True)]


def test_two_voices_on_two_workers_each_phonemise_in_their_own_language(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A suspicion from review: espeak-ng's voice is process-wide, so two piper voices phonemising at
    once could swap languages. piper 1.8 holds one lock over set_voice and the phonemes (checked
    here): an English and a German voice, phonemising in parallel, always match their lone result."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from piper import PiperVoice

    from voicemesh.tts.engine import bundled_voice

    model = bundled_voice()[1]
    config = json.loads(model.with_name(model.name + ".json").read_text())
    config["espeak"]["voice"] = "de"
    german = tmp_path / "german.onnx.json"
    german.write_text(json.dumps(config))
    voices = {"en": PiperVoice.load(model), "de": PiperVoice.load(model, config_path=german)}
    text = "Guten Morgen, wie geht es dir heute?"
    alone = {name: voice.phonemize(text) for name, voice in voices.items()}
    assert alone["en"] != alone["de"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda name: (name, voices[name].phonemize(text)), ["en", "de"] * 100))
    assert all(phonemes == alone[name] for name, phonemes in results)

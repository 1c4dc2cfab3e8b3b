"""Speaker verification: a user's voice print, checked beside each utterance's transcription.

The speaker encoder is Resemblyzer's, run in numpy; the other speakers are espeak-ng's voices
(bench/voices.py). The mesh tests go through `voicemesh up`, real TLS and real tokens.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from test_auth import cli

from voicemesh.client.sdk import AsyncClient, wav_chunks
from voicemesh.common.audio import WavAudio, write_wav
from voicemesh.common.credentials import Credentials, open_channel
from voicemesh.common.metrics import scrape
from voicemesh.common.samples import float_to_pcm16
from voicemesh.rpc.provision import LocalAuthority
from voicemesh.stt.checkpoint import load_state
from voicemesh.stt.speaker import SpeakerEncoder, average, bundled_weights
from voicemesh.v1 import gateway_pb2, speech_to_text_pb2, voice_pb2, voice_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from voices import espeak, piper

ENROLL = [
    "The weather was lovely yesterday, so we walked to the park.",
    "Please remember to water the tomatoes while I am away.",
    "My sister is flying in from Toronto on Thursday morning.",
]
QUESTION = "What is the capital of France?"
MATCH = speech_to_text_pb2.SPEAKER_VERDICT_MATCH
NO_MATCH = speech_to_text_pb2.SPEAKER_VERDICT_NO_MATCH


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


def test_the_numpy_encoder_is_resemblyzers_lstm_to_the_last_digit(encoder: SpeakerEncoder) -> None:
    """The same weights in torch's own LSTM give the same embeddings: the port is exact."""
    state = {k: torch.from_numpy(v) for k, v in load_state(bundled_weights()).items()}
    lstm = torch.nn.LSTM(40, 256, 3, batch_first=True)
    linear = torch.nn.Linear(256, 256)
    lstm.load_state_dict({k.removeprefix("lstm."): v for k, v in state.items() if k.startswith("lstm.")})
    linear.load_state_dict({"weight": state["linear.weight"], "bias": state["linear.bias"]})
    windows = np.abs(np.random.default_rng(1).standard_normal((3, 160, 40))).astype(np.float32)
    with torch.no_grad():
        _, (hidden, _) = lstm(torch.from_numpy(windows))
        raw = torch.relu(linear(hidden[-1]))
        expected = (raw / torch.norm(raw, dim=1, keepdim=True)).numpy()
    assert np.max(np.abs(encoder._forward(windows) - expected)) < 1e-5


def test_the_same_voice_scores_high_and_other_voices_low(encoder: SpeakerEncoder) -> None:
    voice_print = average([encoder.embed(piper(text)) for text in ENROLL])
    same = float(encoder.embed(piper(QUESTION)) @ voice_print)
    others = [float(encoder.embed(espeak(QUESTION, v)) @ voice_print) for v in ("en-us+m3", "en-us+f2")]
    assert same > 0.8 and max(others) < 0.7, (same, others)


def pcm(audio: np.ndarray, pad_s: float = 1.0) -> bytes:
    silence = np.zeros(int(16_000 * pad_s), dtype=np.float32)
    return float_to_pcm16(np.concatenate([silence[:1600], audio, silence]))


async def converse(client: AsyncClient, user: str, audio: bytes) -> list[gateway_pb2.ConverseResponse]:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in wav_chunks(WavAudio(audio, 16_000)):
            yield chunk

    return [e async for e in client.converse(chunks(), speak=False, user_id=user, retrieval=False)]


def core_responds(mesh) -> float:  # type: ignore[no-untyped-def]
    metrics = scrape(mesh.metrics["core"])
    return sum(v for k, v in metrics.items() if k.startswith("voicemesh_rpcs_total") and "/Respond" in k)


def kinds(events: list[gateway_pb2.ConverseResponse]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


async def test_an_enrolled_voice_is_verified_and_another_voice_is_refused_before_the_core(  # type: ignore[no-untyped-def]
    mesh, tmp_path: Path
) -> None:
    user = f"ada-{uuid.uuid4().hex[:6]}"
    wavs = []
    for n, text in enumerate(ENROLL):
        wavs.append(tmp_path / f"sample-{n}.wav")
        write_wav(wavs[-1], WavAudio(pcm(piper(text)), 16_000))
    enrolled = cli("voice", "enroll", user, *map(str, wavs), "--require-match", "--target", mesh.gateway)
    assert enrolled.returncode == 0, enrolled.stderr
    assert (
        f"{user}: voice print from 3 recordings" in enrolled.stdout
        and "a match is required" in enrolled.stdout
    )

    token = LocalAuthority.default().mint(user)
    async with AsyncClient(mesh.gateway, token=token, timeout_s=120) as client:
        events = await converse(client, user, pcm(piper(QUESTION)))
        final = next(e.transcript for e in events if e.HasField("transcript") and e.transcript.is_final)
        assert final.speaker.verdict == MATCH and final.speaker.score >= final.speaker.threshold, final
        assert "turn_done" in kinds(events) and "voice_not_verified" not in kinds(events)

        before = core_responds(mesh)
        events = await converse(client, user, pcm(espeak(QUESTION, "en-us+m3")))
        refused = [e.voice_not_verified for e in events if e.HasField("voice_not_verified")]
        assert len(refused) == 1, kinds(events)
        assert refused[0].speaker.verdict == NO_MATCH and "does not match" in refused[0].message
        assert not {"route", "reply_text_delta", "turn_done"} & set(kinds(events)), kinds(events)
        assert core_responds(mesh) == before  # the core saw no request, by its own count

        # Not required: the other voice is answered, and its transcript still says who it was not.
        required = cli("voice", "require", user, "off", "--target", mesh.gateway)
        assert required.returncode == 0 and "a match is not required" in required.stdout, required.stderr
        events = await converse(client, user, pcm(espeak(QUESTION, "en-us+m3")))
        final = next(e.transcript for e in events if e.HasField("transcript") and e.transcript.is_final)
        assert final.speaker.verdict == NO_MATCH and "turn_done" in kinds(events)

    deleted = cli("history", "delete", user, "--target", mesh.gateway)
    assert "the voice print" in deleted.stdout, deleted.stdout + deleted.stderr
    status = cli("voice", "status", user, "--target", mesh.gateway)
    assert status.stdout.strip() == f"{user}: no voice print", status.stdout + status.stderr


async def test_voice_rpcs_refuse_strangers_other_users_and_bad_recordings(mesh) -> None:  # type: ignore[no-untyped-def]
    authority = LocalAuthority.default()
    sample = voice_pb2.VoiceSample(audio=pcm(piper(ENROLL[0])))
    sample.audio_format.sample_rate_hz = 16_000
    silent = voice_pb2.VoiceSample(audio=bytes(32_000), audio_format=sample.audio_format)

    async def refused(token: str, request: voice_pb2.EnrollVoiceRequest) -> grpc.aio.AioRpcError:
        # Credentials as given: an empty token stays empty (the SDK would find the admin's).
        async with open_channel(mesh.gateway, Credentials(token, authority.certs / "ca.crt")) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await voice_pb2_grpc.VoiceServiceStub(channel).EnrollVoice(request, timeout=60)
        return caught.value

    nobody = await refused("", voice_pb2.EnrollVoiceRequest(user_id="ada", samples=[sample]))
    assert nobody.code() == grpc.StatusCode.UNAUTHENTICATED
    stranger = await refused(
        authority.mint("ada"), voice_pb2.EnrollVoiceRequest(user_id="bob", samples=[sample])
    )
    assert stranger.code() == grpc.StatusCode.PERMISSION_DENIED
    hush = await refused(authority.mint("ada"), voice_pb2.EnrollVoiceRequest(user_id="ada", samples=[silent]))
    assert hush.code() == grpc.StatusCode.INVALID_ARGUMENT and "sample 1: " in hush.details()
    assert "s of speech heard" in hush.details(), hush.details()
    mixed = [
        sample,
        voice_pb2.VoiceSample(audio=pcm(espeak(ENROLL[1], "en-us+f2")), audio_format=sample.audio_format),
    ]
    mixed_up = await refused(
        authority.mint("ada"), voice_pb2.EnrollVoiceRequest(user_id="ada", samples=mixed)
    )
    assert mixed_up.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not sound like" in mixed_up.details()
    none = await refused(authority.mint("ada"), voice_pb2.EnrollVoiceRequest(user_id="ada"))
    assert none.code() == grpc.StatusCode.INVALID_ARGUMENT and "0 samples" in none.details()

    user = f"nobody-{uuid.uuid4().hex[:6]}"
    async with AsyncClient(mesh.gateway, token=authority.mint(user), timeout_s=60) as client:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.voices.SetVoiceRequired(
                voice_pb2.SetVoiceRequiredRequest(user_id=user, require_match=True)
            )
    assert (
        caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        and "enroll one first" in caught.value.details()
    )

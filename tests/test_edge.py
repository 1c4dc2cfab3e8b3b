"""The SDK's edge: nothing leaves the device before the wake word; then the command, and only it."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from voicemesh.client.edge import (
    CommandFailed,
    CommandSent,
    Edge,
    EdgeModels,
    EdgeSettings,
    GatewayEvent,
    WakeHeard,
    file_audio,
)
from voicemesh.client.sdk import AsyncClient, wav_chunks
from voicemesh.common.audio import WavAudio, write_wav
from voicemesh.common.samples import pcm16_to_float
from voicemesh.v1 import gateway_pb2 as pb
from voicemesh.v1 import gateway_pb2_grpc as pb_grpc

RATE = 16_000


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


class RecordingGateway(pb_grpc.GatewayServiceServicer):
    """A real gRPC gateway endpoint that keeps every stream it is sent, to check what left the edge."""

    def __init__(self) -> None:
        self.streams: list[tuple[pb.ConverseConfig, bytes]] = []

    async def Converse(self, request_iterator, context):  # type: ignore[no-untyped-def]
        first = await anext(request_iterator)
        audio = bytearray()
        async for request in request_iterator:
            audio += request.audio_content
        self.streams.append((first.config, bytes(audio)))
        yield pb.ConverseResponse(turn_done=pb.TurnDone(transcript=f"{len(audio)} bytes"))


@pytest.fixture
async def recording_gateway() -> AsyncIterator[tuple[str, RecordingGateway]]:
    server = grpc.aio.server()
    gateway = RecordingGateway()
    pb_grpc.add_GatewayServiceServicer_to_server(gateway, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", gateway
    await server.stop(0)


@pytest.fixture(scope="module")
def edge_models() -> EdgeModels:
    # The recording gateway never ends a turn itself (a real one does, semantically), so here the
    # edge's own silence ends each command: 700 ms, under the recording's 1.5 s gap.
    return EdgeModels(EdgeSettings.load(end_silence_ms=700))


@pytest.fixture
def recording_wav(tmp_path: Path, wake_recording) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "long.wav"
    write_wav(path, WavAudio(wake_recording.pcm, RATE))
    return path


async def test_only_the_command_reaches_the_gateway(
    recording_gateway, edge_models, recording_wav, wake_recording
) -> None:  # type: ignore[no-untyped-def]
    address, gateway = recording_gateway
    rec = wake_recording
    async with AsyncClient(address, insecure=True) as client:
        edge = Edge(client, edge_models, speak=False)
        events = [e async for e in edge.listen(file_audio(recording_wav, realtime=False))]

    wakes = [e for e in events if isinstance(e, WakeHeard)]
    assert len(wakes) == 1 and wakes[0].model == "hey_jarvis"
    assert -0.1 < wakes[0].heard_s - rec.seconds(rec.wake_end) < 0.4
    sent = [e for e in events if isinstance(e, CommandSent)]
    assert [s.reason for s in sent] == ["end_of_speech"]
    replies = [e.response for e in events if isinstance(e, GatewayEvent)]
    assert [r.WhichOneof("event") for r in replies] == ["turn_done"]

    # What the gateway received: one stream, holding exactly a slice of the recording that starts
    # in the last moments of the wake phrase and ends between the command and the next speech.
    assert len(gateway.streams) == 1
    config, pcm = gateway.streams[0]
    assert config.session_id == edge.session_id and not config.reply.synthesize_audio
    start = round(wakes[0].start_s * RATE)
    received = pcm16_to_float(pcm)
    np.testing.assert_array_equal(received, rec.audio[start : start + received.size])
    assert rec.before_end < rec.wake_end - RATE // 2 < start < rec.wake_end
    assert rec.command_end < start + received.size < rec.after_start


async def test_silence_and_speech_without_the_wake_word_send_nothing(
    recording_gateway, edge_models, wake_recording
) -> None:  # type: ignore[no-untyped-def]
    address, gateway = recording_gateway
    rec = wake_recording
    without = np.concatenate([rec.audio[: rec.before_end], rec.audio[rec.after_start :]])
    pcm = WavAudio(_pcm(without), RATE)
    async with AsyncClient(address, insecure=True) as client:
        edge = Edge(client, edge_models, speak=False)
        events = [e async for e in edge.listen(_aiter(wav_chunks(pcm, 80)))]
    assert events == [] and gateway.streams == []


async def test_without_a_wake_word_speech_opens_the_gate_with_pre_roll(
    recording_gateway, wake_recording
) -> None:  # type: ignore[no-untyped-def]
    address, gateway = recording_gateway
    rec = wake_recording
    models = EdgeModels(EdgeSettings.load(wake_words=[], pre_roll_ms=500))
    first = rec.audio[: rec.before_end + RATE // 2]  # silence, one sentence, silence
    async with AsyncClient(address, insecure=True) as client:
        edge = Edge(client, models, speak=False)
        events = [e async for e in edge.listen(_aiter(wav_chunks(WavAudio(_pcm(first), RATE), 80)))]
    assert not any(isinstance(e, WakeHeard) for e in events)
    assert len(gateway.streams) == 1
    received = pcm16_to_float(gateway.streams[0][1])
    speech_onset = int(np.nonzero(np.abs(first) > 0.01)[0][0])
    start = _find(first, received)
    assert speech_onset - RATE // 2 - 1024 <= start < speech_onset - RATE // 4  # about 500 ms of pre-roll
    assert start + received.size >= rec.before_end  # the whole sentence


async def test_an_unreachable_gateway_is_reported_and_listening_goes_on(edge_models, wake_recording) -> None:  # type: ignore[no-untyped-def]
    twice = np.concatenate([wake_recording.audio, wake_recording.audio])
    async with AsyncClient("127.0.0.1:1") as client:
        edge = Edge(client, edge_models, speak=False)
        events = [e async for e in edge.listen(_aiter(wav_chunks(WavAudio(_pcm(twice), RATE), 80)))]
    failures = [e for e in events if isinstance(e, CommandFailed)]
    assert [type(e).__name__ for e in events if not isinstance(e, CommandFailed)] == [
        "WakeHeard",
        "CommandSent",
        "WakeHeard",
        "CommandSent",
    ]
    assert [(f.command, f.code) for f in failures] == [
        (0, grpc.StatusCode.UNAVAILABLE),
        (1, grpc.StatusCode.UNAVAILABLE),
    ]


def _pcm(samples: np.ndarray) -> bytes:
    return bytes(np.clip(np.rint(samples * 32768), -32768, 32767).astype("<i2"))


def _find(haystack: np.ndarray, needle: np.ndarray) -> int:
    """Where ``needle`` lies in ``haystack`` (it must lie there exactly)."""
    for start in range(haystack.size - needle.size + 1):
        if np.array_equal(haystack[start : start + 64], needle[:64]) and np.array_equal(
            haystack[start : start + needle.size], needle
        ):
            return start
    raise AssertionError("the received audio is not a slice of what was played")


async def _aiter(chunks):  # type: ignore[no-untyped-def]
    for chunk in chunks:
        yield chunk
        await asyncio.sleep(0)


def test_listen_cli_plays_a_file_through_the_edge_to_the_mesh(
    mesh, recording_wav, wake_recording, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """`voicemesh listen --file` at real-time pace: wake, the command's transcript, a spoken reply.
    The server's end of turn ends the command: the edge does not wait out its own 2 s of silence."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "voicemesh.client.cli",
            "listen",
            "--file",
            str(recording_wav),
            "--json",
            "--save-dir",
            str(tmp_path / "replies"),
            "--target",
            mesh.gateway,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    edge = [e["edge"] for e in events if "edge" in e]
    assert edge == ["WakeHeard", "CommandSent"]
    (sent,) = [e for e in events if e.get("edge") == "CommandSent"]
    assert sent["reason"] == "end_of_speech"
    assert sent["end_s"] < wake_recording.seconds(wake_recording.command_end) + 1.0
    transcripts = [e["transcript"]["transcript"] for e in events if "transcript" in e]
    assert [words(t) for t in transcripts] == ["what time is it"]
    assert any("reply_text_delta" in e for e in events)
    done = [e["turn_done"] for e in events if "turn_done" in e]
    assert len(done) == 1 and done[0]["reply_text"].strip()
    assert (tmp_path / "replies" / "reply-0.wav").stat().st_size > 10_000


async def test_gateway_listens_for_the_wake_word_for_a_thin_client(mesh, wake_recording) -> None:  # type: ignore[no-untyped-def]
    rec = wake_recording
    kinds, transcripts = [], []
    async with AsyncClient(mesh.gateway, timeout_s=120) as client:
        audio = wav_chunks(WavAudio(rec.pcm, RATE))
        async for event in client.converse(audio, speak=False, wake_words=["hey_jarvis"]):
            kinds.append(event.WhichOneof("event"))
            if kinds[-1] == "transcript":
                transcripts.append(words(event.transcript.transcript))
    assert kinds[:2] == ["wake_word", "speech_started"]
    assert kinds.count("wake_word") == 1 and kinds.count("turn_done") == 1
    assert transcripts == [rec.command]


def test_listen_without_a_microphone_says_so() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "voicemesh.client.cli", "listen", "--target", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert re.search(r"no (audio input|microphone)", out.stderr) and "--file" in out.stderr

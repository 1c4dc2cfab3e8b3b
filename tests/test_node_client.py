"""A second language speaks the contract: the Node.js client (clients/node, stubs generated from
protos/ by buf) runs a text Ask and a spoken Converse against the running mesh, as a real node process."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from voicemesh.common.audio import WavAudio, read_wav, write_wav
from voicemesh.stt.engine import SpeechRecognizer

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "node"


def words(text: str) -> list[str]:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace()).split()


@pytest.fixture(scope="module")
def node_client() -> Path:
    """The client, built from its TypeScript now, so the test runs what the source says."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for clients/node; install Node.js 20 or newer")
    if not (ROOT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("clients/node's packages are missing: run `npm install` (`make install` does)")
    build = subprocess.run(
        [npm, "run", "--silent", "--workspace", "clients/node", "build"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return CLIENT / "dist" / "main.js"


def run_node(client: Path, *args: str) -> tuple[list[dict[str, Any]], subprocess.CompletedProcess[str]]:
    result = subprocess.run(["node", str(client), *args], capture_output=True, text=True, timeout=180)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return events, result


def test_node_asks_in_text(node_client: Path, mesh) -> None:  # type: ignore[no-untyped-def]
    events, result = run_node(node_client, "--target", mesh.gateway, "ask", "What is the capital of France?")
    assert result.returncode == 0, result.stderr
    kinds = [e["event"] for e in events]
    assert kinds[0] == "route" and events[0]["value"]["tier"] == "local"
    assert kinds[-1] == "turnDone" and "replyTextDelta" in kinds
    deltas = "".join(e["value"] for e in events if e["event"] == "replyTextDelta")
    done = events[-1]["value"]
    assert done["replyText"] == deltas.strip() and done["transcript"] == "What is the capital of France?"


def test_node_converses_from_a_wav_file(
    node_client: Path,
    mesh,  # type: ignore[no-untyped-def]
    speak,  # type: ignore[no-untyped-def]
    stt_engine: SpeechRecognizer,
    tmp_path: Path,
) -> None:
    speech = speak("What is the tallest mountain in the world?", rate=22_050)
    question, reply = tmp_path / "question.wav", tmp_path / "reply.wav"
    write_wav(question, WavAudio(speech.pcm, speech.sample_rate_hz))
    events, result = run_node(
        node_client, "--target", mesh.gateway, "--user", "", "converse", str(question), "--out", str(reply)
    )
    assert result.returncode == 0, result.stderr
    kinds = [e["event"] for e in events]
    assert kinds[:3] == ["speechStarted", "speechEnded", "transcript"]
    transcript = events[2]["value"]
    assert transcript["isFinal"] and words(transcript["transcript"]) == words(speech.text)
    assert kinds[-1] == "turnDone" and all(e["turn"] == 0 for e in events)
    done = events[-1]["value"]
    audio = [e["value"] for e in events if e["event"] == "replyAudio"]
    assert audio and all("audioContent" not in a for a in audio)
    spoken = read_wav(reply)
    assert len(spoken.pcm) == sum(a["audioBytes"] for a in audio) and spoken.sample_rate_hz == 22_050
    # The reply audio says the reply text: the mesh's own Whisper hears it back.
    from voicemesh.common.samples import pcm16_to_float, resample_pcm16

    heard = stt_engine.recognizer.transcribe(pcm16_to_float(resample_pcm16(spoken.pcm, 22_050, 16_000))).text
    reply_words, heard_words = words(done["replyText"]), words(heard)
    shared = sum(w in heard_words for w in reply_words)
    assert reply_words and shared >= 0.7 * len(reply_words), (done["replyText"], heard)


def test_node_refuses_a_file_that_is_not_a_wav_in_one_line(node_client: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "question.wav"
    bogus.write_text("not audio")
    events, result = run_node(node_client, "--target", "127.0.0.1:1", "converse", str(bogus))
    assert result.returncode == 2 and not events
    assert result.stderr == f"voicemesh-node: {bogus} is not a WAV file (no RIFF/WAVE header)\n"


def test_node_names_the_status_of_an_unreachable_gateway(node_client: Path) -> None:
    events, result = run_node(node_client, "--target", "127.0.0.1:1", "--timeout", "5", "ask", "Hello?")
    assert result.returncode == 1 and not events
    assert result.stderr.startswith("voicemesh-node: UNAVAILABLE: "), result.stderr

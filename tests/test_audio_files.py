"""Any audio file a person has: mp3, m4a, ogg/opus, flac and odd WAVs, through `voicemesh talk`.

The files are made here with PyAV's own encoders (libmp3lame, aac, libopus, flac) from one piper
question, at the rates and channel counts such files usually have, so every format must come out
as the same words as the plain WAV.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from test_auth import cli

from voicemesh.client.cli import Printer
from voicemesh.common.audio import WavAudio, write_wav
from voicemesh.common.audio_files import read_audio
from voicemesh.common.samples import float_to_pcm16
from voicemesh.v1 import core_pb2, speech_to_text_pb2
from voicemesh.v1 import gateway_pb2 as pb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from voices import piper, trimmed

QUESTION = "How many legs does a spider have?"
# (file name, encoder, rate, layout, container): what phones, recorders and exporters write.
FORMATS = [
    ("question.mp3", "libmp3lame", 44_100, "stereo", None),
    ("question.m4a", "aac", 44_100, "stereo", "ipod"),
    ("question.ogg", "libopus", 48_000, "mono", None),
    ("question.flac", "flac", 22_050, "mono", None),
    ("question-24bit.wav", "pcm_s24le", 96_000, "stereo", None),
]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


@pytest.fixture(scope="module")
def question_pcm() -> np.ndarray:
    speech = trimmed(piper(QUESTION, steady=True))
    silence = np.zeros(8_000, dtype=np.float32)
    return np.frombuffer(float_to_pcm16(np.concatenate([silence, speech, silence])), dtype=np.int16)


def encode(pcm: np.ndarray, path: Path, codec: str, rate: int, layout: str, container: str | None) -> None:
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        context = stream.codec_context
        context.open()
        resampler = av.AudioResampler(
            format=context.format.name, layout=layout, rate=rate, frame_size=context.frame_size or None
        )
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = 16_000
        for source in (frame, None):
            for resampled in resampler.resample(source):
                for packet in stream.encode(resampled):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.fixture(scope="module")
def files(question_pcm: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio-files")
    made = {"question.wav": folder / "question.wav"}
    write_wav(made["question.wav"], WavAudio(question_pcm.tobytes(), 16_000))
    for name, codec, rate, layout, container in FORMATS:
        encode(question_pcm, folder / name, codec, rate, layout, container)
        made[name] = folder / name
    return made


@pytest.mark.parametrize("name", [f[0] for f in FORMATS])
def test_every_format_reads_as_the_same_audio(files: dict[str, Path], name: str) -> None:
    wav = read_audio(files["question.wav"])
    other = read_audio(files[name])
    layout = next(f[3] for f in FORMATS if f[0] == name)
    assert other.channels == (2 if layout == "stereo" else 1)
    assert 8_000 <= other.sample_rate_hz <= 48_000  # 96 kHz became something the wire takes
    assert other.duration_s == pytest.approx(wav.duration_s, abs=0.06)  # codecs pad a frame or so


def test_every_format_gives_the_wavs_transcript_through_talk(mesh, files: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    heard = {}
    for name, path in files.items():
        result = cli("talk", str(path), "--json", "--target", mesh.gateway)
        assert result.returncode == 0, (name, result.stderr)
        events = [json.loads(line) for line in result.stdout.splitlines()]
        heard[name] = " ".join(e["transcript"]["transcript"] for e in events if "transcript" in e)
    expected = words(heard["question.wav"])
    assert {"legs", "spider"} <= set(expected), heard
    assert {name: words(text) for name, text in heard.items()} == dict.fromkeys(heard, expected)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"this is a note, not a recording\n", "it is not an audio file FFmpeg can read"),
        (b"", "the file is empty"),
        (b"RIFF\x00\x00\x00\x00WAVEjunk", "it is not an audio file FFmpeg can read"),
    ],
)
def test_an_unreadable_file_is_one_line_and_exit_2(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "question.mp3"
    path.write_bytes(content)
    for command in (
        ["talk", str(path)],
        ["listen", "--file", str(path)],
        ["voice", "enroll", "ada", str(path)],
    ):
        result = cli(*command, "--target", "127.0.0.1:9")  # never reached: the file is read first
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.startswith(f"voicemesh: cannot read {path}: {problem}"), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


def test_a_missing_file_and_a_missing_out_folder_are_one_line(tmp_path: Path, files: dict[str, Path]) -> None:
    missing = cli("talk", str(tmp_path / "nope.mp3"), "--target", "127.0.0.1:9")
    assert missing.returncode == 2
    assert missing.stderr == f"voicemesh: cannot read {tmp_path / 'nope.mp3'}: No such file or directory\n"
    out = tmp_path / "no-such-folder" / "reply.wav"
    refused = cli("talk", str(files["question.wav"]), "--out", str(out), "--target", "127.0.0.1:9")
    assert refused.returncode == 2
    assert refused.stderr == f"voicemesh: cannot write {out}: no folder {out.parent}\n"


def test_a_silent_file_says_no_speech_was_heard(mesh, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "silence.wav"
    write_wav(path, WavAudio(bytes(2 * 16_000 * 2), 16_000))
    result = cli("talk", str(path), "--target", mesh.gateway)
    assert result.returncode == 1
    assert result.stderr == f"voicemesh: no speech heard in {path}\n"


def _event(turn: int, **field: object) -> pb.ConverseResponse:
    return pb.ConverseResponse(turn_index=turn, **field)  # type: ignore[arg-type]


def test_a_turns_lines_stay_together_while_turns_overlap(capsys: pytest.CaptureFixture[str]) -> None:
    """The second transcript arrives while the first reply is still streaming: its lines wait."""
    final = speech_to_text_pb2.RecognitionResult
    route = core_pb2.RouteChosen(tier="local", model="m")
    printer = Printer(as_json=False)
    for event in [
        _event(0, transcript=final(transcript="What is two and two?", is_final=True)),
        _event(0, route=route),
        _event(0, reply_text_delta="Two and two "),
        _event(1, speech_started=speech_to_text_pb2.SpeechStarted()),
        _event(1, transcript=final(transcript="And three and three?", is_final=True)),
        _event(0, reply_text_delta="is four."),
        _event(1, route=route),
        _event(1, reply_text_delta="Six."),
        _event(0, turn_done=pb.TurnDone(timings=pb.TurnTimings(final_transcript_ms=5, done_ms=90))),
        _event(2, transcript=final(transcript="Thanks.", is_final=True)),
        _event(1, turn_done=pb.TurnDone(timings=pb.TurnTimings(done_ms=80))),
        _event(2, route=route),
        _event(2, turn_failed=pb.TurnFailed(code=8, message="core: over the llm limit")),
    ]:
        printer(event)
    printer.finish()
    assert capsys.readouterr().out.splitlines() == [
        "you: What is two and two?",
        "assistant (local, m): Two and two is four.",
        "  (transcript 5 ms, done 90 ms)",
        "you: And three and three?",
        "assistant (local, m): Six.",
        "  (done 80 ms)",
        "you: Thanks.",
        "assistant (local, m): ",
        "  (turn failed: RESOURCE_EXHAUSTED: core: over the llm limit)",
    ]


def test_bad_edge_settings_are_one_line(files: dict[str, Path]) -> None:
    result = cli(
        "listen",
        "--file",
        str(files["question.wav"]),
        "--target",
        "127.0.0.1:9",
        VOICEMESH_EDGE_END_SILENCE_MS="5",
    )
    assert result.returncode == 2
    assert result.stderr == (
        "voicemesh listen: invalid configuration: VOICEMESH_EDGE_END_SILENCE_MS: "
        "Input should be greater than or equal to 100\n"
    )

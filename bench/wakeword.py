"""Wake word quality and edge cost, on piper speech.

    python bench/wakeword.py [--minutes 5] [--threshold 0.5] [--out bench/results/wakeword.json]

- False accepts: at least --minutes of speech without the wake phrase (everyday sentences, commands
  said without the name, near misses such as "Hey Travis"), streamed through the detector as one
  long recording, the way a microphone would.
- Detection rate on positive clips: "Hey Jarvis" and a command, at three speaking rates, run on or
  with a pause, clean or under other speech at 10 dB SNR; how long after the phrase's end the
  detector fires; and whether the audio the gate passes on transcribes to exactly the command
  (Whisper tiny.en), i.e. neither clipped nor carrying the wake phrase.
- CPU: real-time factor of the wake word and of Silero VAD, each on one core (single-threaded
  sessions, CPU time over audio time).
- Memory: what the shared models take once, and what each listening stream adds.

Prints a table and writes bench/results/wakeword.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
from piper import PiperVoice, SynthesisConfig

sys.path.insert(0, str(Path(__file__).parent))
from wakeword_corpus import COMMANDS, COMMANDS_WITHOUT_NAME, EVERYDAY, NEAR_MISSES

from voicemesh.client.edge import EdgeModels, EdgeSettings
from voicemesh.listening.gate import Opened, Passed
from voicemesh.listening.vad import FRAME_SAMPLES as VAD_FRAME
from voicemesh.listening.wakeword import DEFAULT_REFRACTORY_S, FRAME_SAMPLES
from voicemesh.stt.recognizer import WhisperRecognizer
from voicemesh.tts.engine import bundled_voice

RATE = 16_000
THRESHOLDS = (0.3, 0.4, 0.5, 0.7)
PATIENCE = (1, 2, 3)
RESULTS = Path(__file__).parent / "results"


NUMBERS = {"two": "2", "eight": "8", "ten": "10", "twelve": "12"}


def words(text: str) -> str:
    """Lower-case words, numbers as digits: Whisper writes "10" for "ten"."""
    return " ".join(NUMBERS.get(w, w) for w in re.findall(r"[a-z0-9']+", text.lower()))


class Speaker:
    def __init__(self, seed: int) -> None:
        self.voice = PiperVoice.load(bundled_voice()[1])
        self.rng = np.random.default_rng(seed)

    def say(self, text: str, length_scale: float | None = None) -> np.ndarray:
        """Trimmed 16 kHz speech; speaking rate and prosody noise vary from call to call."""
        config = SynthesisConfig(
            length_scale=length_scale or float(self.rng.uniform(0.85, 1.2)),
            noise_scale=float(self.rng.uniform(0.5, 0.8)),
            noise_w_scale=float(self.rng.uniform(0.6, 1.0)),
        )
        audio = np.concatenate([c.audio_float_array for c in self.voice.synthesize(text, config)])
        audio = np.asarray(soxr.resample(audio, self.voice.config.sample_rate, RATE), dtype=np.float32)
        loud = np.nonzero(np.abs(audio) > 0.01)[0]
        return audio[loud[0] : loud[-1] + 1]

    def pause(self, low: float, high: float) -> np.ndarray:
        return self.floor(int(self.rng.uniform(low, high) * RATE))

    def floor(self, samples: int) -> np.ndarray:
        """A quiet room rather than digital silence (about -60 dBFS)."""
        return (self.rng.standard_normal(samples) * 0.001).astype(np.float32)


def count_detections(scores: np.ndarray, threshold: float, patience: int = 1) -> list[int]:
    """Frames that fire at ``threshold`` and ``patience`` under the detector's own rules."""
    refractory = int(DEFAULT_REFRACTORY_S * RATE / FRAME_SAMPLES)
    fired, quiet_until, above = [], 0, 0
    for frame, score in enumerate(scores):
        above = above + 1 if score >= threshold else 0
        if above >= patience and frame >= quiet_until:
            fired.append(frame)
            quiet_until = frame + refractory
    return fired


def trace(models: EdgeModels, audio: np.ndarray) -> np.ndarray:
    assert models.wake_words is not None
    stream = models.wake_words.stream()
    scores = []
    for offset in range(0, audio.size - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        stream.push(audio[offset : offset + FRAME_SAMPLES])
        scores.append(stream.last_scores["hey_jarvis"])
    return np.array(scores)


@dataclass
class Negatives:
    audio: np.ndarray
    speech_s: float
    sentences: list[tuple[int, int, str]]  # start and end sample, text

    def said_at(self, frame: int) -> str:
        sample = (frame + 1) * FRAME_SAMPLES
        before = [text for start, _, text in self.sentences if start <= sample]
        return before[-1] if before else ""


def negatives(speaker: Speaker, minutes: float) -> Negatives:
    texts = EVERYDAY + COMMANDS_WITHOUT_NAME + NEAR_MISSES
    parts, position, speech_s = [speaker.floor(RATE)], RATE, 0.0
    sentences: list[tuple[int, int, str]] = []
    while speech_s < minutes * 60:
        for text in speaker.rng.permutation(texts):
            audio, pause = speaker.say(str(text)), speaker.pause(0.3, 1.2)
            sentences.append((position, position + audio.size, str(text)))
            parts += [audio, pause]
            position += audio.size + pause.size
            speech_s += audio.size / RATE
    return Negatives(np.concatenate(parts), speech_s, sentences)


def scores_and_cpu(models: EdgeModels, audio: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The wake word's score trace, and the CPU seconds it and Silero VAD take over ``audio``."""
    started = time.process_time()
    scores = trace(models, audio)
    wake_cpu = time.process_time() - started
    vad = models.vad.stream()
    started = time.process_time()
    for offset in range(0, audio.size - VAD_FRAME + 1, VAD_FRAME):
        vad.probability(audio[offset : offset + VAD_FRAME])
    return scores, wake_cpu, time.process_time() - started


@dataclass
class Clip:
    kind: str
    command: str
    audio: np.ndarray
    alone: np.ndarray  # the command by itself: what the gate should pass on
    wake_end: int | None  # where "Hey Jarvis" ends, when it was synthesized apart
    detected: bool = False
    latency_ms: float | None = None
    transcript: str = ""
    reference: str = ""  # Whisper's transcript of the command alone
    scores: np.ndarray | None = None

    @property
    def clean_cut(self) -> bool:
        return words(self.transcript) == words(self.reference)


def positive_clips(speaker: Speaker) -> list[Clip]:
    babble = np.concatenate([speaker.say(t) for t in EVERYDAY[:12]])
    clips = []
    for i, command in enumerate(COMMANDS):
        for scale in (0.85, 1.0, 1.2):
            gap = (0.0, 0.2)[i % 2]
            noisy = (i + int(scale * 20)) % 3 == 0
            wake, said, lead = (
                speaker.say("Hey Jarvis", scale),
                speaker.say(command, scale),
                speaker.floor(RATE),
            )
            tail = speaker.floor(int(1.5 * RATE))
            audio = np.concatenate([lead, wake, speaker.floor(int(gap * RATE)), said, tail])
            if noisy:
                start = int(speaker.rng.integers(0, babble.size - audio.size))
                noise = babble[start : start + audio.size]
                gain = np.sqrt(np.mean(said**2) / np.mean(noise**2)) / 10 ** (10 / 20)
                audio = audio + gain * noise
            kind = f"joined, {'pause' if gap else 'run-on'}, {'babble 10 dB' if noisy else 'quiet'}"
            clips.append(Clip(kind, command, audio.astype(np.float32), said, lead.size + wake.size))
        natural = speaker.say(f"Hey Jarvis, {command}", 1.0)
        audio = np.concatenate([speaker.floor(RATE), natural, speaker.floor(int(1.5 * RATE))])
        clips.append(Clip("one utterance, quiet", command, audio, speaker.say(command, 1.0), None))
    return clips


def run_positive(clip: Clip, models: EdgeModels, whisper: WhisperRecognizer) -> None:
    clip.scores = trace(models, clip.audio)
    gate = models.gate()
    passed: list[np.ndarray] = []
    for offset in range(0, clip.audio.size, FRAME_SAMPLES):
        for event in gate.push(clip.audio[offset : offset + FRAME_SAMPLES]):
            if isinstance(event, Opened) and not clip.detected:
                assert event.wake is not None
                clip.detected = True
                if clip.wake_end is not None:
                    clip.latency_ms = (event.wake.end_sample - clip.wake_end) * 1000 / RATE
                passed.append(event.audio)
            elif isinstance(event, Passed) and passed:
                passed.append(event.audio)
    if passed and "babble" not in clip.kind:
        quiet = np.zeros(RATE // 2, dtype=np.float32)
        clip.transcript = whisper.transcribe(np.concatenate(passed)).text
        clip.reference = whisper.transcribe(np.concatenate([quiet, clip.alone, quiet])).text


def per_stream_bytes(models: EdgeModels, streams: int = 100) -> float:
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    gates = [models.gate() for _ in range(streams)]
    for gate in gates:
        gate.push(np.zeros(2 * RATE, dtype=np.float32))
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    return grown / streams


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes", type=float, default=5.0, help="minutes of speech without the wake phrase"
    )
    parser.add_argument("--threshold", type=float, help="default: the edge's setting")
    parser.add_argument("--patience", type=int, help="default: the edge's setting")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "wakeword.json")
    args = parser.parse_args()

    speaker = Speaker(args.seed)
    rss_before = rss_mb()
    overrides = {"wake_threshold": args.threshold, "wake_patience": args.patience}
    settings = EdgeSettings.load(
        wake_words=["hey_jarvis"], **{k: v for k, v in overrides.items() if v is not None}
    )
    threshold, patience = settings.wake_threshold, settings.wake_patience
    models = EdgeModels(settings)
    models_mb = rss_mb() - rss_before
    whisper = WhisperRecognizer(
        None, device="cpu", compute_type="int8", cpu_threads=0, workers=1, beam_size=1, language="en"
    )

    t0 = time.perf_counter()
    negative = negatives(speaker, args.minutes)
    speech_s, sentences = negative.speech_s, len(negative.sentences)
    scores, wake_cpu, vad_cpu = scores_and_cpu(models, negative.audio)
    audio_s = negative.audio.size / RATE
    fired_on = [negative.said_at(frame) for frame in count_detections(scores, min(THRESHOLDS))]
    false_accepts = len(count_detections(scores, threshold, patience))
    clips = positive_clips(speaker)
    for clip in clips:
        run_positive(clip, models, whisper)
    tradeoff = {
        f"threshold {t}, patience {p}": {
            "false_accepts": len(count_detections(scores, t, p)),
            "detected": sum(bool(count_detections(c.scores, t, p)) for c in clips if c.scores is not None),
        }
        for t in THRESHOLDS
        for p in PATIENCE
    }
    detected = [c for c in clips if c.detected]
    latencies = [c.latency_ms for c in detected if c.latency_ms is not None]
    # Under babble Whisper rightly transcribes the other talker too, so the cut is judged in quiet.
    quiet = [c for c in detected if "babble" not in c.kind]
    clean = [c for c in quiet if c.clean_cut]
    kinds = sorted({c.kind for c in clips})

    report = {
        "threshold": threshold,
        "patience": patience,
        "negative_speech_s": round(speech_s, 1),
        "negative_audio_s": round(audio_s, 1),
        "negative_sentences": sentences,
        "false_accepts": false_accepts,
        "false_accepts_per_hour": round(false_accepts / speech_s * 3600, 2),
        "tradeoff": tradeoff,
        "max_negative_score": round(float(scores.max()), 3),
        f"fired_on_at_{min(THRESHOLDS)}": fired_on,
        "positive_clips": len(clips),
        "detection_rate": round(len(detected) / len(clips), 4),
        "detection_by_kind": {
            k: f"{sum(c.detected for c in clips if c.kind == k)}/{sum(c.kind == k for c in clips)}"
            for k in kinds
        },
        "detection_latency_ms": {
            "p50": round(float(np.percentile(latencies, 50)), 1),
            "p95": round(float(np.percentile(latencies, 95)), 1),
            "max": round(float(np.max(latencies)), 1),
        },
        "clean_command_rate": round(len(clean) / max(1, len(quiet)), 4),
        "clean_command_by_kind": {
            k: f"{sum(c.clean_cut for c in quiet if c.kind == k)}/{sum(c.kind == k for c in quiet)}"
            for k in kinds
            if "babble" not in k
        },
        "unclean_transcripts": [
            f"{c.kind}: {c.transcript!r}, alone {c.reference!r}" for c in quiet if not c.clean_cut
        ],
        "missed": [f"{c.kind}: {c.command!r}" for c in clips if not c.detected],
        "wake_word_rtf_one_core": round(wake_cpu / audio_s, 4),
        "vad_rtf_one_core": round(vad_cpu / audio_s, 4),
        "edge_rtf_one_core": round((wake_cpu + vad_cpu) / audio_s, 4),
        "models_rss_mb": round(models_mb, 1),
        "per_stream_kib": round(per_stream_bytes(models) / 1024, 1),
        "bench_wall_s": round(time.perf_counter() - t0, 1),
    }

    rows = [
        ("speech without the wake phrase", f"{speech_s / 60:.1f} min ({sentences} sentences)"),
        (f"false accepts @ threshold {threshold}, patience {patience}", f"{false_accepts}  (goal 0)"),
        ("highest score on negatives", f"{report['max_negative_score']}"),
        ("detection rate", f"{len(detected)}/{len(clips)} = {report['detection_rate']:.1%}  (goal >= 95%)"),
        *((f"  {k}", v) for k, v in report["detection_by_kind"].items()),
        (
            "detection after phrase end p50/p95/max",
            "{p50} / {p95} / {max} ms".format(**report["detection_latency_ms"]),
        ),
        (
            "passed audio transcribes as the command alone",
            f"{len(clean)}/{len(quiet)} = {report['clean_command_rate']:.1%}",
        ),
        *((f"  {k}", v) for k, v in report["clean_command_by_kind"].items()),
        ("wake word RTF, one core", f"{report['wake_word_rtf_one_core']:.4f}"),
        ("Silero VAD RTF, one core", f"{report['vad_rtf_one_core']:.4f}"),
        ("edge total RTF, one core", f"{report['edge_rtf_one_core']:.4f}"),
        ("models, loaded once (RSS)", f"{report['models_rss_mb']} MB"),
        ("memory per listening stream", f"{report['per_stream_kib']} KiB"),
        ("trade-off (from score traces)", "false accepts, detected"),
        *((f"  {k}", f"{v['false_accepts']}, {v['detected']}/{len(clips)}") for k, v in tradeoff.items()),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for line in fired_on:
        print(f"  false accept at {min(THRESHOLDS)}: {line!r}")
    for line in report["unclean_transcripts"] + report["missed"]:
        print(f"  note: {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Speaker verification: how well voice prints tell speakers apart, and what the check costs a turn.

    python bench/speaker.py [--speakers 81] [--tests 4] [--turns 8]

Speakers are piper's joe and espeak-ng's voice variants (bench/voices.py), every one saying
sentences of bench/wakeword_corpus.py. Each speaker is enrolled from three sentences, as
``voicemesh voice enroll`` does (the mean of their embeddings), and then says ``--tests`` other
sentences. Every test utterance is scored against every print: its own (a genuine trial) and all
the others (impostor trials). The equal error rate is where the share of impostors let in equals
the share of genuine speakers refused; the bench prints it with its threshold, the rates at the
STT's default threshold, and the same for joe's print alone (a natural voice among synthetic ones).

Then the critical path: the STT engine hears piper questions at real-time pace, each turn once
without and once with a voice print, and the bench measures speech_ended → final transcript (the
check runs on its own worker while Whisper decodes, so the goal is no difference) and how long the
check itself takes. Writes bench/results/speaker.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from voices import espeak_voices, say
from wakeword_corpus import EVERYDAY

from voicemesh.common.audio import PcmFormat
from voicemesh.common.samples import float_to_pcm16
from voicemesh.stt.config import SttSettings
from voicemesh.stt.events import FinalTranscript, SpeakerOptions, SpeechEnded, StreamOptions
from voicemesh.stt.server import build_engine
from voicemesh.stt.speaker import SpeakerEncoder, average

ENROLL = 3
THRESHOLDS = (0.70, 0.75, 0.80, 0.85, 0.90)
QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What time does the library open tomorrow?",
    "Can you remind me to call my mother tonight?",
    "What is the weather like in Lisbon this weekend?",
    "How long should I boil an egg?",
    "Who wrote the novel Pride and Prejudice?",
    "Turn off the lights in the kitchen, please.",
]


def error_rates(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> tuple[float, float]:
    """(impostors accepted, genuine speakers rejected) at ``threshold``."""
    return float(np.mean(impostor >= threshold)), float(np.mean(genuine < threshold))


def equal_error(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """(EER, its threshold): the threshold where false accepts and false rejects are closest."""
    candidates = np.unique(np.concatenate([genuine, impostor]))
    best = min(candidates, key=lambda t: abs(np.subtract(*error_rates(genuine, impostor, t))))
    far, frr = error_rates(genuine, impostor, best)
    return (far + frr) / 2, float(best)


def separation(args: argparse.Namespace, encoder: SpeakerEncoder, default: float) -> dict[str, Any]:
    speakers = ["piper", *espeak_voices()][: args.speakers]
    texts = EVERYDAY[: ENROLL + args.tests]
    prints, tests, embed_ms, audio_s = {}, {}, [], []
    for speaker in speakers:
        embeddings = []
        for text in texts:
            audio = say(text, speaker)
            started = time.perf_counter()
            embeddings.append(encoder.embed(audio))
            embed_ms.append((time.perf_counter() - started) * 1000)
            audio_s.append(audio.size / 16_000)
        prints[speaker] = average(embeddings[:ENROLL])
        tests[speaker] = np.stack(embeddings[ENROLL:])
    genuine, impostor, joe_impostor = [], [], []
    for owner, voice_print in prints.items():
        for speaker, embeddings in tests.items():
            scores = embeddings @ voice_print
            if speaker == owner:
                genuine.extend(scores)
            else:
                impostor.extend(scores)
                if owner == "piper":
                    joe_impostor.extend(scores)
    g, i = np.array(genuine), np.array(impostor)
    eer, threshold = equal_error(g, i)
    far, frr = error_rates(g, i, default)
    joe = np.array(list(tests["piper"] @ prints["piper"]))
    report: dict[str, Any] = {
        "speakers": len(speakers),
        "genuine_trials": len(g),
        "impostor_trials": len(i),
        "eer": eer,
        "eer_threshold": threshold,
        "default_threshold": default,
        "far_at_default": far,
        "frr_at_default": frr,
        "genuine_score_p5_p50": [float(np.percentile(g, 5)), float(np.median(g))],
        "impostor_score_p50_p95_max": [float(np.median(i)), float(np.percentile(i, 95)), float(i.max())],
        "rates_by_threshold": {f"{t:.2f}": error_rates(g, i, t) for t in THRESHOLDS},
        "embed_ms_p50_p95": [float(np.median(embed_ms)), float(np.percentile(embed_ms, 95))],
        "embed_ms_per_audio_s": float(np.sum(embed_ms) / np.sum(audio_s)),
    }
    if joe_impostor:
        ji = np.array(joe_impostor)
        report["joe"] = {
            "genuine_min": float(joe.min()),
            "impostor_max": float(ji.max()),
            "far_at_default": error_rates(joe, ji, default)[0],
            "frr_at_default": error_rates(joe, ji, default)[1],
        }
    return report


async def _paced(pcm: bytes, chunk_ms: int = 20) -> AsyncIterator[bytes]:
    step = 16_000 * chunk_ms // 1000 * 2
    started = time.monotonic()
    for n, offset in enumerate(range(0, len(pcm), step)):
        await asyncio.sleep(max(0.0, started + n * chunk_ms / 1000 - time.monotonic()))
        yield pcm[offset : offset + step]


async def one_turn(engine: Any, audio: np.ndarray, options: StreamOptions) -> tuple[float, str, float | None]:
    """speech_ended → final transcript (s), the transcript, and the speaker score if checked."""
    silence = np.zeros(16_000, dtype=np.float32)
    pcm = float_to_pcm16(np.concatenate([silence[:4000], audio, silence]))
    ended = final = None
    text, score = "", None
    async for event in engine.recognize(PcmFormat(16_000, 1), _paced(pcm), options):
        if isinstance(event, SpeechEnded) and ended is None:
            ended = time.monotonic()
        elif isinstance(event, FinalTranscript) and final is None:
            final = time.monotonic()
            text = event.transcript.text
            score = event.speaker.score if event.speaker is not None else None
    assert ended is not None and final is not None, "the utterance was not heard"
    return final - ended, text, score


async def critical_path(args: argparse.Namespace, default: float, *, speculate: bool) -> dict[str, Any]:
    """With ``speculate`` (the default), the utterance is decoded in the pause and its check runs
    beside that decode; without, both run after the endpoint, where a slow check would show."""
    engine = build_engine(SttSettings(speculate_after_ms=64 if speculate else 10_000))
    try:
        assert engine.speaker is not None
        voice_print = average([engine.speaker.embed(say(t, "piper")) for t in EVERYDAY[:ENROLL]])
        checked = StreamOptions(speaker=SpeakerOptions(voice_print, default))
        plain, verified, scores = [], [], []
        for n in range(args.turns):
            audio = say(QUESTIONS[n % len(QUESTIONS)], "piper")
            await one_turn(engine, audio, StreamOptions())  # warm, and the same audio twice
            seconds, _, _ = await one_turn(engine, audio, StreamOptions())
            plain.append(seconds)
            seconds, _, score = await one_turn(engine, audio, checked)
            verified.append(seconds)
            scores.append(score)
    finally:
        engine.close()

    def summary(values: list[float]) -> dict[str, float]:
        ms = [v * 1000 for v in values]
        return {"p50_ms": statistics.median(ms), "max_ms": max(ms)}

    return {
        "turns": args.turns,
        "final_after_endpoint_without_check": summary(plain),
        "final_after_endpoint_with_check": summary(verified),
        "added_p50_ms": (statistics.median(verified) - statistics.median(plain)) * 1000,
        "genuine_scores": scores,
    }


def print_tables(report: dict[str, Any]) -> None:
    s = report["separation"]
    print(f"\nspeaker separation: {s['speakers']} speakers, {s['genuine_trials']} genuine and "
          f"{s['impostor_trials']} impostor trials")  # fmt: skip
    print(f"  EER {s['eer']:.1%} at threshold {s['eer_threshold']:.3f}")
    print(
        f"  at the default threshold {s['default_threshold']:.2f}: impostors accepted "
        f"{s['far_at_default']:.1%}, genuine rejected {s['frr_at_default']:.1%}"
    )
    print("  | threshold | impostors accepted | genuine rejected |\n  |---|---|---|")
    for threshold, (far, frr) in s["rates_by_threshold"].items():
        print(f"  | {threshold} | {far:.1%} | {frr:.1%} |")
    g5, g50 = s["genuine_score_p5_p50"]
    i50, i95, imax = s["impostor_score_p50_p95_max"]
    print(f"  genuine scores p5 {g5:.3f} p50 {g50:.3f}; impostor p50 {i50:.3f} p95 {i95:.3f} max {imax:.3f}")
    if "joe" in s:
        j = s["joe"]
        print(
            f"  joe's print: genuine min {j['genuine_min']:.3f}, impostor max {j['impostor_max']:.3f}; "
            f"FAR {j['far_at_default']:.1%}, FRR {j['frr_at_default']:.1%} at the default"
        )
    e50, e95 = s["embed_ms_p50_p95"]
    per_s = s["embed_ms_per_audio_s"]
    print(
        f"  embedding: p50 {e50:.0f} ms, p95 {e95:.0f} ms per utterance ({per_s:.0f} ms per second of audio)"
    )
    paths = report["critical_path"]
    turns = next(iter(paths.values()))["turns"]
    print(f"\ncritical path ({turns} turns each, real-time pace): speech_ended → final transcript, ms")
    print("| STT decode | without check p50 / max | with check p50 / max | added p50 |\n|---|---|---|---|")
    for name, c in paths.items():
        a, b = c["final_after_endpoint_without_check"], c["final_after_endpoint_with_check"]
        print(
            f"| {name} | {a['p50_ms']:.0f} / {a['max_ms']:.0f} | {b['p50_ms']:.0f} / {b['max_ms']:.0f} "
            f"| {c['added_p50_ms']:+.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--speakers", type=int, default=1 + len(espeak_voices()), help="joe and N-1 espeak voices"
    )
    parser.add_argument("--tests", type=int, default=4, help="test sentences per speaker")
    parser.add_argument("--turns", type=int, default=8, help="real-time turns per mode on the critical path")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speaker.json")
    args = parser.parse_args()
    if args.speakers < 2:
        parser.error("--speakers: at least 2, or there are no impostors")
    default = SttSettings.model_fields["speaker_threshold"].default
    report = {
        "separation": separation(args, SpeakerEncoder(), default),
        "critical_path": {
            "decoded in the pause (default)": asyncio.run(critical_path(args, default, speculate=True)),
            "decoded after the endpoint": asyncio.run(critical_path(args, default, speculate=False)),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_tables(report)
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

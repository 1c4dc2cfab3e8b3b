"""Voice-to-voice latency through the whole mesh, at real-time pace, beside the Wyoming peers.

    python bench/latency.py [--turns 30] [--endpointing both|semantic|fixed]
                            [--preemptive both|on|off] [--retrieval off|on|both]
                            [--cache-hits 10] [--no-peers] [--seed N]

Starts the mesh as ``voicemesh up`` does (one process per service, on loopback) and streams piper
speech into Converse like a microphone: 20 ms chunks at real time, silence before and after. For
each turn it measures, from the last speech sample sent:

    endpoint        the STT's speech_ended arrives (the endpointing silence, plus transport)
    final           the final transcript arrives
    first_token     the first reply text arrives
    first_sentence  the first complete reply sentence arrives
    voice_to_voice  the first reply audio arrives

Every turn is answered afresh: the bench turns the gateway's reply cache off (a cached reply comes
back in under a millisecond and would hide the pipeline) and raises its own mesh's rate limits.
Cache hits are measured apart, on a mesh with the cache on, each question asked twice (the second
answer is the hit), and shown as their own table. ``--endpointing both`` (the default) runs semantic
end of turn (the service's default: each pause judged, a finished question ends in ~200 ms of
silence plus the judgement) and fixed 500 ms silence side by side.
With ``--retrieval on`` the speaker's collection first takes HOME_NOTES (answers to some of the
questions) and a few of Debian's packaged documents, so each turn searches them and the turns they
answer are grounded in passages; ``both`` runs the mesh with and without it and prints the cost.

Then the same speech and the same reply texts go to the peers, one at a time on an idle machine:
wyoming-faster-whisper (end of speech → transcript, with the same 0.5 s of trailing silence a
satellite would send before AudioStop) against voicemesh's speech_ended → final transcript, and
wyoming-piper (text → first audio) against voicemesh's TTS Synthesize. Prints tables and ratios;
writes bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import peers
import soxr
from piper import PiperVoice, SynthesisConfig

from voicemesh.client.live import RATE_HZ, LiveCall
from voicemesh.common.metrics import scrape
from voicemesh.common.samples import float_to_pcm16
from voicemesh.rpc.launcher import Mesh, backend_channel, gateway_channel
from voicemesh.tts.engine import bundled_voice
from voicemesh.v1 import gateway_pb2 as pb
from voicemesh.v1 import retrieval_pb2 as rag_pb2
from voicemesh.v1 import retrieval_pb2_grpc as rag_grpc
from voicemesh.v1 import speech_to_text_pb2 as stt_pb2
from voicemesh.v1 import text_to_speech_pb2 as tts_pb2
from voicemesh.v1 import text_to_speech_pb2_grpc as tts_grpc

QUESTIONS = [
    "What is the capital of France?",
    "How far away is the moon?",
    "Tell me a fun fact about cats.",
    "What time is it?",
    "Set a timer for ten minutes.",
    "Turn on the kitchen lights.",
    "What is the weather like today?",
    "Who wrote Romeo and Juliet?",
    "How many legs does a spider have?",
    "Play some jazz music.",
    "What is two plus two?",
    "Tell me a joke.",
    "Why is the sky blue?",
    "How do I boil an egg?",
    "What is the tallest mountain in the world?",
]
# The speaker's own notes: they answer a few of the questions above, differently from the model.
HOME_NOTES = """# Home notes

## Kitchen
The kitchen lights are on the dimmer beside the back door; say "kitchen lights" to switch them.

## Timers
Kitchen timers ring on the hallway speaker. A ten minute timer is the usual one for tea.

## Eggs
Boil an egg for seven minutes in salted water, then cool it in cold water for one minute.

## Music
Jazz plays from the living room radio, station Blue Note, at volume four.

## Weather
The weather station on the roof reports the garden temperature every five minutes.
"""
DISTRACTORS = [Path("/usr/share/doc/socat/FAQ"), Path("/usr/share/doc/valgrind/html/faq.html")]
STAGES = ["endpoint", "final", "first_token", "first_sentence", "voice_to_voice"]
SILENCE_S = 0.5  # what a satellite sends after the speech before it calls the end (= our default)


@dataclass
class Utterance:
    text: str
    pcm: bytes  # 16 kHz mono, trimmed to the speech itself


def synthesize(voice: PiperVoice, text: str) -> Utterance:
    audio = np.concatenate([c.audio_float_array for c in voice.synthesize(text, SynthesisConfig())])
    audio = np.asarray(soxr.resample(audio, voice.config.sample_rate, RATE_HZ), dtype=np.float32)
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return Utterance(text, float_to_pcm16(audio[loud[0] : loud[-1] + 1]))


@dataclass
class TurnResult:
    question: str
    transcript: str
    reply: str
    stages: dict[str, float]  # seconds from the last speech sample sent
    stt_final_after_endpoint: float
    server: dict[str, float] = field(default_factory=dict)  # TurnDone.timings, ms
    citations: int = 0


ENDPOINTING = {"semantic": stt_pb2.ENDPOINTING_MODE_SEMANTIC, "fixed": stt_pb2.ENDPOINTING_MODE_FIXED}


async def one_turn(
    channel: grpc.aio.Channel,
    utterance: Utterance,
    min_silence_ms: int = 0,
    retrieval: bool = False,
    endpointing: str = "semantic",
) -> TurnResult:
    config = pb.ConverseConfig(
        reply=pb.ReplyConfig(synthesize_audio=True),
        endpointing=stt_pb2.Endpointing(min_silence_ms=min_silence_ms, mode=ENDPOINTING[endpointing]),
        retrieval=pb.RetrievalConfig(off=not retrieval),
    )
    async with LiveCall(channel, config) as call:
        call.say(b"\0\0" * int(0.3 * RATE_HZ))
        last = call.say(utterance.pcm) + len(utterance.pcm) // 2 - 1
        done = await call.wait(lambda h: h.kind == "turn_done", timeout_s=60)
        await call.finish()
    sent = call.sent_at(last)
    assert sent is not None

    def first(kind: str, final: bool = False) -> float:
        heard = next(
            h for h in call.events if h.kind == kind and (not final or h.response.transcript.is_final)
        )
        return heard.at - sent

    stages = {
        "endpoint": first("speech_ended"),
        "final": first("transcript", final=True),
        "first_token": first("reply_text_delta"),
        "first_sentence": first("reply_sentence"),
        "voice_to_voice": first("reply_audio"),
    }
    turn_done = done.response.turn_done
    timings = turn_done.timings
    server = {f.name: getattr(timings, f.name) for f in timings.DESCRIPTOR.fields}
    return TurnResult(
        utterance.text,
        turn_done.transcript,
        turn_done.reply_text,
        stages,
        stages["final"] - stages["endpoint"],
        server,
        len(turn_done.citations),
    )


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = np.asarray(sorted(values))
    return {
        "p50": float(np.percentile(ordered, 50)),
        "p95": float(np.percentile(ordered, 95)),
        "p99": float(np.percentile(ordered, 99)),
        "mean": float(ordered.mean()),
    }


async def ingest_notes(channel: grpc.aio.Channel) -> int:
    """The speaker's documents, in the tenant's shared collection (the one a Converse without a
    user_id searches); returns the passages indexed."""
    documents = [rag_pb2.Document(document_id="home-notes.md", source="home-notes.md", text=HOME_NOTES)]
    documents += [
        rag_pb2.Document(document_id=path.name, source=str(path), data=path.read_bytes())
        for path in DISTRACTORS
    ]
    config = rag_pb2.IngestConfig(request_id="latency-bench", collection=rag_pb2.Collection())

    async def requests() -> AsyncIterator[rag_pb2.IngestRequest]:
        yield rag_pb2.IngestRequest(config=config)
        for document in documents:
            yield rag_pb2.IngestRequest(document=document)

    response = await rag_grpc.RetrievalServiceStub(channel).Ingest(requests(), timeout=120)
    assert not response.errors, response.errors
    return response.passages


async def run_mesh(
    utterances: list[Utterance],
    turns: int,
    preemptive: bool,
    retrieval: bool,
    rng: random.Random,
    min_silence_ms: int,
    endpointing: str,
    cache_hits: bool = False,
) -> tuple[list[TurnResult], dict[str, list[float]]]:
    """``cache_hits``: the reply cache on, every question asked twice, only the second (a hit) kept."""
    os.environ["VOICEMESH_GATEWAY_PREEMPTIVE_GENERATION"] = "true" if preemptive else "false"
    if cache_hits:
        os.environ.pop("VOICEMESH_GATEWAY_REPLY_CACHE_ENTRIES", None)
    else:
        os.environ["VOICEMESH_GATEWAY_REPLY_CACHE_ENTRIES"] = "0"  # every turn answered afresh
    for limit in ("STT", "LLM", "TTS"):  # the bench's own mesh: its turns are not a tenant's abuse
        os.environ[f"VOICEMESH_GATEWAY_LIMIT_{limit}_PER_MIN"] = "100000"
    # Its own data folder: the bench's documents, sessions and history are not the user's.
    data = tempfile.TemporaryDirectory(prefix="voicemesh-latency-")
    os.environ["XDG_DATA_HOME"] = data.name
    mesh = Mesh.on_free_ports()
    await mesh.start()
    try:
        async with gateway_channel(mesh.gateway) as channel:
            if retrieval:
                print(f"  ingested {await ingest_notes(channel)} passages", flush=True)
            turn = (min_silence_ms, retrieval, endpointing)
            await one_turn(channel, utterances[0], *turn)  # warm-up
            results = []
            for n in range(turns):
                utterance = rng.choice(utterances)
                if cache_hits:
                    await one_turn(channel, utterance, *turn)  # the miss that fills the cache
                result = await one_turn(channel, utterance, *turn)
                results.append(result)
                print(
                    f"  turn {n + 1:>3}: v2v {result.stages['voice_to_voice'] * 1000:5.0f} ms  "
                    f"final {result.stages['final'] * 1000:4.0f} ms  "
                    f"cited {result.citations}  {result.transcript!r}",
                    flush=True,
                )
        counters = {
            "preemptive": by_label(mesh, "gateway", "voicemesh_preemptive_turns_total"),
            "speculations": by_label(mesh, "stt", "voicemesh_stt_speculations_total"),
            "endpoints": by_label(mesh, "stt", "voicemesh_stt_endpoints_total"),
            "judgements": by_label(mesh, "stt", "voicemesh_stt_turn_judgements_total"),
            "cache": by_label(mesh, "gateway", "voicemesh_reply_cache_lookups_total"),
        }
        tts_times = await voicemesh_tts(mesh.addresses()["tts"], [r.reply for r in results])
    finally:
        await mesh.stop()
        data.cleanup()
    print(f"  counters: {counters}")
    return results, {"tts_first_audio": tts_times}


def by_label(mesh: Mesh, service: str, metric: str) -> dict[str, float]:
    """A counter's values by label from one service's /metrics."""
    process = next(p for p in mesh.processes if p.name == service)
    prefix = metric + "{"
    return {
        name[len(prefix) : -1]: value
        for name, value in scrape(process.metrics).items()
        if name.startswith(prefix)
    }


async def voicemesh_tts(address: str, texts: list[str]) -> list[float]:
    times = []
    async with backend_channel(address) as channel:
        stub = tts_grpc.TextToSpeechServiceStub(channel)
        for text in texts:
            sent = time.monotonic()
            call = stub.Synthesize(tts_pb2.SynthesizeRequest(text=text))
            first = None
            async for _ in call:
                first = first or time.monotonic() - sent
            assert first is not None
            times.append(first)
    return times


async def run_peers(utterances: list[Utterance], replies: list[str]) -> dict[str, list[float]]:
    stt, tts = [], []
    async with peers.faster_whisper_server(os.cpu_count() or 2) as port:
        await peers.transcribe(port, utterances[0].pcm, SILENCE_S)  # warm-up
        for utterance in utterances:
            _, elapsed = await peers.transcribe(port, utterance.pcm, SILENCE_S)
            stt.append(elapsed)
    async with peers.piper_server() as port:
        await peers.first_audio(port, replies[0])
        for reply in replies:
            tts.append(await peers.first_audio(port, reply))
    return {"stt_final_after_endpoint": stt, "tts_first_audio": tts}


def run_label(endpointing: str, preemptive: bool, retrieval: bool) -> str:
    return (
        f"{endpointing} endpointing, preemptive {'on' if preemptive else 'off'}, "
        f"retrieval {'on' if retrieval else 'off'}"
    )


def table(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"  {'stage':<28}{'p50':>8}{'p95':>8}{'p99':>8}{'mean':>8}   (ms)")
    for name, stats in rows.items():
        cells = "".join(f"{stats[k] * 1000:8.0f}" for k in ("p50", "p95", "p99", "mean"))
        print(f"  {name:<28}{cells}")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--endpointing", choices=["both", "semantic", "fixed"], default="both")
    parser.add_argument("--preemptive", choices=["both", "on", "off"], default="both")
    parser.add_argument("--cache-hits", type=int, default=10, help="turns of the cache-hit run; 0 skips it")
    parser.add_argument(
        "--retrieval", choices=["both", "on", "off"], default="off", help="ground turns in documents"
    )
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--min-silence-ms", type=int, default=0, help="per-stream endpointing; 0 keeps the service's 500"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "latency.json")
    args = parser.parse_args()

    voice = PiperVoice.load(bundled_voice()[1])
    utterances = [synthesize(voice, q) for q in QUESTIONS]
    report: dict[str, object] = {
        "turns": args.turns,
        "cpus": os.cpu_count(),
        "min_silence_ms": args.min_silence_ms or 500,
        "runs": {},
    }
    runs: dict[str, dict[str, object]] = {}
    choices = {"both": [True, False], "on": [True], "off": [False]}
    endpointings = ["semantic", "fixed"] if args.endpointing == "both" else [args.endpointing]
    modes = [
        (e, p, r) for e in endpointings for p in choices[args.preemptive] for r in choices[args.retrieval]
    ]
    replies: list[str] = []
    ours: dict[str, list[float]] = {}
    for endpointing, preemptive, retrieval in modes:
        label = run_label(endpointing, preemptive, retrieval)
        print(f"voicemesh, {label}: {args.turns} turns at real-time pace", flush=True)
        results, extra = await run_mesh(
            utterances,
            args.turns,
            preemptive,
            retrieval,
            random.Random(args.seed),
            args.min_silence_ms,
            endpointing,
        )
        rows = {stage: percentiles([r.stages[stage] for r in results]) for stage in STAGES}
        rows["stt: endpoint → final"] = percentiles([r.stt_final_after_endpoint for r in results])
        rows["tts: text → first audio"] = percentiles(extra["tts_first_audio"])
        if retrieval:
            ended = [r.server["retrieval_ms"] / 1000 for r in results]
            rows["rag: search ended (server)"] = percentiles(ended)
        table(f"voicemesh, {label} (from the last speech sample sent)", rows)
        grounded = sum(1 for r in results if r.citations)
        if retrieval:
            print(f"  {grounded} of {len(results)} turns grounded in the speaker's documents")
        runs[label] = {"stages": rows, "grounded_turns": grounded, "turns": [r.__dict__ for r in results]}
        if not replies:
            replies = [r.reply for r in results]
            ours = {
                "stt_final_after_endpoint": [r.stt_final_after_endpoint for r in results],
                "tts_first_audio": extra["tts_first_audio"],
            }
    if args.cache_hits:
        first = modes[0]
        print(f"\nvoicemesh, reply cache on: {args.cache_hits} repeated questions", flush=True)
        hits, _ = await run_mesh(
            utterances,
            args.cache_hits,
            first[1],
            first[2],
            random.Random(args.seed),
            args.min_silence_ms,
            first[0],
            cache_hits=True,
        )
        rows = {stage: percentiles([r.stages[stage] for r in hits]) for stage in STAGES}
        table(f"voicemesh, cache hits ({run_label(*first)})", rows)
        report["cache_hits"] = {"stages": rows, "turns": [r.__dict__ for r in hits]}
    report["runs"] = runs

    def v2v(endpointing: str, preemptive: bool, retrieval: bool) -> dict[str, float] | None:
        run = runs.get(run_label(endpointing, preemptive, retrieval))
        return run["stages"]["voice_to_voice"] if run else None  # type: ignore[index]

    # (what it says, where it goes, the run without the feature, the run with it, -1: it saves)
    comparisons = [
        ("semantic endpointing saves", "semantic_saves_s", ("fixed", p, r), ("semantic", p, r), -1)
        for p in (True, False)
        for r in (False, True)
    ]
    comparisons += [
        ("preemptive generation saves", "preemptive_saves_s", (e, False, r), (e, True, r), -1)
        for e in endpointings
        for r in (False, True)
    ]
    comparisons += [
        ("retrieval costs", "retrieval_costs_s", (e, p, False), (e, p, True), 1)
        for e in endpointings
        for p in (True, False)
    ]
    for name, key, without, with_, sign in comparisons:
        before, after = v2v(*without), v2v(*with_)
        if before is None or after is None or key in report:
            continue
        delta = {k: sign * (after[k] - before[k]) for k in ("p50", "p95", "mean")}
        report[key] = delta
        p50, mean = delta["p50"] * 1000, delta["mean"] * 1000
        print(f"\n{name} (voice to voice): p50 {p50:.0f} ms, mean {mean:.0f} ms")

    if not args.no_peers:
        print("\nWyoming peers on the same models, one request at a time …", flush=True)
        theirs = await run_peers(utterances, replies)
        comparison = {}
        for key in ("stt_final_after_endpoint", "tts_first_audio"):
            mine, other = percentiles(ours[key]), percentiles(theirs[key])
            # Ours can be 0 ms (the final was decoded in the pause); count it as 1 ms for the ratio.
            ratio = other["p50"] / max(mine["p50"], 0.001)
            comparison[key] = {"voicemesh": mine, "wyoming": other, "ratio_p50": ratio}
        print(f"\n  {'':<36}{'voicemesh p50':>14}{'wyoming p50':>13}{'ratio':>8}")
        for key, name in (("stt_final_after_endpoint", "STT: end of speech → final"),
                          ("tts_first_audio", "TTS: text → first audio")):  # fmt: skip
            row = comparison[key]
            mine_ms, theirs_ms = row["voicemesh"]["p50"] * 1000, row["wyoming"]["p50"] * 1000
            ratio = row["ratio_p50"]
            shown = f"{ratio:7.1f}x" if ratio < 100 else "  >100x"
            print(f"  {name:<36}{mine_ms:11.0f} ms{theirs_ms:10.0f} ms{shown}")
        report["peers"] = comparison
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())

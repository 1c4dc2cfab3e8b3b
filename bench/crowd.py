"""Many people talking to one mesh at once: how the core keeps up, and what it sheds past capacity.

    python bench/crowd.py [--talkers 1,4,8,16,24,32] [--seconds 45] [--audio off|on|both]
                          [--interrupt off|on|both] [--endpointing fixed|semantic] [--seed N]

Starts the mesh as ``voicemesh up`` does (one process per service, on loopback; its limits raised
and its reply cache off, so every turn reaches the model) and, through the public SDK, opens N
Converse streams at once. Each is a talker: real recorded speech (bench/recorded.py's clips of 1.5
to 3.5 s) at real-time pace in 100 ms chunks, then silence until that turn's reply is done, then
the next clip. With ``--interrupt on`` a talker whose reply has not started 1 s after they stopped
speaking speaks again over it (barge-in: the late turn is cancelled). Replies are text, or spoken
with ``--audio on``. Per N it prints, from the last speech sample sent (as the client saw it):
final transcript and first reply token P50/P95 (and the first token after the final: what the
core adds), turns answered, turns refused (by status: a shed
turn's turn_failed), WER of the finals, and each process's CPU (cores) and peak RSS; and it counts
ERROR lines in every service's log and INTERNAL/UNKNOWN statuses, which must stay at zero. Writes
bench/results/crowd.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import jiwer
import numpy as np
from recorded import Recording, recordings
from wer import normalize

from voicemesh.client.sdk import AsyncClient
from voicemesh.common.metrics import scrape
from voicemesh.common.samples import float_to_pcm16
from voicemesh.rpc.launcher import Mesh
from voicemesh.v1 import gateway_pb2

RATE = 16_000
CHUNK_S = 0.1
LATE_S = 1.0  # an interrupting talker speaks again if no reply has started by then
RESULTS = Path(__file__).parent / "results" / "crowd.json"


@dataclass
class Turn:
    text: str  # what was said
    spoken_at: float  # when its last speech sample was sent
    final_s: float | None = None
    first_token_s: float | None = None
    transcript: str = ""
    outcome: str = ""  # "answered", "interrupted", or the status that refused it
    core: dict[str, float] = field(default_factory=dict)  # what turn_done says of the core's part
    first_audio_at: float | None = None
    audio_s: float = 0.0  # of reply audio received: a listener hears it out before speaking again


@dataclass
class Level:
    turns: list[Turn] = field(default_factory=list)
    stream_errors: Counter[str] = field(default_factory=Counter)


def speech_clips() -> list[Recording]:
    clips = [r for r in recordings() if 1.5 <= len(r.audio) / RATE <= 3.6]
    assert len(clips) >= 4, "bench/recorded.py's corpus is incomplete: run `make install`"
    return clips


class Talker:
    """One person: a clip, silence until its reply is done (or, interrupting, until it is late),
    the next clip; until ``until``. A stream that fails is counted and opened again."""

    def __init__(
        self,
        client: AsyncClient,
        who: int,
        clips: list[Recording],
        rng: random.Random,
        until: float,
        level: Level,
        *,
        speak: bool,
        interrupt: bool,
        endpointing: str,
    ) -> None:
        self.client, self.who, self.clips, self.rng = client, who, clips, rng
        self.until, self.level, self.speak, self.interrupt = until, level, speak, interrupt
        self.endpointing = endpointing
        self.turn: Turn | None = None
        self.settled = asyncio.Event()  # the current turn's reply is done, failed or interrupted

    async def run(self) -> None:
        while time.monotonic() < self.until:
            self.turn = None
            try:
                async for event in self.client.converse(
                    self.audio(),
                    speak=self.speak,
                    user_id=f"crowd-{self.who}",
                    retrieval=False,
                    endpointing=self.endpointing,
                ):
                    self.heard(event)
            except grpc.aio.AioRpcError as error:
                self.level.stream_errors[error.code().name] += 1
                await asyncio.sleep(0.5)

    async def audio(self) -> AsyncIterator[bytes]:
        silence = b"\0\0" * int(CHUNK_S * RATE)
        next_at = time.monotonic()

        async def paced(chunk: bytes) -> bytes:
            nonlocal next_at
            next_at += CHUNK_S
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            return chunk

        for _ in range(3):
            yield await paced(silence)
        while time.monotonic() < self.until:
            clip = self.rng.choice(self.clips)
            pcm = float_to_pcm16(clip.audio)
            step = int(CHUNK_S * RATE) * 2
            for offset in range(0, len(pcm), step):
                yield await paced(pcm[offset : offset + step])
            self.settled.clear()
            turn = self.turn = Turn(clip.text, time.monotonic())
            self.level.turns.append(turn)
            waited = 0.0
            while not self.settled.is_set() and waited < 30:
                yield await paced(silence)
                waited += CHUNK_S
                late = turn.first_token_s is None and waited >= LATE_S
                if self.interrupt and late and turn.final_s is not None:
                    break  # speak again over the late reply
            while turn.first_audio_at is not None and time.monotonic() < turn.first_audio_at + turn.audio_s:
                yield await paced(silence)  # the reply is still playing
            for _ in range(3):
                yield await paced(silence)

    def heard(self, event: gateway_pb2.ConverseResponse) -> None:
        turn = self.turn
        if turn is None:
            return
        kind = event.WhichOneof("event")
        since = time.monotonic() - turn.spoken_at
        if kind == "transcript" and event.transcript.is_final:
            turn.transcript += " " + event.transcript.transcript
            if turn.final_s is None:
                turn.final_s = since
        elif kind == "reply_text_delta" and turn.first_token_s is None:
            turn.first_token_s = since
        elif kind == "reply_audio":
            audio = event.reply_audio
            turn.first_audio_at = turn.first_audio_at or time.monotonic()
            turn.audio_s += len(audio.audio_content) / 2 / (audio.sample_rate_hz or 22050)
        elif kind == "turn_done":
            turn.outcome = turn.outcome or "answered"
            done = event.turn_done
            # getattr: the same bench measures a mesh from before these fields existed
            turn.core = {
                "queue_s": getattr(done.timings, "core_queue_ms", 0.0) / 1000,
                "prefill_s": getattr(done.timings, "core_prefill_ms", 0.0) / 1000,
                "prompt_tokens": getattr(done, "prompt_tokens", 0),
                "cached_tokens": getattr(done, "cached_prompt_tokens", 0),
            }
            self.settled.set()
        elif kind == "turn_failed":
            turn.outcome = _status_name(event.turn_failed.code)
            self.settled.set()
        elif kind == "interrupted":
            turn.outcome = "interrupted"
            self.settled.set()


def _status_name(value: int) -> str:
    return next((code.name for code in grpc.StatusCode if code.value[0] == value), str(value))


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


class Sampler:
    """Each process's CPU seconds and peak resident memory, read off its /metrics."""

    def __init__(self, mesh: Mesh) -> None:
        self._mesh = mesh
        self._cpu0 = self._read("process_cpu_seconds_total")
        self._t0 = time.monotonic()
        self.peak = dict.fromkeys(self._cpu0, 0.0)

    def _read(self, metric: str) -> dict[str, float]:
        return {p.name: scrape(p.metrics)[metric] for p in self._mesh.processes}

    async def run(self) -> None:
        while True:
            for name, rss in self._read("process_resident_memory_bytes").items():
                self.peak[name] = max(self.peak[name], rss)
            await asyncio.sleep(1.0)

    def cpu(self) -> dict[str, float]:
        """Cores used by each process since the sampler started."""
        wall = time.monotonic() - self._t0
        return {
            name: (cpu - self._cpu0[name]) / wall
            for name, cpu in self._read("process_cpu_seconds_total").items()
        }


async def run_level(
    mesh: Mesh,
    n: int,
    seconds: float,
    clips: list[Recording],
    seed: int,
    *,
    speak: bool,
    interrupt: bool,
    endpointing: str,
) -> dict[str, object]:
    level = Level()
    rng = random.Random(seed * 1000 + n)
    before = scrape(next(p for p in mesh.processes if p.name == "core").metrics)
    sampler = Sampler(mesh)
    sampling = asyncio.create_task(sampler.run())
    started = time.monotonic()
    until = started + seconds
    try:
        async with (
            AsyncClient(mesh.gateway, timeout_s=seconds + 120) as client,
            asyncio.TaskGroup() as talkers,
        ):
            for who in range(n):
                person = Talker(
                    client,
                    who,
                    clips,
                    random.Random(rng.random()),
                    until,
                    level,
                    speak=speak,
                    interrupt=interrupt,
                    endpointing=endpointing,
                )
                talkers.create_task(person.run())
                await asyncio.sleep(rng.uniform(0, 2.0 / max(n, 1)))  # people do not start in step
    finally:
        sampling.cancel()
    cpu = sampler.cpu()
    core_process = next(p for p in mesh.processes if p.name == "core")
    after = scrape(core_process.metrics)

    def grew(metric: str) -> float:
        return after.get(metric, 0.0) - before.get(metric, 0.0)

    steps, step_s = grew("voicemesh_llm_step_seconds_count"), grew("voicemesh_llm_step_seconds_sum")
    batched = grew("voicemesh_llm_batch_sequences_sum")
    done = [t for t in level.turns if t.outcome]
    answered = [t for t in done if t.outcome == "answered"]
    finals = [t.final_s for t in done if t.final_s is not None]
    firsts = [t.first_token_s for t in answered if t.first_token_s is not None]
    # What the core adds: the first token after the final transcript (the endpoint's wait left out).
    core = [
        t.first_token_s - t.final_s for t in answered if t.first_token_s is not None and t.final_s is not None
    ]
    queued = [t.core["queue_s"] for t in answered if t.core]
    prefill = [t.core["prefill_s"] for t in answered if t.core]
    prompt = sum(t.core.get("prompt_tokens", 0) for t in answered)
    cached = sum(t.core.get("cached_tokens", 0) for t in answered)
    refused = Counter(t.outcome for t in done if t.outcome not in ("answered", "interrupted"))
    heard = [t for t in done if t.transcript.strip()]
    wer = (
        100 * float(jiwer.wer([normalize(t.text) for t in heard], [normalize(t.transcript) for t in heard]))
        if heard
        else None
    )
    return {
        "talkers": n,
        "turns": len(done),
        "answered": len(answered),
        "interrupted": sum(t.outcome == "interrupted" for t in done),
        "refused": dict(refused),
        "stream_errors": dict(level.stream_errors),
        "final_p50_s": pct(finals, 50),
        "final_p95_s": pct(finals, 95),
        "first_token_p50_s": pct(firsts, 50),
        "first_token_p95_s": pct(firsts, 95),
        "first_token_max_s": max(firsts) if firsts else None,
        "after_final_p50_s": pct(core, 50),
        "after_final_p95_s": pct(core, 95),
        "core_queue_p95_s": pct(queued, 95),
        "core_prefill_p50_s": pct(prefill, 50),
        "core_prefill_p95_s": pct(prefill, 95),
        "prompt_tokens": prompt,
        "cached_prompt_tokens": cached,
        "decode_steps": steps,
        # of the level's wall time (talkers finish the turn under way), the share spent decoding
        "decode_busy": step_s / (time.monotonic() - started),
        "mean_step_s": step_s / steps if steps else None,
        "mean_turns_per_step": batched / steps if steps else None,
        "wer_percent": wer,
        "cpu_cores": cpu,
        "peak_rss_mib": {name: rss / 2**20 for name, rss in sampler.peak.items()},
    }


def bad_lines(mesh: Mesh) -> list[str]:
    """Every ERROR record in the services' logs, each with the traceback under it, if any."""
    records = []
    for process in mesh.processes:
        assert process.log is not None
        record: list[str] = []
        for line in [*process.log.read_text(errors="replace").splitlines(), "0000-"]:
            if re.match(r"\d{4}-", line):  # a new log record starts with its date
                text = "\n".join(record)
                if " ERROR " in text or "Traceback" in text or "StatusCode.INTERNAL" in text:
                    records.append(f"{process.name}: {text}")
                record = []
            record.append(line)
    return records


def statuses(mesh: Mesh) -> dict[str, float]:
    """RPCs that ended INTERNAL or UNKNOWN, per process and method."""
    found = {}
    for process in mesh.processes:
        for name, value in scrape(process.metrics).items():
            if name.startswith("voicemesh_rpcs_total{") and (
                'code="INTERNAL"' in name or 'code="UNKNOWN"' in name
            ):
                found[f"{process.name} {name}"] = value
    return found


async def run_config(
    levels: list[int], seconds: float, seed: int, *, speak: bool, interrupt: bool, endpointing: str
) -> dict[str, object]:
    label = (
        f"audio {'on' if speak else 'off'}, {'interrupting' if interrupt else 'patient'} talkers, "
        f"{endpointing} endpointing"
    )
    print(f"\n{label}", flush=True)
    env = {
        "VOICEMESH_GATEWAY_REPLY_CACHE_ENTRIES": "0",  # every turn is the model's
        **{f"VOICEMESH_GATEWAY_LIMIT_{kind}_PER_MIN": "100000" for kind in ("STT", "LLM", "TTS")},
        "VOICEMESH_GATEWAY_MAX_STREAMS_PER_CALLER": "1000",
        "VOICEMESH_GATEWAY_MAX_TURNS_PER_CALLER": "1000",
    }
    clips = speech_clips()
    with tempfile.TemporaryDirectory(prefix="voicemesh-crowd-") as folder:
        logs = Path(folder) / "logs"
        logs.mkdir()
        mesh = Mesh.on_free_ports(env={**env, "XDG_DATA_HOME": folder}, log_dir=logs)
        await mesh.start()
        rows = []
        try:
            print(
                f"  {'N':>3} {'turns':>6} {'refused':>8} {'final P50/P95':>15} {'first token P50/P95':>21}"
                f" {'after final':>13} {'prefill':>11} {'cached':>7} {'WER %':>6}"
                "  cpu cores (gateway/stt/core/tts)",
                flush=True,
            )
            for n in levels:
                row = await run_level(
                    mesh, n, seconds, clips, seed, speak=speak, interrupt=interrupt, endpointing=endpointing
                )
                rows.append(row)
                cpu = row["cpu_cores"]
                assert isinstance(cpu, dict)
                refused = sum(row["refused"].values()) if isinstance(row["refused"], dict) else 0
                print(
                    f"  {n:>3} {row['turns']:>6} {refused:>8} "
                    f"{ms(row['final_p50_s']):>7}/{ms(row['final_p95_s']):<7} "  # type: ignore[arg-type]
                    f"{ms(row['first_token_p50_s']):>10}/{ms(row['first_token_p95_s']):<10} "  # type: ignore[arg-type]
                    f"{ms(row['after_final_p50_s']):>6}/{ms(row['after_final_p95_s']):<6} "  # type: ignore[arg-type]
                    f"{ms(row['core_prefill_p50_s']):>5}/{ms(row['core_prefill_p95_s']):<5} "  # type: ignore[arg-type]
                    f"{100 * row['cached_prompt_tokens'] / max(row['prompt_tokens'], 1):>6.0f}% "  # type: ignore[operator]
                    f"{row['wer_percent'] or 0:>6.1f}  "
                    + "/".join(f"{cpu.get(name, 0):.2f}" for name in ("gateway", "stt", "core", "tts"))
                    + f"  decode {row['decode_busy']:.0%} busy, {row['mean_turns_per_step'] or 0:.1f} a step",
                    flush=True,
                )
            bad, internal = bad_lines(mesh), statuses(mesh)
        finally:
            await mesh.stop()
    print(f"  ERROR lines in the logs: {len(bad)}; INTERNAL/UNKNOWN statuses: {sum(internal.values()):.0f}")
    for record in bad[:3]:
        print("   ", "\n    ".join(record.splitlines()[:40]))
    return {
        "label": label,
        "speak": speak,
        "interrupt": interrupt,
        "levels": rows,
        "error_lines": bad,
        "internal": internal,
    }


def both(value: str) -> list[bool]:
    return {"off": [False], "on": [True], "both": [False, True]}[value]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--talkers", default="1,4,8,16,24,32")
    parser.add_argument("--seconds", type=float, default=45.0, help="each level runs this long")
    parser.add_argument("--audio", choices=["off", "on", "both"], default="off")
    parser.add_argument("--interrupt", choices=["off", "on", "both"], default="both")
    parser.add_argument(
        "--endpointing",
        choices=["fixed", "semantic"],
        default="fixed",
        help="how talkers' turns end (fixed 500 ms: the baseline's; semantic waits up to 1.5 s on a "
        "sentence that sounds unfinished, as read speech often does)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    levels = [int(n) for n in args.talkers.split(",")]
    runs = []
    for speak in both(args.audio):
        for interrupt in both(args.interrupt):
            runs.append(
                await run_config(
                    levels,
                    args.seconds,
                    args.seed,
                    speak=speak,
                    interrupt=interrupt,
                    endpointing=args.endpointing,
                )
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seconds": args.seconds, "runs": runs}, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())

"""Chaos: talkers keep asking while every part of the mesh is killed and brought back in turn.

    python bench/chaos.py [--talkers 4] [--seconds 120] [--period 10]
                          [--events stt,tts,core,gateway,redis,postgres]

The mesh runs as `voicemesh up` runs it, with its sessions in a Redis of its own and its history in
the machine's PostgreSQL (a schema of its own, dropped afterwards). Each talker opens a Converse
stream, says a question at real-time pace (real piper speech), and waits for the turn's end; one
turn in eight it hangs up instead, at a random moment. Every ``--period`` seconds the next event
happens: a service is killed (SIGKILL) and started again on its address, or Redis is killed and
started again, or PostgreSQL is stopped and started. After each, a probe says a question (through
every hop) until a turn is served: the recovery time is how long after the restart that turn
began. A failed turn that was open while nothing was down or recovering is counted apart.

Each turn ends one way: served (turn_done), failed with a status (a turn_failed event, or the stream
ending with one), hung up by its talker, or lost: sent, and neither answered nor refused within
60 s, or the stream ending OK without a word on it. It prints a table and writes
bench/results/chaos.json, with the ERROR lines of every process's log. Goal: lost = 0, every failure
with a precise status (never INTERNAL or UNKNOWN) and during an outage, recovery within 2 s of each
restart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import grpc
import numpy as np
import soxr
from piper import PiperVoice, SynthesisConfig

from voicemesh.client.live import RATE_HZ, LiveCall
from voicemesh.common.samples import float_to_pcm16
from voicemesh.rpc.launcher import Mesh, free_port, gateway_channel
from voicemesh.tts.engine import bundled_voice

QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?", "Tell me a joke."]
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TURN_TIMEOUT_S = 60.0
CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
UNLIMITED = {"limit_stt_per_min": 100_000, "limit_llm_per_min": 100_000, "limit_tts_per_min": 100_000}


def speech(voice: PiperVoice, text: str) -> bytes:
    audio = np.concatenate([c.audio_float_array for c in voice.synthesize(text, SynthesisConfig())])
    return float_to_pcm16(
        np.asarray(soxr.resample(audio, voice.config.sample_rate, RATE_HZ), dtype=np.float32)
    )


class Tally:
    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()  # served, hung up, lost, or "failed <CODE>"
        self.lost: list[str] = []
        self.imprecise: list[str] = []  # what an INTERNAL or UNKNOWN said
        self.failures: list[tuple[float, float, str]] = []  # when each failed turn began and ended, why

    def add(self, outcome: str, why: str = "", began: float = 0.0) -> None:
        self.outcomes[outcome] += 1
        if outcome.startswith("failed"):
            self.failures.append((began, time.monotonic(), why))
        if outcome == "lost":
            self.lost.append(why)
        elif outcome in ("failed INTERNAL", "failed UNKNOWN"):
            self.imprecise.append(why)


async def one_turn(
    gateway: str, pcm: bytes, hang_up_after: float | None = None, speed: float = 1.0
) -> tuple[str, str]:
    """Say ``pcm`` on a new Converse stream and wait for its turn's end: the outcome, and why."""
    async with gateway_channel(gateway) as channel, LiveCall(channel, speed=speed) as call:
        call.say(b"\0\0" * (RATE_HZ // 4) + pcm)
        ended = asyncio.ensure_future(
            call.wait(lambda h: h.kind in ("turn_done", "turn_failed"), timeout_s=TURN_TIMEOUT_S)
        )
        try:
            if hang_up_after is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(ended), hang_up_after)
                except TimeoutError:
                    return "hung up", ""  # the LiveCall's exit cancels the stream mid-turn
            heard = await ended
        except TimeoutError:
            return "lost", "no end of turn within 60 s"
        except grpc.aio.AioRpcError as error:
            return f"failed {error.code().name}", f"{error.details()} ({error.debug_error_string()})"
        except AssertionError:  # the stream ended OK, but said nothing of the turn
            return "lost", "the stream ended without turn_done or turn_failed"
        finally:
            ended.cancel()
        if heard.kind == "turn_done":
            return "served", ""
        failed = heard.response.turn_failed
        return f"failed {CODE_NAMES.get(failed.code, 'UNKNOWN')}", failed.message


async def talker(gateway: str, utterances: list[bytes], stop_at: float, seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        hang_up_after = rng.uniform(0.2, 3.0) if rng.random() < 1 / 8 else None
        began = time.monotonic()
        outcome, why = await one_turn(gateway, rng.choice(utterances), hang_up_after)
        tally.add(outcome, why, began)
        if outcome.startswith("failed"):
            await asyncio.sleep(0.5)  # a caller waits a moment before it tries a failed gateway again


async def probe(gateway: str, pcm: bytes, timeout_s: float = 60.0) -> float:
    """Seconds until a turn begun then is served: a spoken question through every hop, sent at
    four times real time, tried again 0.1 s after each failure."""
    started = time.monotonic()
    while (began := time.monotonic()) - started < timeout_s:
        outcome, _ = await one_turn(gateway, pcm, speed=4.0)
        if outcome == "served":
            return began - started
        await asyncio.sleep(0.1)
    return float("inf")


def postgres(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            version,
            "main",
            action,
            *(["-m", "fast"] if action == "stop" else []),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


class Redis:
    """A private redis-server the chaos may kill; started again on the same port, empty."""

    def __init__(self, folder: Path) -> None:
        self.port, self.folder = free_port(), folder
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        return subprocess.Popen(
            ["redis-server", *options, "--dir", str(self.folder)], stdout=subprocess.DEVNULL
        )

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        self.process = self._start()


class Outage:
    """One chaos event: from the kill until a probe is answered again."""

    def __init__(self, n: int, event: str) -> None:
        self.name = f"{n}:{event}"
        self.began = time.monotonic()
        self.down_s = 0.0  # kill to restarted (serving again, or the store back up)
        self.recovery_s = 0.0  # restarted to the first answer
        self.ended = float("inf")

    def overlaps(self, began: float, ended: float, why: str = "") -> bool:
        return began <= self.ended and ended >= self.began


async def chaos(
    mesh: Mesh, events: list[str], period_s: float, stop_at: float, redis: Redis, question: bytes
) -> list[Outage]:
    outages: list[Outage] = []
    n = 0
    while time.monotonic() + period_s < stop_at:
        await asyncio.sleep(period_s)
        event = events[n % len(events)]
        n += 1
        outage = Outage(n, event)
        outages.append(outage)
        if event == "redis":
            redis.kill()
            await asyncio.sleep(2)
            redis.restart()
        elif event == "postgres":
            await asyncio.to_thread(postgres, "stop")
            await asyncio.sleep(2)
            await asyncio.to_thread(postgres, "start")
        else:
            await mesh.restart(event)
        outage.down_s = time.monotonic() - outage.began
        outage.recovery_s = await probe(mesh.gateway, question)
        outage.ended = time.monotonic()
        print(f"  {event:<9} down {outage.down_s:5.2f} s, answered {outage.recovery_s:.2f} s on", flush=True)
    return outages


def keep_logs(folder: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for log in folder.glob("*.log"):
        shutil.copy(log, into / log.name)


def error_lines(folder: Path) -> list[str]:
    return [
        f"{log.stem}: {line}"
        for log in sorted(folder.glob("*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if " ERROR " in line or " CRITICAL " in line
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--talkers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--period", type=float, default=10.0, help="seconds between two chaos events")
    parser.add_argument("--events", default="stt,tts,core,gateway,redis,postgres")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "chaos.json")
    parser.add_argument("--logs", type=Path, help="keep every process's log in this folder")
    args = parser.parse_args()
    events = [e for e in args.events.split(",") if e]

    voice = PiperVoice.load(bundled_voice()[1])
    utterances = [speech(voice, q) for q in QUESTIONS]
    schema = f"vm_chaos_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    await admin.execute(f"CREATE SCHEMA {schema}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        redis = Redis(folder)
        mesh = Mesh.on_free_ports(
            settings={
                "core": {
                    "session_url": f"redis://127.0.0.1:{redis.port}/0",
                    "history_url": f"{POSTGRES_URL}?search_path={schema}",
                },
                "gateway": {**UNLIMITED, "spill_dir": folder / "spill"},
            },
            env={"XDG_DATA_HOME": str(folder / "data")},
            log_dir=folder,
        )
        await mesh.start()
        tally = Tally()
        try:
            plan = f"every {args.period:g} s one of: {', '.join(events)}"
            print(f"{args.talkers} talkers for {args.seconds:.0f} s; {plan}")
            stop_at = time.monotonic() + args.seconds
            talking = [
                asyncio.create_task(talker(mesh.gateway, utterances, stop_at, args.seed + n, tally))
                for n in range(args.talkers)
            ]
            outages = await chaos(mesh, events, args.period, stop_at, redis, utterances[0])
            await asyncio.gather(*talking)
        finally:
            await mesh.stop()
            redis.kill()
            errors = error_lines(folder)
            if args.logs is not None:
                keep_logs(folder, args.logs)
    await admin.close()
    admin = await asyncpg.connect(POSTGRES_URL)  # anew: the chaos restarted PostgreSQL under the first
    await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    await admin.close()

    failed = {
        k.removeprefix("failed "): v for k, v in sorted(tally.outcomes.items()) if k.startswith("failed")
    }
    # A failure is the outage's if the turn was open while something was down or not yet answering.
    calm = [f[2] for f in tally.failures if not any(o.overlaps(*f) for o in outages)]
    calm_failures = len(calm)
    recovery = {o.name: o.recovery_s for o in outages}
    report = {
        "talkers": args.talkers,
        "seconds": args.seconds,
        "events": events,
        "served": tally.outcomes["served"],
        "failed": failed,
        "hung_up": tally.outcomes["hung up"],
        "lost": tally.outcomes["lost"],
        "lost_why": tally.lost,
        "imprecise": sum(v for k, v in failed.items() if k in ("INTERNAL", "UNKNOWN")),
        "imprecise_why": tally.imprecise,
        "failed_with_nothing_down": calm_failures,
        "failed_with_nothing_down_why": Counter(calm).most_common(10),
        "down_s": {o.name: o.down_s for o in outages},
        "failed_during": {o.name: sum(o.overlaps(*f) for f in tally.failures) for o in outages},
        "recovery_s": recovery,
        "worst_recovery_s": max(recovery.values(), default=0.0),
        "error_lines": len(errors),
        "errors": errors[:50],
    }
    rows = [
        ("turns served", report["served"]),
        *((f"turns failed, {code}", n) for code, n in failed.items()),
        ("turns hung up by their talker", report["hung_up"]),
        ("turns failed with nothing down", calm_failures),
        ("turns lost", report["lost"]),
        ("worst recovery after an event", f"{report['worst_recovery_s']:.2f} s"),
        ("ERROR lines in the logs", report["error_lines"]),
    ]
    print(f"{'event':<12} {'down s':>7} {'recovery s':>10} {'turns failed':>12}")
    for o in outages:
        print(f"{o.name:<12} {o.down_s:7.2f} {o.recovery_s:10.2f} {report['failed_during'][o.name]:12d}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for line in errors[:10]:
        print(f"  {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)

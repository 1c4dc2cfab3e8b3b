"""Session read/write latency and history append throughput, on every backend.

    python bench/stores.py [--ops 2000] [--turns 5000]

Sessions: ``--ops`` writes and reads of a session with 3 exchanges, one at a time, as a turn does
them, on the in-process store, on Redis at 127.0.0.1:6379, and on Redis behind the failover store
the core uses. History: ``--turns`` turns appended one per transaction (what a lone turn costs), and
the same number queued on the core's write-behind writer, which appends in batches; on SQLite (a
temporary file) and on PostgreSQL at 127.0.0.1:5432 (database test, a schema of its own, dropped
afterwards). Prints a table; writes bench/results/stores.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from voicemesh.storage.failover import FailoverSessionStore
from voicemesh.storage.history import TurnRecord, open_history_store
from voicemesh.storage.sessions import MemorySessionStore, RedisSessionStore, Session
from voicemesh.storage.writer import HistoryWriter

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
REPLY = "The Eiffel Tower is about three hundred and thirty metres tall. It was finished in 1889."


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


async def timed(op: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await op()
        samples.append(time.perf_counter() - started)
    return samples


async def sessions(name: str, store: Any, ops: int) -> dict[str, Any]:
    session = Session(f"bench-{uuid.uuid4().hex}", "bench-user")
    for n in range(3):
        session.add(f"question {n}", REPLY)
    await store.put(session)  # connect before timing
    writes = await timed(lambda: store.put(session), ops)
    reads = await timed(lambda: store.get(session.session_id), ops)
    await store.delete(session.session_id)
    await store.close()
    return {"store": name, "write": percentiles(writes), "read": percentiles(reads)}


def turn(n: int) -> TurnRecord:
    timings = {"final_transcript_ms": 0.0, "first_token_ms": 80.0, "first_audio_ms": 560.0, "done_ms": 900.0}
    return TurnRecord("bench-user", "bench-session", f"question number {n}", REPLY, "local/SmolLM2", timings)


async def history(name: str, url: str, turns: int, **connect: Any) -> dict[str, Any]:
    store = await open_history_store(url, **connect)
    started = time.perf_counter()
    for n in range(turns):
        await store.append([turn(n)])
    single = turns / (time.perf_counter() - started)

    writer = HistoryWriter(store, max_queued=turns)
    started = time.perf_counter()
    for n in range(turns):
        writer.put(turn(n))
    writer.start()
    left = await writer.flush(120)
    queued = turns / (time.perf_counter() - started)
    await writer.close(flush_s=5)
    stored = len(await store.recent("bench-user", 2 * turns))
    await store.close()
    assert left == 0 and stored == 2 * turns, (left, stored)
    return {"store": name, "turns": turns, "one_per_transaction_per_s": single, "write_behind_per_s": queued}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"sessions": [], "history": []}
    report["sessions"].append(await sessions("in-process", MemorySessionStore(), args.ops))
    report["sessions"].append(await sessions("redis", RedisSessionStore(REDIS_URL), args.ops))
    report["sessions"].append(
        await sessions("redis (failover store)", FailoverSessionStore(RedisSessionStore(REDIS_URL)), args.ops)
    )
    with tempfile.TemporaryDirectory() as tmp:
        report["history"].append(await history("sqlite", f"sqlite:///{tmp}/history.db", args.turns))
    schema = f"vm_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        report["history"].append(
            await history("postgresql", POSTGRES_URL, args.turns, server_settings={"search_path": schema})
        )
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
    return report


def print_table(report: dict[str, Any]) -> None:
    print("\nsession store (one call at a time)")
    print(f"{'store':<24} {'write P50':>10} {'write P99':>10} {'read P50':>10} {'read P99':>10}")
    for row in report["sessions"]:
        cells = [row[op][stat] for op in ("write", "read") for stat in ("p50_ms", "p99_ms")]
        print(f"{row['store']:<24} " + " ".join(f"{ms:>8.3f}ms" for ms in cells))
    print("\nhistory appends")
    print(f"{'store':<12} {'turns':>6} {'1 per transaction':>18} {'write-behind batches':>21}")
    for row in report["history"]:
        print(
            f"{row['store']:<12} {row['turns']:>6} {row['one_per_transaction_per_s']:>12.0f} /s"
            f" {row['write_behind_per_s']:>15.0f} /s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "stores.json")
    arguments = parser.parse_args()
    result = asyncio.run(main(arguments))
    print_table(result)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(result, indent=2))
    print(f"\nwritten to {arguments.out}")

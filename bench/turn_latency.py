"""Latency of a spoken turn through a running mesh (start one with `voicemesh up`).

    python bench/turn_latency.py [--target 127.0.0.1:50051] [--turns 5]

Times are from the last audio chunk sent (end of the user's speech) to: the final transcript, the
first reply text, and the first reply audio. Prints a table; writes bench/results/turn_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from piper import PiperVoice

from voicemesh.clients.sdk import AsyncClient
from voicemesh.common.audio import float_to_pcm16
from voicemesh.services.tts.engine import bundled_voice

QUESTIONS = ["What is the capital of France?", "Tell me a fun fact about cats.", "How far away is the moon?"]


async def turn(client: AsyncClient, pcm: bytes, rate: int) -> dict[str, float]:
    sent_all = 0.0
    step = rate // 10 * 2

    async def audio() -> AsyncIterator[bytes]:
        nonlocal sent_all
        for offset in range(0, len(pcm), step):
            yield pcm[offset : offset + step]
        sent_all = time.perf_counter()

    marks: dict[str, float] = {}
    async for event in client.converse(audio(), sample_rate_hz=rate):
        kind = event.WhichOneof("event")
        name = {
            "transcript": "final_transcript",
            "reply_text_delta": "first_text",
            "reply_audio": "first_audio",
        }.get(kind or "")
        if name and name not in marks:
            marks[name] = time.perf_counter() - sent_all
        if kind == "turn_done":
            marks["turn_done"] = time.perf_counter() - sent_all
    return marks


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    voice = PiperVoice.load(bundled_voice()[1])
    rate = voice.config.sample_rate
    clips = []
    for question in QUESTIONS:
        samples = np.concatenate([c.audio_float_array for c in voice.synthesize(question)])
        silence = np.zeros(rate // 2, dtype=np.float32)
        clips.append(float_to_pcm16(np.concatenate([silence, samples, silence])))
    results: list[dict[str, float]] = []
    async with AsyncClient(args.target, timeout_s=120) as client:
        await turn(client, clips[0], rate)  # warm-up
        for i in range(args.turns):
            results.append(await turn(client, clips[i % len(clips)], rate))
    table = {}
    print(f"{'stage (s after speech ends)':<28}{'p50':>8}{'max':>8}")
    for stage in ("final_transcript", "first_text", "first_audio", "turn_done"):
        values = [r[stage] for r in results if stage in r]
        table[stage] = {"p50": statistics.median(values), "max": max(values), "n": len(values)}
        print(f"{stage:<28}{table[stage]['p50']:>8.3f}{table[stage]['max']:>8.3f}")
    out = Path(__file__).parent / "results" / "turn_latency.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"turns": len(results), "stages": table, "raw": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    asyncio.run(main())

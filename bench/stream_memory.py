"""Memory per live Converse stream, read off the gateway's and the STT's own /metrics.

    python bench/stream_memory.py [--streams 40]

Starts the mesh, reads each process's resident memory, opens N Converse streams that send
microphone-paced audio (first silence, then all of them mid-way through 3 s of speech), and reads
it again at both points. The difference over N is what one live stream costs in each process.
Replies are text only, so no TTS runs. Then it asks for N spoken replies and reads none of them
for 8 s: with flow control respected, the gateway holds only its bounded buffers per reply. Prints
a table; writes bench/results/stream_memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

import numpy as np
import soxr
from piper import PiperVoice, SynthesisConfig

from voicemesh.client.live import RATE_HZ, LiveCall
from voicemesh.common.metrics import scrape
from voicemesh.common.samples import float_to_pcm16
from voicemesh.rpc.launcher import Mesh, gateway_channel
from voicemesh.tts.engine import bundled_voice
from voicemesh.v1 import gateway_pb2 as pb
from voicemesh.v1 import gateway_pb2_grpc

SLOW_TEXT = "Tell me a long story about a brave knight and a dragon."
TEXT = "I would like to hear about the history of the old lighthouse on the northern coast, please."


def rss(mesh: Mesh, service: str) -> float:
    process = next(p for p in mesh.processes if p.name == service)
    return scrape(process.metrics)["process_resident_memory_bytes"]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=40)
    parser.add_argument("--slow-readers", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "stream_memory.json")
    args = parser.parse_args()
    voice = PiperVoice.load(bundled_voice()[1])
    audio = np.concatenate([c.audio_float_array for c in voice.synthesize(TEXT, SynthesisConfig())])
    speech = float_to_pcm16(np.asarray(soxr.resample(audio, voice.config.sample_rate, RATE_HZ), np.float32))
    os.environ["VOICEMESH_GATEWAY_LIMIT_LLM_PER_MIN"] = "10000"  # one tenant opens them all
    os.environ["VOICEMESH_GATEWAY_LIMIT_TTS_PER_MIN"] = "10000"
    os.environ["VOICEMESH_GATEWAY_MAX_STREAMS_PER_CALLER"] = "10000"
    os.environ["VOICEMESH_GATEWAY_MAX_TURNS_PER_CALLER"] = "10000"
    mesh = Mesh.on_free_ports()
    await mesh.start()
    services = ("gateway", "stt")
    try:
        async with gateway_channel(mesh.gateway) as channel:
            # One stream first, so one-off allocations (channels, thread pools) are not counted.
            async with LiveCall(channel, pb.ConverseConfig()) as warm:
                warm.say(b"\0\0" * RATE_HZ)
                await warm.finish()
            await asyncio.sleep(1)
            # Slow readers: spoken replies nobody reads. Flow control must hold the reply back
            # (gateway buffers are bounded) rather than let the gateway take it all in.
            before_slow = rss(mesh, "gateway")
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            slow = [
                stub.Ask(pb.AskRequest(text=SLOW_TEXT, reply=pb.ReplyConfig(synthesize_audio=True)))
                for _ in range(args.slow_readers)
            ]
            for call in slow:
                await call.read()  # the first event: the turn is under way; then read nothing
            await asyncio.sleep(8)
            slow_rss = rss(mesh, "gateway")
            for call in slow:
                call.cancel()
            await asyncio.sleep(2)
            idle = {s: rss(mesh, s) for s in services}
            calls = [LiveCall(channel, pb.ConverseConfig()) for _ in range(args.streams)]
            for call in calls:
                await call.__aenter__()
            await asyncio.sleep(3)  # all listening to silence
            listening = {s: rss(mesh, s) for s in services}
            for call in calls:
                call.say(speech)
            await asyncio.sleep(3)  # all mid-utterance, about 3 s of speech buffered each
            speaking = {s: rss(mesh, s) for s in services}
            for call in calls:
                await call.__aexit__(None, None, None)

    finally:
        await mesh.stop()
    report: dict[str, object] = {
        "streams": args.streams,
        "slow_readers": args.slow_readers,
        "gateway_per_slow_reader_bytes": (slow_rss - before_slow) / args.slow_readers,
    }
    print(f"{args.streams} live Converse streams (resident memory, from each process's /metrics)")
    print(f"  {'process':<10}{'idle MiB':>10}{'per listening stream':>22}{'per speaking stream':>21}")
    for service in services:
        per_listening = (listening[service] - idle[service]) / args.streams
        per_speaking = (speaking[service] - idle[service]) / args.streams
        report[service] = {
            "idle_bytes": idle[service],
            "per_listening_stream_bytes": per_listening,
            "per_speaking_stream_bytes": per_speaking,
        }
        print(
            f"  {service:<10}{idle[service] / 2**20:10.0f}{per_listening / 1024:17.0f} KiB"
            f"{per_speaking / 1024:16.0f} KiB"
        )
    per_slow = (slow_rss - before_slow) / args.slow_readers
    print(f"  {args.slow_readers} spoken replies nobody reads: gateway +{per_slow / 1024:.0f} KiB each")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())

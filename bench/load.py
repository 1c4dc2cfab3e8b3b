"""How many live Converse streams one gateway process carries, and how fast it forwards each chunk.

    python bench/load.py [--levels 100,200,300,400] [--seconds 10] [--chunk-ms 100]

This benchmark, and only this one, isolates the gateway with a stub STT: a real gRPC server in
its own process that answers every audio chunk at once with a speech_started event carrying the
time the client sent it. The client streams real-time audio on N Converse streams at once through a
real gateway process, each stream starting at its own point of the chunk period as independent
microphones do. Each echo gives that chunk's round trip through the gateway, both ways. Per level
it prints the streams held, chunk round-trip P50/P99, how far the senders fell behind real time,
and the gateway's resident memory (from its /metrics), leaving out the first 2 s in which all the
streams open at once. A level is sustained when P99 <= 20 ms and no sender falls behind by more than
a chunk. Writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np

from voicemesh.common.components import GATEWAY
from voicemesh.common.metrics import scrape
from voicemesh.rpc.launcher import free_port, gateway_channel, service_env, start_service, wait_serving
from voicemesh.v1 import audio_pb2
from voicemesh.v1 import gateway_pb2 as pb
from voicemesh.v1 import gateway_pb2_grpc as pb_grpc
from voicemesh.v1 import speech_to_text_pb2 as stt_pb
from voicemesh.v1 import speech_to_text_pb2_grpc as stt_grpc

RATE_HZ = 16_000
WARMUP_S = 2.0  # opening hundreds of streams at once is a burst of its own; measure what follows
EPOCH = float(os.environ.get("VOICEMESH_LOAD_EPOCH", "0"))  # shared by both processes: small floats


class EchoStt(stt_grpc.SpeechToTextServiceServicer):
    """Answers each chunk with speech_started whose offset is the send time written in the chunk."""

    async def StreamingRecognize(
        self,
        request_iterator: AsyncIterator[stt_pb.StreamingRecognizeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[stt_pb.StreamingRecognizeResponse]:
        async for request in request_iterator:
            if request.WhichOneof("streaming_request") == "audio_content":
                (sent,) = struct.unpack_from("<d", request.audio_content)
                event = stt_pb.SpeechStarted(audio_offset_s=sent)
                yield stt_pb.StreamingRecognizeResponse(speech_started=event)


async def serve_stub(port: int) -> None:
    server = grpc.aio.server()
    stt_grpc.add_SpeechToTextServiceServicer_to_server(EchoStt(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"VOICEMESH_LISTENING 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


async def stream(
    stub: pb_grpc.GatewayServiceStub,
    seconds: float,
    chunk_ms: int,
    trips: list[float],
    lags: list[float],
    steady_from: float,
) -> None:
    """One stream; chunk round trips are kept from ``steady_from`` on, once every stream is open."""
    chunk_bytes = RATE_HZ * chunk_ms // 1000 * 2
    config = pb.ConverseConfig(
        audio_format=audio_pb2.AudioFormat(
            encoding=audio_pb2.AUDIO_ENCODING_LINEAR16, sample_rate_hz=RATE_HZ, channels=1
        )
    )

    async def requests() -> AsyncIterator[pb.ConverseRequest]:
        yield pb.ConverseRequest(config=config)
        # Microphones do not tick in step: each stream starts at its own point in the chunk period.
        await asyncio.sleep(random.uniform(0, chunk_ms / 1000))
        started = time.monotonic()
        count = int(seconds * 1000 / chunk_ms)
        for n in range(count):
            due = started + n * chunk_ms / 1000
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            now = time.monotonic()
            lags.append(now - due)
            audio = struct.pack("<d", now - EPOCH).ljust(chunk_bytes, b"\0")
            yield pb.ConverseRequest(audio_content=audio)

    async for response in stub.Converse(requests()):
        if response.WhichOneof("event") == "speech_started" and time.monotonic() >= steady_from:
            trips.append(time.monotonic() - EPOCH - response.speech_started.audio_offset_s)


async def level(address: str, metrics: str, streams: int, seconds: float, chunk_ms: int) -> dict[str, float]:
    trips: list[float] = []
    lags: list[float] = []
    async with gateway_channel(address) as channel:
        stub = pb_grpc.GatewayServiceStub(channel)
        steady_from = time.monotonic() + WARMUP_S
        tasks = [
            asyncio.create_task(stream(stub, seconds, chunk_ms, trips, lags, steady_from))
            for _ in range(streams)
        ]
        await asyncio.sleep(seconds / 2)
        rss = (await asyncio.to_thread(scrape, metrics))["process_resident_memory_bytes"]
        results = await asyncio.gather(*tasks, return_exceptions=True)
    failed = sum(isinstance(r, BaseException) for r in results)
    ms = np.asarray(trips) * 1000 if trips else np.asarray([float("nan")])
    return {
        "streams": streams,
        "failed_streams": failed,
        "chunks": len(trips),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_sender_lag_ms": float(max(lags) * 1000) if lags else 0.0,
        "gateway_rss_mib": rss / 2**20,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", default="100,200,300,400")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--chunk-ms", type=int, default=100)
    parser.add_argument("--serve-stub-stt", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "load.json")
    args = parser.parse_args()
    if args.serve_stub_stt:
        await serve_stub(args.serve_stub_stt)
        return

    os.environ["VOICEMESH_LOAD_EPOCH"] = str(time.monotonic())
    global EPOCH
    EPOCH = float(os.environ["VOICEMESH_LOAD_EPOCH"])
    stub_port = free_port()
    stub = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-stub-stt", str(stub_port), stdout=asyncio.subprocess.DEVNULL
    )
    env = service_env(
        "gateway",
        stt_target=f"127.0.0.1:{stub_port}",
        limit_stt_per_min=100_000,
        max_stt_streams=100_000,
        max_streams_per_caller=100_000,  # one caller opens them all
        log_level="WARNING",
    )
    gateway = await start_service(GATEWAY, env, 60)
    report: dict[str, object] = {"chunk_ms": args.chunk_ms, "seconds": args.seconds, "levels": []}
    try:
        await wait_serving(gateway.address, 30)
        print(f"gateway {gateway.address}, stub STT 127.0.0.1:{stub_port}, {args.chunk_ms} ms chunks")
        header = ("streams", "failed", "chunk p50", "chunk p99", "sender lag", "gateway RSS")
        print("  " + "".join(f"{name:>12}" for name in header))
        sustained = 0
        for streams in (int(n) for n in args.levels.split(",")):
            row = await level(gateway.address, gateway.metrics, streams, args.seconds, args.chunk_ms)
            report["levels"].append(row)  # type: ignore[attr-defined]
            ok = (
                row["failed_streams"] == 0
                and row["p99_ms"] <= 20
                and row["max_sender_lag_ms"] <= args.chunk_ms
            )
            sustained = streams if ok else sustained
            cells = (
                f"{streams}",
                f"{row['failed_streams']:.0f}",
                f"{row['p50_ms']:.1f} ms",
                f"{row['p99_ms']:.1f} ms",
                f"{row['max_sender_lag_ms']:.1f} ms",
                f"{row['gateway_rss_mib']:.0f} MiB",
            )
            verdict = "" if ok else "  (not sustained)"
            print("  " + "".join(f"{cell:>12}" for cell in cells) + verdict, flush=True)
        report["sustained_streams"] = sustained
        print(f"sustained: {sustained} real-time streams with chunk round trip P99 <= 20 ms")
    finally:
        gateway.proc.terminate()
        stub.terminate()
        await gateway.proc.wait()
        await stub.wait()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())

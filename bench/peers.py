"""Wyoming peers on the same models: wyoming-faster-whisper and wyoming-piper, driven by ``wyoming``.

Both servers are started from their PyPI packages as Home Assistant runs them, pointed at the very
model files voicemesh uses (Whisper tiny.en int8, piper en_US-joe-medium), with no download.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize, SynthesizeVoice

from voicemesh.rpc.launcher import free_port
from voicemesh.stt.recognizer import bundled_model_path
from voicemesh.tts.engine import bundled_voice

RATE_HZ = 16_000
CHUNK_SAMPLES = 320


@contextlib.asynccontextmanager
async def wyoming_server(module: str, *args: str) -> AsyncIterator[int]:
    """Run ``python -m module --uri tcp://…`` until it accepts connections; yields its port."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, "--uri", f"tcp://127.0.0.1:{port}", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(120):
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"{module} exited with {proc.returncode}")
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                except OSError:
                    await asyncio.sleep(0.2)
        yield port
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


def faster_whisper_server(cpu_threads: int) -> contextlib.AbstractAsyncContextManager[int]:
    model = bundled_model_path()
    return wyoming_server(
        "wyoming_faster_whisper", "--model", str(model), "--data-dir", str(model.parent),
        "--language", "en", "--beam-size", "1", "--compute-type", "int8",
        "--cpu-threads", str(cpu_threads), "--local-files-only",
    )  # fmt: skip


def piper_server() -> contextlib.AbstractAsyncContextManager[int]:
    name, path = bundled_voice()
    return wyoming_server(
        "wyoming_piper", "--voice", name, "--data-dir", str(Path(path).parent), "--local-files-only"
    )


async def transcribe(port: int, speech: bytes, silence_s: float) -> tuple[str, float]:
    """Stream speech and trailing silence at real-time pace, then AudioStop (the satellite's endpoint).

    Returns the transcript and the seconds from AudioStop to the transcript.
    """
    pcm = speech + b"\0\0" * int(silence_s * RATE_HZ)
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    try:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=RATE_HZ, width=2, channels=1).event())
        started = time.monotonic()
        for n, offset in enumerate(range(0, len(pcm), 2 * CHUNK_SAMPLES), start=1):
            chunk = AudioChunk(
                rate=RATE_HZ, width=2, channels=1, audio=pcm[offset : offset + 2 * CHUNK_SAMPLES]
            )
            await client.write_event(chunk.event())
            await asyncio.sleep(max(0.0, started + n * CHUNK_SAMPLES / RATE_HZ - time.monotonic()))
        await client.write_event(AudioStop().event())
        stopped = time.monotonic()
        while (event := await client.read_event()) is not None:
            if Transcript.is_type(event.type):
                return Transcript.from_event(event).text, time.monotonic() - stopped
        raise RuntimeError("wyoming-faster-whisper closed without a transcript")
    finally:
        await client.disconnect()


async def first_audio(port: int, text: str) -> float:
    """Seconds from sending Synthesize to the first audio chunk."""
    name, _ = bundled_voice()
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    try:
        sent = time.monotonic()
        await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=name)).event())
        while (event := await client.read_event()) is not None:
            if AudioChunk.is_type(event.type):
                elapsed = time.monotonic() - sent
                while (event := await client.read_event()) is not None and not AudioStop.is_type(event.type):
                    pass  # let it finish, so the next request finds it idle
                return elapsed
        raise RuntimeError("wyoming-piper closed without audio")
    finally:
        await client.disconnect()

"""PCM audio as it crosses the wire: formats, chunks, and WAV files. Standard library only, so a thin
client can read and write audio without numpy; the sample conversions are in ``samples``.

Audio enters the system once, at the edge, as PCM s16le at any common rate. It is converted once to
the 16 kHz mono float32 that the models want (``samples.PcmNormalizer``) and never again.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from pathlib import Path

from voicemesh.common.errors import InvalidAudio
from voicemesh.common.limits import MAX_CHUNK_BYTES

MODEL_RATE_HZ = 16_000
MIN_RATE_HZ = 8_000
MAX_RATE_HZ = 48_000

LINEAR16_NAMES = ("AUDIO_ENCODING_UNSPECIFIED", "AUDIO_ENCODING_LINEAR16")


@dataclass(frozen=True)
class PcmFormat:
    """A validated PCM s16le stream format."""

    sample_rate_hz: int = MODEL_RATE_HZ
    channels: int = 1

    @property
    def frame_bytes(self) -> int:
        return 2 * self.channels

    @classmethod
    def parse(cls, *, encoding: str, sample_rate_hz: int, channels: int) -> PcmFormat:
        """Validate a stream format as given on the wire (0 means the default)."""
        if encoding not in LINEAR16_NAMES:
            raise InvalidAudio(f"audio encoding {encoding} is not supported; send AUDIO_ENCODING_LINEAR16")
        rate = sample_rate_hz or MODEL_RATE_HZ
        if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            raise InvalidAudio(
                f"sample_rate_hz {sample_rate_hz} is out of range; use {MIN_RATE_HZ} to {MAX_RATE_HZ}"
            )
        chans = channels or 1
        if chans not in (1, 2):
            raise InvalidAudio(f"channels {channels} is not supported; send 1 (mono) or 2 (stereo)")
        return cls(sample_rate_hz=rate, channels=chans)


def check_chunk(chunk: bytes, fmt: PcmFormat) -> None:
    """Reject a chunk that is too large or does not hold whole sample frames."""
    if len(chunk) > MAX_CHUNK_BYTES:
        raise InvalidAudio(
            f"audio chunk of {len(chunk)} bytes is over the {MAX_CHUNK_BYTES}-byte limit; "
            "send 20-200 ms chunks"
        )
    if len(chunk) % fmt.frame_bytes:
        raise InvalidAudio(
            f"audio chunk of {len(chunk)} bytes is not a whole number of {fmt.frame_bytes}-byte frames "
            f"(PCM s16le, {fmt.channels} channel(s)); do not split samples across chunks"
        )


@dataclass(frozen=True)
class WavAudio:
    """PCM s16le audio read from or written to a WAV file."""

    pcm: bytes
    sample_rate_hz: int
    channels: int = 1

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / (2 * self.channels * self.sample_rate_hz)


def read_wav(source: str | Path | bytes) -> WavAudio:
    """Read a 16-bit PCM WAV file."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    with stream, wave.open(stream, "rb") as wav:
        if wav.getsampwidth() != 2:
            raise InvalidAudio(f"WAV sample width is {8 * wav.getsampwidth()} bits; use 16-bit PCM")
        return WavAudio(wav.readframes(wav.getnframes()), wav.getframerate(), wav.getnchannels())


def wav_bytes(audio: WavAudio) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(audio.channels)
        wav.setsampwidth(2)
        wav.setframerate(audio.sample_rate_hz)
        wav.writeframes(audio.pcm)
    return buffer.getvalue()


def write_wav(path: str | Path, audio: WavAudio) -> None:
    Path(path).write_bytes(wav_bytes(audio))

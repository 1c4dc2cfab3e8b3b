"""Audio files of any common format, read as the PCM s16le the wire carries.

16-bit PCM WAV is read by the standard library. Everything else (mp3, m4a/aac, ogg/opus/vorbis,
flac, webm, 24-bit or float WAV) is decoded by PyAV, FFmpeg's bindings, which faster-whisper already
brings into a server install; a thin client that meets such a file without PyAV is told how to get
it. Rates from 8 to 48 kHz and mono or stereo are kept as they are (the STT resamples once, as for
a live stream); anything else becomes 16 kHz, or mono. A file nobody can read is one
``InvalidAudio`` that names the problem, never a decoder's traceback.
"""

from __future__ import annotations

import wave
from itertools import chain
from pathlib import Path
from typing import Any

from voicemesh.common.audio import MAX_RATE_HZ, MIN_RATE_HZ, MODEL_RATE_HZ, WavAudio, read_wav
from voicemesh.common.errors import InvalidAudio

MAX_FILE_S = 3600  # an hour: past that a "recording" is more likely a mistake than a question


def read_audio(path: str | Path) -> WavAudio:
    """The audio of the file at ``path``; ``OSError`` if it cannot be opened, else ``InvalidAudio``."""
    path = Path(path)
    with path.open("rb") as file:
        head = file.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        try:
            return read_wav(path)
        except (wave.Error, EOFError, InvalidAudio):
            pass  # float, 24-bit or WAVE_FORMAT_EXTENSIBLE: FFmpeg reads those
    if not head:
        raise InvalidAudio("the file is empty")
    return _decoded(path)


def _decoded(path: Path) -> WavAudio:
    try:
        import av
    except ImportError:
        raise InvalidAudio(
            "it is not 16-bit PCM WAV, and reading other formats needs PyAV: pip install av"
        ) from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InvalidAudio("it holds no audio stream")
            stream = container.streams.audio[0]
            return _pcm(container, stream, av.AudioResampler)
    except av.FFmpegError as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise InvalidAudio(f"it is not an audio file FFmpeg can read ({reason})") from None


def _pcm(container: Any, stream: Any, resampler_type: Any) -> WavAudio:
    rate = stream.rate or MODEL_RATE_HZ
    rate = rate if MIN_RATE_HZ <= rate <= MAX_RATE_HZ else MODEL_RATE_HZ
    channels = 2 if stream.channels == 2 else 1
    resampler = resampler_type(format="s16", layout="stereo" if channels == 2 else "mono", rate=rate)
    frame_bytes = 2 * channels
    limit = MAX_FILE_S * rate * frame_bytes
    pcm = bytearray()
    for frame in chain(container.decode(stream), [None]):  # None drains the resampler
        for out in resampler.resample(frame):
            pcm += bytes(out.planes[0])[: out.samples * frame_bytes]
        if len(pcm) > limit:
            raise InvalidAudio(f"it is over {MAX_FILE_S // 60} minutes long")
    if not pcm:
        raise InvalidAudio("it holds no audio samples")
    return WavAudio(bytes(pcm), rate, channels)

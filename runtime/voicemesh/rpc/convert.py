"""Proto ⇄ value conversions that more than one servicer needs."""

from __future__ import annotations

from voicemesh.common.audio import PcmFormat
from voicemesh.v1 import audio_pb2


def audio_format(config: audio_pb2.AudioFormat) -> PcmFormat:
    return PcmFormat.parse(
        encoding=audio_pb2.AudioEncoding.Name(config.encoding),
        sample_rate_hz=config.sample_rate_hz,
        channels=config.channels,
    )

"""Proto ⇄ value conversions that more than one servicer needs."""

from __future__ import annotations

from voicemesh.common.audio import PcmFormat
from voicemesh.v1 import audio_pb2


def audio_format(config: audio_pb2.AudioFormat) -> PcmFormat:
    # An open enum holds numbers it has no name for (a newer client's, or garbage): name those too.
    known = config.encoding in audio_pb2.AudioEncoding.values()
    return PcmFormat.parse(
        encoding=audio_pb2.AudioEncoding.Name(config.encoding) if known else f"number {config.encoding}",
        sample_rate_hz=config.sample_rate_hz,
        channels=config.channels,
    )

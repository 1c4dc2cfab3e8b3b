"""The voicemesh Python client: ``AsyncClient`` and its blocking twin ``Client``, over the gateway.

A bare ``pip install voicemesh`` is all it needs (grpcio and protobuf). Events are the gateway's own
messages, as a client in any other language gets them; the ones a caller meets are re-exported here,
so one import is enough. The edge (``voicemesh.client.edge``: wake word and voice activity on the
device) needs ``pip install 'voicemesh[edge]'``. ``read_audio`` reads 16-bit WAV with the standard
library and every other format (mp3, m4a, ogg/opus, flac) with PyAV: ``pip install 'voicemesh[files]'``.
"""

from voicemesh.client.sdk import DEFAULT_TARGET, AsyncClient, Client, wav_chunks
from voicemesh.common.audio import WavAudio, read_wav, write_wav
from voicemesh.common.audio_files import read_audio
from voicemesh.common.reply_cache import ReplyCache
from voicemesh.common.retry import RetryPolicy
from voicemesh.v1.gateway_pb2 import AskResponse, ConverseResponse, ReplyConfig, TurnDone

__all__ = [
    "DEFAULT_TARGET",
    "AskResponse",
    "AsyncClient",
    "Client",
    "ConverseResponse",
    "ReplyCache",
    "ReplyConfig",
    "RetryPolicy",
    "TurnDone",
    "WavAudio",
    "read_audio",
    "read_wav",
    "wav_chunks",
    "write_wav",
]

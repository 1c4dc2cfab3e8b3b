"""A user's voice print as the stores keep it: durably in the history database, and packed into the
session store's voice key, where a stream's start finds it without a database round trip."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

MAX_DIMENSIONS = 1024  # far above any speaker model's (Resemblyzer's are 256)


@dataclass(frozen=True, eq=False)
class VoicePrint:
    embedding: np.ndarray  # float32, L2-normalised
    model: str
    require_match: bool = False
    samples: int = 0
    speech_s: float = 0.0
    consistency: float = 0.0  # lowest score of an enrollment recording against the print
    enrolled_at: float = field(default_factory=time.time)

    def settings(self) -> dict[str, object]:
        return {
            "model": self.model,
            "require_match": self.require_match,
            "samples": self.samples,
            "speech_s": self.speech_s,
            "consistency": self.consistency,
            "enrolled_at": self.enrolled_at,
        }

    def vector(self) -> bytes:
        return np.asarray(self.embedding, dtype="<f4").tobytes()

    def pack(self) -> bytes:
        """One value for the session store: the settings as a JSON line, then the raw vector."""
        return json.dumps(self.settings()).encode() + b"\n" + self.vector()

    @classmethod
    def unpack(cls, packed: bytes) -> VoicePrint:
        header, _, raw = packed.partition(b"\n")
        return cls.from_row(raw, **json.loads(header))

    @classmethod
    def from_row(cls, vector: bytes, **settings: object) -> VoicePrint:
        embedding = np.frombuffer(vector, dtype="<f4").astype(np.float32)
        return cls(
            embedding,
            str(settings["model"]),
            bool(settings["require_match"]),
            int(settings["samples"]),  # type: ignore[call-overload]
            float(settings["speech_s"]),  # type: ignore[arg-type]
            float(settings["consistency"]),  # type: ignore[arg-type]
            float(settings["enrolled_at"]),  # type: ignore[arg-type]
        )

"""Many speakers, offline: piper's one voice (joe) and espeak-ng's voice variants, at 16 kHz.

espeak-ng comes from the ``espeakng-loader`` wheel (its library and voice data, no binary); it is
driven through its C API with ctypes. It is a formant synthesiser, so its voices are further from a
person than piper's, but its ~100 variants (pitch, formants, breathiness, rhythm) are distinct
speakers to a speaker encoder, which is what the speaker-verification bench and tests need.
"""

from __future__ import annotations

import ctypes
from functools import cache

import numpy as np
import soxr

RATE_HZ = 16_000
_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: espeak_Synth returns once the callback has had it all
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Espeak:
    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        rate = self._lib.espeak_Initialize(_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise RuntimeError("espeak-ng did not initialise (espeakng-loader's data missing?)")
        self.rate = rate
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._take)  # kept referenced: espeak calls it later
        self._lib.espeak_SetSynthCallback(self._callback)

    def _take(self, wav: ctypes.Array[ctypes.c_short] | None, count: int, _events: int) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def say(self, text: str, voice: str) -> np.ndarray:
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self._chunks = []
        data = text.encode()
        self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        audio = pcm.astype(np.float32) / 32768.0
        resampled: np.ndarray = soxr.resample(audio, self.rate, RATE_HZ).astype(np.float32)
        return resampled


@cache
def _espeak() -> _Espeak:
    return _Espeak()


# espeak-ng's variants (voices/!v): each is another speaker. Robotic, whispered and novelty ones
# are left out: a speaker encoder tells them apart too easily to say anything.
ESPEAK_VARIANTS = [
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Diogo", "Gene", "Gene2", "Henrique",
    "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Mr", "Nguyen", "Reed", "Storm",
    "Tweaky", "adam", "anika", "antonio", "aunty", "belinda", "benjamin", "boris", "caleb",
    "david", "ed", "edward", "edward2", "gustave", "ian", "iven", "iven2", "iven3", "iven4",
    "john", "kaukovalta", "klatt", "klatt2", "klatt3", "klatt4", "linda", "marcelo", "max",
    "michel", "miguel", "mike2", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert",
    "sandro", "shelby", "steph", "steph2", "steph3", "travis", "victor", "zac",
]  # fmt: skip


def espeak_voices() -> list[str]:
    """Every espeak-ng speaker used here, as ``language+variant`` names."""
    return [f"en-us+{variant}" for variant in ESPEAK_VARIANTS]


def espeak(text: str, voice: str) -> np.ndarray:
    """``text`` said by an espeak-ng voice (``en-us+f3``), 16 kHz mono float32."""
    return _espeak().say(text, voice)


@cache
def _piper():  # type: ignore[no-untyped-def]
    from piper import PiperVoice

    from voicemesh.tts.engine import bundled_voice

    return PiperVoice.load(bundled_voice()[1])


def piper(text: str, length_scale: float = 1.0, *, steady: bool = False) -> np.ndarray:
    """``text`` said by piper's joe, 16 kHz mono float32; ``length_scale`` slows or hurries him.
    Piper samples noise, so each call sounds a little different; ``steady`` turns that off."""
    from piper import SynthesisConfig

    voice = _piper()
    noise = (0.0, 0.0) if steady else (0.667, 0.8)
    config = SynthesisConfig(length_scale=length_scale, noise_scale=noise[0], noise_w_scale=noise[1])
    audio = np.concatenate([chunk.audio_float_array for chunk in voice.synthesize(text, config)])
    resampled: np.ndarray = soxr.resample(audio, voice.config.sample_rate, RATE_HZ).astype(np.float32)
    return resampled


def say(text: str, speaker: str) -> np.ndarray:
    """``text`` said by ``speaker``: "piper" (joe) or an espeak-ng voice name."""
    return piper(text) if speaker == "piper" else espeak(text, speaker)


def trimmed(audio: np.ndarray, floor: float = 0.01) -> np.ndarray:
    """Without the silence before and after the speech."""
    loud = np.nonzero(np.abs(audio) > floor)[0]
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio[:0]


def quiet_runs(audio: np.ndarray, min_s: float = 0.1, floor: float = 0.02) -> list[tuple[int, int]]:
    """(start, end) of each stretch of at least ``min_s`` under ``floor``, in 10 ms frames."""
    frame = RATE_HZ // 100
    peaks = np.abs(audio[: audio.size // frame * frame]).reshape(-1, frame).max(axis=1)
    runs, start = [], None
    for i, quiet in enumerate(np.append(peaks < floor, False)):
        if quiet and start is None:
            start = i
        elif not quiet and start is not None:
            if (i - start) * frame >= min_s * RATE_HZ:
                runs.append((start * frame, i * frame))
            start = None
    return runs


def with_pauses(speech: np.ndarray, pauses_s: tuple[float, ...]) -> np.ndarray:
    """``speech`` (trimmed) with its longest quiet gaps, in order, stretched to ``pauses_s``: a
    speaker breathing mid-sentence. Written with commas where the breaths go, a synthesiser's text
    puts a gap there, with the rising pitch of a sentence that goes on. The gap's own audio stays
    (the closure before a "p" is part of the word); silence is added in its middle."""
    gaps = sorted(sorted(quiet_runs(speech), key=lambda run: run[0] - run[1])[: len(pauses_s)])
    if len(gaps) < len(pauses_s):
        raise ValueError(f"the speech has {len(gaps)} gaps, not the {len(pauses_s)} to stretch")
    parts, cut = [], 0
    for (start, end), pause in zip(gaps, pauses_s, strict=True):
        middle = (start + end) // 2
        parts += [speech[cut:middle], np.zeros(max(0, round(pause * RATE_HZ) - (end - start)), np.float32)]
        cut = middle
    return np.concatenate([*parts, speech[cut:]])

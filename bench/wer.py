"""Does the mesh hear as well as its own Whisper model? Word error rate through Converse against
``WhisperModel.transcribe`` on the same audio, on speech nothing here was tuned on.

    python bench/wer.py [--sentences 20] [--concurrency 3] [--beam-size 1] [--seed N]

The held-out set:

    recorded   14 real recordings from PyPI sdists (bench/recorded.py): LibriVox readers, JFK's
               11 s sentence with its pauses, CMU commands and card names, a CMU ARCTIC sentence
    clean      held-out assistant requests, said by piper's joe and two espeak-ng voices
    noise      the same with white noise at 15 dB SNR
    pauses     requests with breaths of 0.6 and 0.8 s mid-sentence (piper and espeak-ng)
    wake       "Hey Jarvis, <request>" (piper): the reference is the request

Mesh runs (a mesh started as ``voicemesh up`` starts it, its limits raised, reply text only): every
clip streamed into Converse at real-time pace, in semantic and in fixed endpointing, and through the
SDK's edge (``voicemesh.client.edge``: local VAD, or the wake word for wake clips, opens the gate and
only the command is sent). A clip's transcript is all its turns' finals, joined. Direct runs:
``WhisperModel.transcribe`` of the whole clip, with faster-whisper's defaults (beam 5, temperature
fallback, its VAD off) and greedy (beam 1, as the mesh decodes with --beam-size 1). Words are compared
lower-cased, without punctuation, numbers spelled out. Prints a table per condition and writes
bench/results/wer.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
from recorded import recordings
from voices import espeak, espeak_voices, piper, trimmed, with_pauses

from voicemesh.client.edge import Edge, EdgeModels, EdgeSettings, GatewayEvent, file_audio
from voicemesh.client.sdk import AsyncClient
from voicemesh.common.audio import WavAudio
from voicemesh.common.samples import float_to_pcm16
from voicemesh.rpc.launcher import Mesh
from voicemesh.stt.recognizer import bundled_model_path

RATE = 16_000
# Held out: written for this bench, used by no test and no tuning.
SENTENCES = [
    "Set an alarm for six thirty tomorrow morning.",
    "Play some relaxing jazz in the living room.",
    "Remind me to water the plants on Sunday.",
    "What's the weather like in Berlin this weekend?",
    "Add olive oil and garlic to my shopping list.",
    "How many ounces are in a pound?",
    "Call my brother when I get home.",
    "Who wrote the novel Pride and Prejudice?",
    "Turn the thermostat down to sixty eight degrees.",
    "Read me the latest news headlines.",
    "What time does the pharmacy close today?",
    "Translate good morning into Spanish.",
    "Start a timer for twelve minutes.",
    "Is it going to rain in Seattle on Thursday?",
    "Send a message to Maria saying I'm running late.",
    "Dim the bedroom lights to twenty percent.",
    "Tell me a joke about penguins.",
    "How long should I boil pasta?",
    "Which planet is closest to the sun?",
    "Lock the front door and turn off the porch light.",
]
PAUSED = [  # commas where the breaths go
    "I need a reminder to pick up, the dry cleaning before, five o'clock today.",
    "Can you find me a recipe for, a vegetarian lasagna with, spinach and mushrooms?",
    "Please play the album by, the band my sister likes, on the kitchen speaker.",
    "What is the fastest way to get to, the airport from here, without any tolls?",
    "Book a table for, four people at the Thai restaurant, on Friday evening.",
    "Tell me how many calories are in, a large banana and, a cup of yogurt.",
]
ONES = (  # noqa: SIM905
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()  # noqa: SIM905


def spelled(number: int) -> list[str]:
    """Words of 0-99, as a reference writes them ("sixty eight")."""
    if number < 20:
        return [ONES[number]]
    tens, ones = divmod(number, 10)
    return [TENS[tens]] + ([ONES[ones]] if ones else [])


@dataclass(frozen=True)
class Clip:
    name: str
    condition: str
    text: str
    audio: np.ndarray  # 16 kHz mono float32, silence around the speech
    wake: bool = False


def normalize(text: str) -> str:
    """Lower case, no punctuation, numbers as words (so "10 of clubs" is "ten of clubs")."""
    text = text.lower().replace("mr.", "mister").replace("-", " ").replace("%", " percent")
    text = re.sub(r"\b(\d{1,2})[:.](\d\d)\b", r"\1 \2", text)  # "6:30" is "six thirty"
    words = []
    for word in re.findall(r"[a-z0-9']+", text):
        words += spelled(int(word)) if word.isdigit() and int(word) < 100 else [word]
    return " ".join(words)


def _around(speech: np.ndarray, before_s: float = 0.5, after_s: float = 1.0) -> np.ndarray:
    return np.concatenate(
        [np.zeros(round(before_s * RATE), np.float32), speech, np.zeros(round(after_s * RATE), np.float32)]
    )


def _noisy(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    speech = audio[np.abs(audio) > 0.01]
    power = float(np.mean(speech**2)) if speech.size else 1e-4
    noise = rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), audio.size).astype(np.float32)
    return np.clip(audio + noise, -1, 1).astype(np.float32)


def held_out(sentences: int, seed: int, recorded: int = 100) -> list[Clip]:
    rng = np.random.default_rng(seed)
    voices = espeak_voices()
    speakers: list[tuple[str, Callable[[str], np.ndarray]]] = [("piper", piper)]
    speakers += [(v, lambda text, v=v: espeak(text, v)) for v in random.Random(seed).sample(voices, 2)]
    clips = [Clip(r.name, "recorded", r.text, _around(r.audio, 0.3, 1.0)) for r in recordings()[:recorded]]
    for n, text in enumerate(SENTENCES[:sentences]):
        for who, say in speakers:
            speech = trimmed(say(text))
            clips.append(Clip(f"{who}-{n}", "clean", text, _around(speech)))
            clips.append(Clip(f"{who}-{n}-noise", "noise", text, _noisy(_around(speech), 15, rng)))
    for n, text in enumerate(PAUSED[: max(1, sentences // 3)]):
        for who, say in speakers[:2]:
            clips.append(
                Clip(f"{who}-p{n}", "pauses", text, _around(with_pauses(trimmed(say(text)), (0.6, 0.8))))
            )
    for n, text in enumerate(SENTENCES[: max(1, sentences // 2)]):
        speech = np.concatenate(
            [trimmed(piper("Hey Jarvis,")), np.zeros(round(0.15 * RATE), np.float32), trimmed(piper(text))]
        )
        clips.append(Clip(f"wake-{n}", "wake", text, _around(speech), wake=True))
    return clips


def direct(clips: list[Clip], beam_size: int) -> list[str]:
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(bundled_model_path()), device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 2
    )
    heard = []
    for clip in clips:
        segments, _ = model.transcribe(clip.audio, language="en", beam_size=beam_size)
        text = normalize(" ".join(s.text for s in segments))
        if clip.wake:  # the mesh never transcribes the wake phrase; neither is it counted here
            text = re.sub(r"^(hey|hay|a)\s+jarvis\s*", "", text)
        heard.append(text)
    return heard


async def converse(client: AsyncClient, clip: Clip, endpointing: str) -> str:
    pcm = float_to_pcm16(clip.audio)

    async def paced() -> AsyncIterator[bytes]:
        step = RATE // 10 * 2
        for offset in range(0, len(pcm), step):
            yield pcm[offset : offset + step]
            await asyncio.sleep(0.1)

    wake = ["hey_jarvis"] if clip.wake else None
    finals = []
    async for event in client.converse(
        paced(), speak=False, user_id="", retrieval=False, endpointing=endpointing, wake_words=wake
    ):
        if event.WhichOneof("event") == "transcript" and event.transcript.is_final:
            finals.append(event.transcript.transcript)
    return normalize(" ".join(finals))


async def through_edge(client: AsyncClient, clip: Clip) -> str:
    settings = EdgeSettings.load(wake_words=["hey_jarvis"] if clip.wake else [])
    edge = Edge(client, EdgeModels(settings), speak=False)
    finals = []
    async for event in edge.listen(file_audio(WavAudio(float_to_pcm16(clip.audio), RATE))):
        if not isinstance(event, GatewayEvent) or event.response.WhichOneof("event") != "transcript":
            continue
        if event.response.transcript.is_final:
            finals.append(event.response.transcript.transcript)
    return normalize(" ".join(finals))


async def run_mesh(clips: list[Clip], concurrency: int, beam_size: int) -> dict[str, list[str]]:
    env = {
        "VOICEMESH_GATEWAY_REPLY_CACHE_ENTRIES": "0",
        "VOICEMESH_STT_BEAM_SIZE": str(beam_size),
        **{f"VOICEMESH_GATEWAY_LIMIT_{limit}_PER_MIN": "100000" for limit in ("STT", "LLM", "TTS")},
    }
    data = tempfile.TemporaryDirectory(prefix="voicemesh-wer-")
    os.environ["XDG_DATA_HOME"] = data.name
    mesh = Mesh.on_free_ports(env=env)
    await mesh.start()
    runs: dict[str, list[str]] = {}
    try:
        async with AsyncClient(mesh.gateway, timeout_s=300) as client:
            gate = asyncio.Semaphore(concurrency)
            for label, hear in (
                ("mesh semantic", lambda c: converse(client, c, "semantic")),
                ("mesh fixed", lambda c: converse(client, c, "fixed")),
                ("mesh edge", lambda c: through_edge(client, c)),
            ):

                async def one(clip: Clip, hear: Callable[[Clip], object] = hear) -> str:
                    async with gate:
                        return await hear(clip)  # type: ignore[no-any-return, misc]

                print(f"  {label}: {len(clips)} clips at real-time pace, {concurrency} at a time", flush=True)
                runs[label] = list(await asyncio.gather(*(one(c) for c in clips)))
    finally:
        await mesh.stop()
        data.cleanup()
    return runs


def table(clips: list[Clip], heard: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    conditions = [*dict.fromkeys(c.condition for c in clips), "all"]
    result: dict[str, dict[str, float]] = {}
    print(f"\n  {'condition':<10}{'clips':>6}" + "".join(f"{name:>16}" for name in heard) + "   (WER %)")
    for condition in conditions:
        picked = [i for i, c in enumerate(clips) if condition in ("all", c.condition)]
        refs = [normalize(clips[i].text) for i in picked]
        row = {name: 100 * float(jiwer.wer(refs, [hyp[i] for i in picked])) for name, hyp in heard.items()}
        result[condition] = row
        print(f"  {condition:<10}{len(picked):>6}" + "".join(f"{row[name]:>16.1f}" for name in heard))
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", type=int, default=20, help="held-out requests (at most 20)")
    parser.add_argument("--recorded", type=int, default=100, help="recorded clips (there are 14)")
    parser.add_argument("--concurrency", type=int, default=3, help="clips streamed at once")
    parser.add_argument("--beam-size", type=int, default=5, help="the mesh's STT beam (its default is 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "wer.json")
    args = parser.parse_args()

    clips = held_out(args.sentences, args.seed, args.recorded)
    print(
        f"{len(clips)} clips: "
        + ", ".join(
            f"{c} {sum(x.condition == c for x in clips)}" for c in dict.fromkeys(x.condition for x in clips)
        )
    )
    heard = {"direct (beam 5)": direct(clips, 5), "direct greedy": direct(clips, 1)}
    heard.update(await run_mesh(clips, args.concurrency, args.beam_size))
    rows = table(clips, heard)
    report = {
        "beam_size": args.beam_size,
        "clips": [
            {
                "name": c.name,
                "condition": c.condition,
                "reference": normalize(c.text),
                **{k: v[i] for k, v in heard.items()},
            }
            for i, c in enumerate(clips)
        ],
        "wer_percent": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())

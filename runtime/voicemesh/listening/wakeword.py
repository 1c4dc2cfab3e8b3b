"""openWakeWord, streamed 80 ms at a time with onnxruntime.

The models come from the ``openwakeword`` 0.5.1 package (later releases no longer carry them). We
run its three ONNX stages directly, as its own ``AudioFeatures`` does with the onnx framework, but
with one set of sessions for every stream: a melspectrogram, Google's speech embedding (76 mel frames
→ 96 floats, every 8 frames = 80 ms) and one small classifier per wake word over the last 16 or so
embeddings. A stream keeps only its own buffers: about 17 KiB.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime

from voicemesh.common.errors import InvalidRequest
from voicemesh.common.packages import package_file
from voicemesh.listening.frames import Framer

FRAME_SAMPLES = 1280  # 80 ms at 16 kHz: one embedding, one score per model
_MEL_CONTEXT = 3 * 160  # the melspectrogram's window reaches 3 hops back into the previous frame
_MEL_WINDOW = 76  # mel frames per embedding
_MEL_BINS = 32
_WARMUP_FRAMES = 5  # openWakeWord zeroes the first scores while the buffers fill
DEFAULT_REFRACTORY_S = 2.0  # as wyoming-openwakeword: one utterance of the phrase fires once


def _models_dir() -> Path:
    return package_file("openwakeword", "resources/models")


def bundled_models() -> dict[str, Path]:
    """The wake word models openwakeword 0.5.1 carries, by name (``hey_jarvis`` …)."""
    skip = {"melspectrogram", "embedding_model", "silero_vad"}
    found = {}
    for path in sorted(_models_dir().glob("*.onnx")):
        name = path.stem.rsplit("_v", 1)[0]
        if name not in skip:
            found[name] = path
    return found


def resolve_model(spec: str) -> tuple[str, Path]:
    """A bundled model's name, or the path of a custom openWakeWord ``.onnx`` classifier."""
    bundled = bundled_models()
    if spec in bundled:
        return spec, bundled[spec]
    path = Path(spec).expanduser()
    if path.suffix == ".onnx" and path.is_file():
        return path.stem, path
    raise InvalidRequest(
        f"wake word model {spec!r} is neither a bundled model ({', '.join(bundled)}) "
        "nor an existing .onnx file"
    )


def _session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class _Classifier:
    name: str
    session: onnxruntime.InferenceSession
    input_name: str
    frames: int  # embeddings it looks at


@dataclass(frozen=True)
class Detection:
    model: str
    score: float
    end_sample: int  # stream position (16 kHz samples) at the end of the frame that fired
    crossed_sample: int  # the end of the first frame of the run over the threshold (patience > 1)


class WakeWordModels:
    """The shared sessions of one process."""

    def __init__(self, specs: Iterable[str]) -> None:
        resolved = dict(resolve_model(spec) for spec in specs)
        if not resolved:
            raise InvalidRequest("no wake word model given")
        models = _models_dir()
        self._melspec = _session(models / "melspectrogram.onnx")
        self._embedding = _session(models / "embedding_model.onnx")
        self.classifiers: dict[str, _Classifier] = {}
        for name, path in resolved.items():
            session = _session(path)
            model_input = session.get_inputs()[0]
            self.classifiers[name] = _Classifier(name, session, model_input.name, int(model_input.shape[1]))
        self._history = max(c.frames for c in self.classifiers.values())
        self._initial_features = self._noise_features()

    @property
    def names(self) -> list[str]:
        return list(self.classifiers)

    def stream(
        self,
        threshold: float = 0.5,
        models: Iterable[str] | None = None,
        refractory_s: float = DEFAULT_REFRACTORY_S,
        patience: int = 2,
    ) -> WakeWordStream:
        """A new stream. It fires once ``patience`` frames in a row score ``threshold`` or more.

        Two frames is the default: in bench/wakeword.py a single frame over 0.5 woke it twice in
        one run of 6.7 minutes of other speech ("Jarvis is a name …"), two frames never did in
        four runs, and true wakes stay over the threshold for several frames anyway.
        """
        # Each name once, in the order given: a list of the same name 100,000 times is one model,
        # not 100,000 classifiers run on every frame.
        chosen = list(dict.fromkeys(models)) if models else self.names
        unknown = [m for m in chosen if m not in self.classifiers][:5]
        if unknown:
            raise InvalidRequest(
                f"wake word model(s) {', '.join(unknown)} not loaded here; "
                f"choose from {', '.join(self.names)}"
            )
        if not 0 < threshold < 1:
            raise InvalidRequest(f"wake word threshold {threshold} is out of range; use 0 < threshold < 1")
        if patience < 1:
            raise InvalidRequest(f"wake word patience {patience} must be at least 1 frame")
        classifiers = [self.classifiers[m] for m in chosen]
        return WakeWordStream(self, classifiers, threshold, refractory_s, patience)

    def melspectrogram(self, audio: np.ndarray) -> np.ndarray:
        """Mel frames of int16-scaled float32 audio, with openWakeWord's ``x/10 + 2`` rescaling."""
        (output,) = self._melspec.run(None, {"input": audio[None, :]})
        return np.asarray(output).reshape(-1, _MEL_BINS) / 10 + 2

    def embed(self, mel_window: np.ndarray) -> np.ndarray:
        (output,) = self._embedding.run(None, {"input_1": mel_window[None, :, :, None].astype(np.float32)})
        return np.asarray(output).reshape(-1, 96)

    def _noise_features(self) -> np.ndarray:
        # openWakeWord starts each stream's history with embeddings of quiet noise; the classifiers
        # were trained against that, so we do the same (seeded, so every stream starts alike).
        noise = np.random.default_rng(0).integers(-1000, 1000, 16_000 * 4).astype(np.float32)
        mel = self.melspectrogram(noise)
        windows = [mel[i : i + _MEL_WINDOW] for i in range(0, mel.shape[0] - _MEL_WINDOW + 1, 8)]
        return np.concatenate([self.embed(w) for w in windows])[-self._history :].astype(np.float32)


class WakeWordStream:
    """Per-stream state: audio context, the mel window, the embedding history and the last scores."""

    def __init__(
        self,
        models: WakeWordModels,
        classifiers: list[_Classifier],
        threshold: float,
        refractory_s: float,
        patience: int,
    ) -> None:
        self._models = models
        self._classifiers = classifiers
        self.threshold = threshold
        self._refractory_frames = int(refractory_s * 16_000 / FRAME_SAMPLES)
        self._framer = Framer(FRAME_SAMPLES)
        self._context = np.zeros(_MEL_CONTEXT, dtype=np.float32)
        self._mel = np.ones((_MEL_WINDOW, _MEL_BINS), dtype=np.float32)
        self._features = models._initial_features.copy()
        self._frames = 0
        self._patience = patience
        self._above = {c.name: 0 for c in classifiers}  # frames in a row at or over the threshold
        self._quiet_until = {c.name: 0 for c in classifiers}
        self.last_scores: dict[str, float] = {}

    @property
    def position(self) -> int:
        """Samples this stream has scored (whole frames only)."""
        return self._frames * FRAME_SAMPLES

    def nbytes(self) -> int:
        return self._framer.pending.nbytes + self._context.nbytes + self._mel.nbytes + self._features.nbytes

    def push(self, samples: np.ndarray) -> list[Detection]:
        """Feed 16 kHz float32 audio in [-1, 1]; returns the detections it completed."""
        detections = []
        for frame in self._framer.split(samples):
            detections.extend(self._frame(frame))
        return detections

    def _frame(self, frame: np.ndarray) -> list[Detection]:
        scaled = frame.astype(np.float32) * 32768.0  # the models expect int16-valued input
        window = np.concatenate([self._context, scaled])
        self._context = scaled[-_MEL_CONTEXT:]
        self._mel = np.concatenate([self._mel, self._models.melspectrogram(window)])[-_MEL_WINDOW:]
        embedding = self._models.embed(self._mel)
        self._features = np.concatenate([self._features, embedding])[-len(self._features) :]
        self._frames += 1

        detections = []
        for classifier in self._classifiers:
            features = self._features[-classifier.frames :][None, :, :]
            (output,) = classifier.session.run(None, {classifier.input_name: features})
            # Multi-class models (the bundled "timer") put "nothing heard" in class 0.
            score = float(output.reshape(-1)[1:].max() if output.size > 1 else output.reshape(-1)[0])
            if self._frames <= _WARMUP_FRAMES:
                score = 0.0
            self.last_scores[classifier.name] = score
            above = self._above[classifier.name] = (
                self._above[classifier.name] + 1 if score >= self.threshold else 0
            )
            if above >= self._patience and self._frames >= self._quiet_until[classifier.name]:
                self._quiet_until[classifier.name] = self._frames + self._refractory_frames
                crossed = self.position - (above - 1) * FRAME_SAMPLES
                detections.append(Detection(classifier.name, score, self.position, crossed))
        return detections

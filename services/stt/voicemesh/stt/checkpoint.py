"""Tensors of a PyTorch checkpoint in the legacy (pre-1.6) format, read into numpy without torch.

Resemblyzer's ``pretrained.pt`` is such a file: four pickles (magic number, protocol version,
system info, then the object with its tensors as persistent ids), the list of storage keys, and
each storage's raw little-endian data after an 8-byte element count. Importing torch for this would
cost the STT process some 150 MiB and seconds of start-up for 17 MB of weights.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

_MAGIC = 0x1950A86A20F9469CFC6C
_PROTOCOL = 1001
_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


@dataclass
class _Storage:
    dtype: type
    size: int
    data: np.ndarray | None = None


@dataclass
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        assert self.storage.data is not None, "storage read after the pickle"
        itemsize = self.storage.data.itemsize
        strides = tuple(s * itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(self.storage.data[self.offset :], self.shape, strides)
        return np.array(view)  # a copy: the storage can go


class _Dict(dict[str, Any]):
    """An OrderedDict stand-in that takes the attributes torch pickles onto it (``_metadata``)."""


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda storage, offset, shape, stride, *_: _Tensor(
                storage, offset, tuple(shape), tuple(stride)
            )
        if module == "collections" and name == "OrderedDict":
            return _Dict
        # Anything else (an optimizer's classes) is kept as a name, never imported or run.
        return lambda *args, **kwargs: (module, name)

    def persistent_load(self, pid: Any) -> _Storage:
        kind, storage_type, key, _location, size, view = pid
        if kind != "storage" or view is not None:
            raise ValueError(f"unsupported checkpoint entry {kind!r}")
        if not isinstance(storage_type, _StorageType):
            raise ValueError(f"unsupported storage type {storage_type!r}")
        return self.storages.setdefault(key, _Storage(_DTYPES[storage_type.name], size))


def load_state(path: Path, entry: str = "model_state") -> dict[str, np.ndarray]:
    """The named state dict of a legacy checkpoint, as numpy arrays."""
    with path.open("rb") as file:
        # Every pickle goes through the unpickler that imports nothing, whatever the file says.
        if _Unpickler(file).load() != _MAGIC or _Unpickler(file).load() != _PROTOCOL:
            raise ValueError(f"{path} is not a legacy PyTorch checkpoint")
        _Unpickler(file).load()  # system info
        unpickler = _Unpickler(file)
        checkpoint = unpickler.load()
        keys = _Unpickler(file).load()
        for key in keys:
            storage = unpickler.storages[key]
            (count,) = struct.unpack("<q", file.read(8))
            raw = file.read(count * np.dtype(storage.dtype).itemsize)
            storage.data = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))
    state = checkpoint[entry]
    return {name: value.array() for name, value in state.items() if isinstance(value, _Tensor)}

"""voicemesh: a self-hostable voice assistant built as a gRPC service mesh."""

__version__ = "0.1.0"

"""Listening: voice activity, wake words and the gate between them, shared by the STT service and the
client SDK's edge. Pure Python over onnxruntime; no gRPC here."""

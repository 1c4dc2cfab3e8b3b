"""Generated from protos/voicemesh/v1 by buf generate (buf.gen.yaml)."""

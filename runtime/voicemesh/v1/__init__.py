"""Generated from protos/voicemesh/v1 by scripts/generate_protos.py."""

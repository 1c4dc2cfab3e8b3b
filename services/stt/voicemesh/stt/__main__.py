"""``python -m voicemesh.stt``: the speech-to-text server."""

from voicemesh.common.components import run

if __name__ == "__main__":
    run("stt")

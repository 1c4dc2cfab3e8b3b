"""``python -m voicemesh.tts``: the text-to-speech server."""

from voicemesh.common.components import run

if __name__ == "__main__":
    run("tts")

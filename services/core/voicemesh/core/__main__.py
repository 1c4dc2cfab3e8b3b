"""``python -m voicemesh.core``: the core server."""

from voicemesh.common.components import run

if __name__ == "__main__":
    run("core")

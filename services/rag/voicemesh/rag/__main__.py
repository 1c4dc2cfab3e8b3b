"""``python -m voicemesh.rag``: the retrieval server."""

from voicemesh.common.components import run

if __name__ == "__main__":
    run("rag")

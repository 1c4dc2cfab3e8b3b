"""``python -m voicemesh.gateway``: the public gateway server."""

from voicemesh.common.components import run

if __name__ == "__main__":
    run("gateway")

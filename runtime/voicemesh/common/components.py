"""The components of the mesh, in the one table that the launcher, the CLI, the settings, the tests
and the benches read.

Each component is one process: the package ``python -m`` runs, its default ports, the proto services
it serves, the extra that installs what it needs, and the folder of the design card it lives in.
Only the standard library is imported here, so a bare client install can read the table and say
which extra a command lacks instead of failing with an ImportError.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from types import ModuleType


class MissingExtra(Exception):
    """A command needs a dependency that this install left out; the message names the extra."""


@dataclass(frozen=True)
class Component:
    name: str
    package: str  # ``python -m <package>`` runs it; ``<package>.server`` builds and serves it
    port: int
    metrics_port: int
    services: tuple[str, ...]  # the proto services it serves, its own first
    extra: str  # pip install voicemesh[<extra>]
    folder: str  # where its code lives in the repository
    settings: str  # "module:Class" of its settings (env prefix VOICEMESH_<NAME>_, file table [<name>])

    @property
    def env_prefix(self) -> str:
        return f"VOICEMESH_{self.name.upper()}_"

    def server(self) -> ModuleType:
        """The module with the component's ``main``, ``build_engine`` and ``build_host``."""
        return import_extra(f"{self.package}.server", self.extra)

    def settings_class(self) -> type:
        module, _, name = self.settings.partition(":")
        settings: type = getattr(import_extra(module, self.extra), name)
        return settings


GATEWAY = Component(
    "gateway",
    "voicemesh.gateway",
    50051,
    9451,
    (
        "voicemesh.v1.GatewayService",
        "voicemesh.v1.UserDataService",
        "voicemesh.v1.RetrievalService",
        "voicemesh.v1.VoiceService",
    ),
    "gateway",
    "gateway",
    "voicemesh.gateway.config:GatewaySettings",
)
STT = Component(
    "stt",
    "voicemesh.stt",
    50052,
    9452,
    ("voicemesh.v1.SpeechToTextService",),
    "stt",
    "services/stt",
    "voicemesh.stt.config:SttSettings",
)
TTS = Component(
    "tts",
    "voicemesh.tts",
    50053,
    9453,
    ("voicemesh.v1.TextToSpeechService",),
    "tts",
    "services/tts",
    "voicemesh.tts.config:TtsSettings",
)
CORE = Component(
    "core",
    "voicemesh.core",
    50054,
    9454,
    ("voicemesh.v1.CoreService", "voicemesh.v1.UserDataService"),
    "core",
    "services/core",
    "voicemesh.core.config:CoreSettings",
)

RAG = Component(
    "rag",
    "voicemesh.rag",
    50055,
    9455,
    ("voicemesh.v1.RetrievalService",),
    "rag",
    "services/rag",
    "voicemesh.rag.config:RagSettings",
)

COMPONENTS = {component.name: component for component in (GATEWAY, STT, TTS, CORE, RAG)}
# What the gateway calls: started before it, stopped after it.
BACKENDS = (STT, TTS, CORE, RAG)


def import_extra(module: str, extra: str) -> ModuleType:
    """Import ``module``; a third-party dependency it lacks becomes a MissingExtra naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "voicemesh":
            raise  # our own module is missing: a broken install, not a missing extra
        raise MissingExtra(
            f"{exc.name} is not installed; install it with: pip install 'voicemesh[{extra}]'"
        ) from None


def run(name: str) -> None:
    """What each component's ``__main__`` does: serve it, or say in one line which extra it needs."""
    component = COMPONENTS[name]
    try:
        server = component.server()
    except MissingExtra as exc:
        print(f"voicemesh {name}: {exc}", file=sys.stderr)
        sys.exit(2)
    server.main()

"""How large a request may be, in one place: every layer that checks a request reads its limit here.

The gateway checks what callers send before it spends a downstream call on it; the services check
again, since their own APIs are reachable too; both with the numbers and messages below.
"""

from __future__ import annotations

import re

from voicemesh.common.errors import InvalidRequest

_COLLECTION_NAME = re.compile(r"[A-Za-z0-9._-]+")

# A turn's text: what the user typed or said, and a reply kept in the history.
MAX_TEXT_CHARS = 8 * 1024
# Sentences a caller may ask a reply to run to (0 asks for the server's default).
MAX_REPLY_SENTENCES = 50
# Text given to speech synthesis in one request or stream.
MAX_SYNTHESIS_CHARS = 64 * 1024
# Session and user ids become store keys and Redis hash tags.
MAX_ID_CHARS = 128
# What the core takes as a user id: a caller's user id, qualified by its tenant (identity.user_key).
MAX_USER_KEY_CHARS = MAX_ID_CHARS + 25
# 1 MiB is about 33 s of 16 kHz mono: far above any sane streaming chunk, far below gRPC's limits.
MAX_CHUNK_BYTES = 1 << 20
# gRPC's own message limit, on every server and channel: room for our checks above to answer first.
MAX_MESSAGE_BYTES = 16 << 20
# A user's profile.
MAX_PROFILE_FIELDS = 32
MAX_PROFILE_KEY_CHARS = 64
MAX_PROFILE_VALUE_CHARS = 256
# History turns one GetUserData may list.
MAX_HISTORY_TURNS = 1000
# A document to ingest: its bytes fit in one message, its extracted text in a few thousand passages.
MAX_DOCUMENT_BYTES = 15 << 20
MAX_DOCUMENT_CHARS = 4_000_000
# Documents one Ingest stream may carry, and passages one Search may return.
MAX_INGEST_DOCUMENTS = 10_000
MAX_SEARCH_RESULTS = 50
# Passages of the user's documents one reply may be given (the local model's context is 2,048 tokens).
MAX_SOURCES = 10
MAX_SOURCE_CHARS = 6_000
# A collection's name: a path segment of the index folder and a label in logs.
MAX_COLLECTION_CHARS = 64


def check_text(name: str, text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """The text stripped of surrounding whitespace, refused when empty or over the limit."""
    stripped = text.strip()
    if not stripped:
        raise InvalidRequest(f"{name} is empty; send what the user said or typed")
    if len(stripped) > limit:
        raise InvalidRequest(f"{name} of {len(stripped)} characters is over the {limit} limit")
    return stripped


def check_collection_name(name: str) -> str:
    """A collection name (empty: "default"): letters, digits, '.', '_' or '-'."""
    if not name:
        return "default"
    if len(name) > MAX_COLLECTION_CHARS or not _COLLECTION_NAME.fullmatch(name):
        raise InvalidRequest(
            f"collection name {name[:80]!r} must be 1 to {MAX_COLLECTION_CHARS} letters, digits, "
            "'.', '_' or '-'"
        )
    return name


def check_id(name: str, value: str, longest: int = MAX_ID_CHARS) -> None:
    """Session and user ids: short, printable, without braces (they become Redis hash tags)."""
    if len(value) > longest:
        raise InvalidRequest(f"{name} of {len(value)} characters is over the {longest} limit")
    if any(c in "{}" or not c.isprintable() for c in value):
        raise InvalidRequest(f"{name} {value!r} may not contain braces or control characters")

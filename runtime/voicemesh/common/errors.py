"""The one error taxonomy of voicemesh.

Engines raise these; ``voicemesh.rpc.status`` maps each class to a gRPC status code in one place.
Messages are written for the caller: they say what to change, not what broke inside.
"""

from __future__ import annotations


class VoicemeshError(Exception):
    """Base of every error a caller can act on."""


class InvalidRequest(VoicemeshError):
    """The request is malformed or out of range (INVALID_ARGUMENT)."""


class InvalidAudio(InvalidRequest):
    """Audio bytes or audio format that the server cannot take."""


class MissingConfig(InvalidRequest):
    """A stream whose first message does not carry its config."""


class FailedPrecondition(VoicemeshError):
    """The request is well formed but the system is not in a state to serve it: a user with no
    voice print, a service without the model asked for (FAILED_PRECONDITION)."""


class PermissionDenied(VoicemeshError):
    """The caller may not touch what it asked for: another user's data (PERMISSION_DENIED)."""


class Unauthenticated(VoicemeshError):
    """No credential, or one that failed a check; the message says which and how to get one
    (UNAUTHENTICATED)."""


class Overloaded(VoicemeshError):
    """The server is at a limit (RESOURCE_EXHAUSTED); ``retry_after_s`` says when to come back."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TimedOut(VoicemeshError):
    """The caller let a stream sit idle past its limit (DEADLINE_EXCEEDED)."""


class ModelFailure(VoicemeshError):
    """A model could not produce a result for a valid request (INTERNAL)."""


class DependencyUnavailable(VoicemeshError):
    """Something the request needs (a remote model endpoint) cannot be reached (UNAVAILABLE)."""

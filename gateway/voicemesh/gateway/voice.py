"""Speaker verification at the gateway: VoiceService (a user's voice print and its settings), and the
per-stream gate that refuses a turn whose voice does not match.

Enrollment: the STT service turns each recording into an embedding (EmbedVoice, the speech in it
only), the gateway averages them and checks that they agree, and the core keeps the print. The print
never goes back to a caller: VoiceStatus says what it was made from, not what it is.

In a Converse stream of a user with a print, the STT scores every utterance against it while it is
transcribed, so the verdict comes with the transcript (final and speculative alike). With
``require_match``, a turn whose voice does not match ends with ``voice_not_verified`` and nothing
of it reaches the core: not the final transcript, and not a preemptive reply started in the pause.
"""

from __future__ import annotations

import logging
import math

from voicemesh.common import limits
from voicemesh.common.errors import FailedPrecondition, InvalidRequest
from voicemesh.common.identity import user_key
from voicemesh.common.metrics import VOICE_TURNS
from voicemesh.gateway.auth import caller
from voicemesh.gateway.downstream import Downstream
from voicemesh.rpc.convert import audio_format
from voicemesh.rpc.handler import Context, rpc_handler
from voicemesh.rpc.status import RelayedStatus
from voicemesh.v1 import core_pb2, gateway_pb2, speech_to_text_pb2, voice_pb2, voice_pb2_grpc

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
EMBED_TIMEOUT_S = 30.0
MAX_SAMPLES = 10
# An enrollment recording whose voice scores under this against the others' is someone else (or
# noise). bench/speaker.py: 95% of one voice's recordings score 0.89 or more against its print, and
# half of all pairs of different voices under 0.63.
MIN_CONSISTENCY = 0.7
MATCH = speech_to_text_pb2.SPEAKER_VERDICT_MATCH


def _user(user_id: str) -> tuple[str, str]:
    """The user this credential covers, and their key at the core (qualified by the tenant)."""
    limits.check_id("user_id", user_id)
    identity = caller()
    user = identity.user_for(user_id)
    if not user:
        raise InvalidRequest("user_id is empty; name the user whose voice this is")
    return user, user_key(identity.tenant, user)


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _mean(vectors: list[list[float]]) -> list[float]:
    return _unit([sum(column) / len(vectors) for column in zip(*vectors, strict=True)])


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def consistency(embeddings: list[list[float]]) -> tuple[float, int]:
    """The lowest score of a recording against the mean of the others, and which recording it is
    (1.0 for a single one: there is nothing to compare it with)."""
    if len(embeddings) < 2:
        return 1.0, 0
    scores = [_dot(e, _mean(embeddings[:n] + embeddings[n + 1 :])) for n, e in enumerate(embeddings)]
    worst = min(range(len(scores)), key=scores.__getitem__)
    return scores[worst], worst


def voice_status(voice: core_pb2.VoicePrint) -> voice_pb2.VoiceStatus:
    status = voice_pb2.VoiceStatus(enrolled=bool(voice.embedding))
    if status.enrolled:
        status.require_match = voice.require_match
        status.samples = voice.samples
        status.speech_s = voice.speech_s
        status.model = voice.model
        status.consistency = voice.consistency
        status.enrolled_at.CopyFrom(voice.enrolled_at)
    return status


async def read_print(downstream: Downstream, user_id: str, session_id: str = "") -> core_pb2.VoicePrint:
    """The user's print from the core (via the session's cached copy when a session is named)."""
    async with downstream.guard("core", slot=False) as core:
        request = core_pb2.GetVoicePrintRequest(user_id=user_id, session_id=session_id)
        found: core_pb2.GetVoicePrintResponse = await core.GetVoicePrint(request, timeout=TIMEOUT_S)
    return found.print


class GatewayVoice(voice_pb2_grpc.VoiceServiceServicer):
    def __init__(self, downstream: Downstream) -> None:
        self._downstream = downstream

    async def _save(self, user_id: str, voice: core_pb2.VoicePrint) -> core_pb2.SaveVoicePrintResponse:
        async with self._downstream.guard("core", slot=False) as core:
            request = core_pb2.SaveVoicePrintRequest(user_id=user_id, print=voice)
            saved: core_pb2.SaveVoicePrintResponse = await core.SaveVoicePrint(request, timeout=TIMEOUT_S)
        return saved

    @rpc_handler
    async def EnrollVoice(
        self, request: voice_pb2.EnrollVoiceRequest, context: Context
    ) -> voice_pb2.EnrollVoiceResponse:
        _, owner = _user(request.user_id)
        if not 1 <= len(request.samples) <= MAX_SAMPLES:
            raise InvalidRequest(
                f"{len(request.samples)} samples; enroll with 1 to {MAX_SAMPLES} recordings "
                "(three of 3 to 5 s each work well)"
            )
        for number, sample in enumerate(request.samples, start=1):
            try:
                audio_format(sample.audio_format)
            except InvalidRequest as exc:
                raise InvalidRequest(f"sample {number}: {exc}") from None
        embeddings: list[list[float]] = []
        speech_s, model = 0.0, ""
        for number, sample in enumerate(request.samples, start=1):
            embed = speech_to_text_pb2.EmbedVoiceRequest(audio_format=sample.audio_format, audio=sample.audio)
            try:
                async with self._downstream.guard("stt") as stt:
                    heard: speech_to_text_pb2.EmbedVoiceResponse = await stt.EmbedVoice(
                        embed, timeout=EMBED_TIMEOUT_S
                    )
            except RelayedStatus as exc:
                raise RelayedStatus(exc.code(), f"sample {number}: {exc}") from None
            embeddings.append(list(heard.embedding))
            speech_s += heard.speech_s
            model = heard.model
        agreement, worst = consistency(embeddings)
        if agreement < MIN_CONSISTENCY:
            raise InvalidRequest(
                f"sample {worst + 1} does not sound like the others (score {agreement:.2f}, under "
                f"{MIN_CONSISTENCY}); record it again, the same person in a quiet room"
            )
        voice = core_pb2.VoicePrint(
            embedding=_mean(embeddings),
            require_match=request.require_match,
            samples=len(embeddings),
            speech_s=speech_s,
            model=model,
            consistency=agreement,
        )
        voice.enrolled_at.GetCurrentTime()
        saved = await self._save(owner, voice)
        return voice_pb2.EnrollVoiceResponse(status=voice_status(saved.print))

    @rpc_handler
    async def GetVoiceStatus(
        self, request: voice_pb2.GetVoiceStatusRequest, context: Context
    ) -> voice_pb2.GetVoiceStatusResponse:
        _, owner = _user(request.user_id)
        return voice_pb2.GetVoiceStatusResponse(
            status=voice_status(await read_print(self._downstream, owner))
        )

    @rpc_handler
    async def SetVoiceRequired(
        self, request: voice_pb2.SetVoiceRequiredRequest, context: Context
    ) -> voice_pb2.SetVoiceRequiredResponse:
        user_id, owner = _user(request.user_id)
        voice = await read_print(self._downstream, owner)
        if not voice.embedding:
            raise FailedPrecondition(
                f"user {user_id!r} has no voice print; enroll one first (voicemesh voice enroll "
                f"{user_id} sample.wav …)"
            )
        voice.require_match = request.require_match
        saved = await self._save(owner, voice)
        return voice_pb2.SetVoiceRequiredResponse(status=voice_status(saved.print))

    @rpc_handler
    async def ForgetVoice(
        self, request: voice_pb2.ForgetVoiceRequest, context: Context
    ) -> voice_pb2.ForgetVoiceResponse:
        saved = await self._save(_user(request.user_id)[1], core_pb2.VoicePrint())
        return voice_pb2.ForgetVoiceResponse(status=voice_status(saved.print), deleted=saved.deleted)


class VoiceGate:
    """One Converse stream's speaker check: what the STT is asked to compare, and which turns pass."""

    def __init__(self, downstream: Downstream, user_id: str, session_id: str) -> None:
        self._downstream = downstream
        self._user_id = user_id
        self._session_id = session_id
        self._voice: core_pb2.VoicePrint | None = None
        self._unread: RelayedStatus | None = None  # the print could not be read when the stream began

    async def _read(self) -> core_pb2.VoicePrint:
        return await read_print(self._downstream, self._user_id, self._session_id)

    async def check(self) -> speech_to_text_pb2.SpeakerCheck | None:
        """What the STT stream compares each utterance with: the user's print, if they have one."""
        if not self._user_id:
            return None
        try:
            self._voice = await self._read()
        except RelayedStatus as exc:
            log.warning("voice print of the stream's user unreadable (%s); its turns wait for it", exc)
            self._unread = exc
            return None
        if not self._voice.embedding:
            return None
        return speech_to_text_pb2.SpeakerCheck(voice_print=self._voice.embedding, model=self._voice.model)

    def _required(self) -> bool:
        return self._unread is not None or (self._voice is not None and self._voice.require_match)

    def lets_speculate(self, result: speech_to_text_pb2.RecognitionResult) -> bool:
        """Whether a preemptive reply may start on this speculative result: not before the voice
        has been heard to match, when a match is required."""
        return not self._required() or result.speaker.verdict == MATCH

    async def refusal(
        self, result: speech_to_text_pb2.RecognitionResult
    ) -> gateway_pb2.VoiceNotVerified | gateway_pb2.TurnFailed | None:
        """Why the turn of this final transcript may not go on, or None when it may."""
        if self._unread is not None:
            try:
                voice = await self._read()
            except RelayedStatus as exc:
                VOICE_TURNS.labels("unknown").inc()
                return gateway_pb2.TurnFailed(code=exc.code().value[0], message=f"voice print: {exc}")
            if not voice.embedding or not voice.require_match:
                return None
            VOICE_TURNS.labels("unchecked").inc()
            return gateway_pb2.VoiceNotVerified(
                message="your voice could not be checked: the voice print was unreadable when this "
                "conversation began; start a new one"
            )
        if self._voice is None or not self._voice.embedding:
            return None
        speaker = result.speaker
        verdict = (
            speech_to_text_pb2.SpeakerVerdict.Name(speaker.verdict).removeprefix("SPEAKER_VERDICT_").lower()
        )
        if not self._voice.require_match or speaker.verdict == MATCH:
            VOICE_TURNS.labels(verdict if self._voice.require_match else "not_required").inc()
            return None
        VOICE_TURNS.labels(verdict).inc()
        why = (
            "too little speech to tell who is speaking; say it again, a little longer"
            if speaker.verdict == speech_to_text_pb2.SPEAKER_VERDICT_TOO_SHORT
            else f"the voice does not match this user's voice print (score {speaker.score:.2f}, "
            f"needs {speaker.threshold:.2f})"
        )
        return gateway_pb2.VoiceNotVerified(speaker=speaker, message=f"turn refused: {why}")

"""The ``voicemesh`` command: run the mesh, talk to it, ask it."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from voicemesh.client.sdk import DEFAULT_TARGET, AsyncClient, wav_chunks
from voicemesh.common import limits
from voicemesh.common.audio import WavAudio, write_wav
from voicemesh.common.audio_files import read_audio
from voicemesh.common.components import BACKENDS, COMPONENTS, GATEWAY, MissingExtra, import_extra
from voicemesh.common.errors import InvalidAudio, InvalidRequest
from voicemesh.common.limits import MAX_DOCUMENT_BYTES
from voicemesh.v1 import retrieval_pb2, speech_to_text_pb2, user_data_pb2, voice_pb2

DEFAULT_USER = os.environ.get("VOICEMESH_USER") or getpass.getuser()

DOCUMENT_SUFFIXES = {".txt", ".text", ".rst", ".md", ".markdown", ".html", ".htm", ".xhtml", ".pdf"}
Event = Any  # gateway_pb2.ConverseResponse | gateway_pb2.AskResponse: same event fields
Turn = tuple[int, int]


class Printer:
    """Prints events as a person reads them, or one JSON object per line for scripts.

    A person reads a turn at a time: its transcript, its reply and its timings. Turns overlap on
    the wire (the next transcript can come while a reply is still streaming), so the lines of a
    later turn wait until the turn being printed has ended, then follow in order.
    """

    def __init__(self, as_json: bool, *, keep_audio: bool = False) -> None:
        """With ``keep_audio``, the reply audio is kept for ``save`` (one turn's, for talk and ask)."""
        self.as_json = as_json
        self.keep_audio = keep_audio
        self.audio = bytearray()
        self.rate = 0
        self.heard = False  # a transcript or a reply came
        # Turns are keyed (stream, turn index): `listen` opens a stream per command.
        self._live: Turn | None = None  # the turn whose lines print as they come
        self._held: dict[Turn, list[str]] = {}  # later turns' lines, until the live one ends
        self._ended: set[Turn] = set()
        self._mid_reply: set[Turn] = set()  # turns whose reply line is still open
        self._sources: dict[Turn, list[str]] = {}

    def __call__(self, event: Event, stream: int = 0) -> None:
        kind = event.WhichOneof("event")
        if kind == "reply_audio":
            if self.keep_audio:
                self.audio += event.reply_audio.audio_content
            self.rate = event.reply_audio.sample_rate_hz
        if kind in ("transcript", "route"):
            self.heard = True
        if self.as_json:
            data = MessageToDict(event, preserving_proto_field_name=True)
            if kind == "reply_audio":  # base64 audio is noise in a terminal; say how much there is
                audio = data["reply_audio"]
                audio["audio_bytes"] = len(event.reply_audio.audio_content)
                audio.pop("audio_content", None)
            print(json.dumps(data), flush=True)
            return
        turn = (stream, getattr(event, "turn_index", 0))  # an Ask has one turn
        text = self._text(turn, kind, event)
        if turn in self._ended:
            if kind == "interrupted":  # after turn_done: its audio was still playing
                self._write("  [reply interrupted]\n")
            return
        if self._live is None:
            self._live = turn
        if turn == self._live:
            self._write(text)
        else:
            self._held.setdefault(turn, []).append(text)
        if self._ends(kind, event):
            self._ended.add(turn)
            if turn == self._live:
                self._next()

    def finish(self) -> None:
        """The stream is over: print what is still held, in turn order."""
        for turn in sorted(self._held):
            self._write("".join(self._held.pop(turn)))
            if turn in self._mid_reply:
                self._write("\n")
        if self._live in self._mid_reply:
            self._write("\n")
        self._live = None

    def _next(self) -> None:
        self._live = None
        while self._held:
            turn = min(self._held)
            self._write("".join(self._held.pop(turn)))
            if turn not in self._ended:
                self._live = turn
                return

    @staticmethod
    def _write(text: str) -> None:
        if text:
            print(text, end="", flush=True)

    @staticmethod
    def _ends(kind: str | None, event: Event) -> bool:
        """Whether nothing more of this turn is to be printed."""
        if kind == "transcript":  # an empty final gets no reply
            return bool(event.transcript.is_final and not event.transcript.transcript.strip())
        return kind in ("turn_done", "turn_failed", "interrupted", "voice_not_verified")

    def _text(self, turn: Turn, kind: str | None, event: Event) -> str:
        """What one event adds to its turn's lines."""
        close = "\n" if turn in self._mid_reply else ""
        if kind == "transcript":
            result = event.transcript
            if not result.is_final or not result.transcript.strip():
                return ""
            voice = ""
            if result.HasField("speaker"):
                heard = result.speaker
                verdict = speech_to_text_pb2.SpeakerVerdict.Name(heard.verdict).removeprefix(
                    "SPEAKER_VERDICT_"
                )
                voice = f"  [voice {verdict.lower().replace('_', ' ')} {heard.score:.2f}]"
            return f"you: {result.transcript}{voice}\n"
        if kind == "voice_not_verified":
            return f"  ({event.voice_not_verified.message})\n"
        if kind == "route":
            self._mid_reply.add(turn)
            return f"assistant ({event.route.tier}, {event.route.model}): "
        if kind == "reply_text_delta":
            return str(event.reply_text_delta)
        if kind == "citation":
            c = event.citation
            where = " - ".join(part for part in (c.title, c.heading) if part)
            source = f"[{c.index}] {where} ({c.source})" if where else f"[{c.index}] {c.source}"
            self._sources.setdefault(turn, []).append(source)
            return ""
        if kind == "grounding_failed":
            return f"(answering without your documents: {event.grounding_failed.message})\n"
        if kind == "interrupted":
            self._mid_reply.discard(turn)
            return " [interrupted]\n" if close else "[reply interrupted]\n"
        if kind == "turn_failed":
            self._mid_reply.discard(turn)
            failed = event.turn_failed
            return f"{close}  (turn failed: {_status_name(failed.code)}: {failed.message})\n"
        if kind == "turn_done":
            self._mid_reply.discard(turn)
            lines = close
            sources = self._sources.pop(turn, [])
            if sources:
                lines += "  sources: " + "; ".join(sources) + "\n"
            t = event.turn_done.timings
            stages = [
                ("transcript", t.final_transcript_ms),
                ("first token", t.first_token_ms),
                ("first audio", t.first_audio_ms),
                ("done", t.done_ms),
            ]
            return lines + "  (" + ", ".join(f"{name} {ms:.0f} ms" for name, ms in stages if ms) + ")\n"
        return ""

    def save(self, path: Path | None) -> None:
        if path is None:
            return
        if not self.audio:
            print("voicemesh: no reply audio came back; nothing written", file=sys.stderr)
            return
        write_wav(path, WavAudio(bytes(self.audio), self.rate))
        if not self.as_json:
            print(f"reply audio: {path} ({len(self.audio) / 2 / self.rate:.1f} s)", flush=True)


async def _consume(events: AsyncIterator[Event], printer: Printer) -> None:
    try:
        async for event in events:
            printer(event)
    finally:
        printer.finish()


def _status_name(number: int) -> str:
    """RESOURCE_EXHAUSTED for 8: a status as TurnFailed carries it, by name."""
    return next((code.name for code in grpc.StatusCode if code.value[0] == number), f"status {number}")


def _sentences(value: str) -> int:
    """--sentences N: argparse's one-line error, exit 2, for anything but 1 to the limit."""
    if not value.isdigit() or not 1 <= int(value) <= limits.MAX_REPLY_SENTENCES:
        raise argparse.ArgumentTypeError(f"use a whole number from 1 to {limits.MAX_REPLY_SENTENCES}")
    return int(value)


def _read(path: Path) -> WavAudio | None:
    """The file's audio, or None once one line has said why it cannot be read."""
    try:
        return read_audio(path)
    except (OSError, InvalidAudio) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"voicemesh: cannot read {path}: {reason}", file=sys.stderr)
        return None


def _writable(path: Path | None) -> bool:
    """Whether a reply can be written there, checked before the turn runs, not after."""
    if path is None or path.parent.is_dir():
        return True
    print(f"voicemesh: cannot write {path}: no folder {path.parent}", file=sys.stderr)
    return False


async def talk(args: argparse.Namespace) -> int:
    audio = _read(args.audio)
    if audio is None or not _writable(args.out):
        return 2
    printer = Printer(args.json, keep_audio=args.out is not None)
    async with _client(args) as client:
        events = client.converse(
            wav_chunks(audio),
            sample_rate_hz=audio.sample_rate_hz,
            channels=audio.channels,
            speak=args.out is not None,
            voice=args.voice,
            session_id=args.session,
            user_id=args.user,
            retrieval=not args.no_documents,
            collection=args.collection,
            endpointing=args.endpointing,
            hotwords=args.hotword,
            max_sentences=args.sentences,
        )
        await _consume(events, printer)
    printer.save(args.out)
    if not printer.heard:
        print(f"voicemesh: no speech heard in {args.audio}", file=sys.stderr)
        return 1
    return 0


async def ask(args: argparse.Namespace) -> int:
    if not _writable(args.out):
        return 2
    printer = Printer(args.json, keep_audio=args.out is not None)
    async with _client(args) as client:
        events = client.ask(
            args.text,
            speak=args.out is not None,
            voice=args.voice,
            session_id=args.session,
            user_id=args.user,
            retrieval=not args.no_documents,
            collection=args.collection,
            max_sentences=args.sentences,
        )
        await _consume(events, printer)
    printer.save(args.out)
    return 0


async def listen(args: argparse.Namespace) -> int:
    edge = import_extra("voicemesh.client.edge", "edge")  # its models need numpy and onnxruntime
    overrides: dict[str, Any] = {}
    if args.wake_word is not None:
        overrides["wake_words"] = [w for w in args.wake_word if w]
    if args.threshold is not None:
        overrides["wake_threshold"] = args.threshold
    settings = edge.EdgeSettings.load(**overrides)  # a bad setting is one InvalidRequest line
    if args.file is not None:
        wav = _read(args.file)
        if wav is None:
            return 2
        rate, channels = wav.sample_rate_hz, wav.channels
        source = edge.file_audio(wav, realtime=not args.fast)
    else:
        try:
            rate, channels = 16_000, 1
            source = edge.microphone(sample_rate_hz=rate)
        except edge.NoMicrophone as exc:
            print(f"voicemesh: {exc}", file=sys.stderr)
            return 2

    speaker = None
    if args.file is None and not args.quiet:
        try:
            speaker = edge.Speaker()
        except edge.NoMicrophone as exc:
            print(f"voicemesh: {exc}; replies will not be played", file=sys.stderr)
    if args.save_dir is not None:
        args.save_dir.mkdir(parents=True, exist_ok=True)
    printer = Printer(args.json)
    replies: dict[int, bytearray] = {}  # a command's reply audio until its turn ends, then written
    if not args.json:
        print(f"listening for {', '.join(settings.wake_words) or 'any speech'}", flush=True)

    async with _client(args) as client:
        listener = edge.Edge(
            client,
            edge.EdgeModels(settings),
            speak=bool(speaker or args.save_dir),
            voice=args.voice,
            user_id=args.user,
            hotwords=args.hotword,
        )
        async for event in listener.listen(source, sample_rate_hz=rate, channels=channels):
            if not isinstance(event, edge.GatewayEvent):
                _print_edge_event(event, args.json)
                continue
            printer(event.response, stream=event.command)
            if event.response.WhichOneof("event") == "interrupted" and speaker is not None:
                speaker.stop()
            if event.response.WhichOneof("event") == "reply_audio":
                chunk = event.response.reply_audio
                if speaker is not None:
                    speaker.say(chunk.audio_content, chunk.sample_rate_hz)
                if args.save_dir is not None:
                    replies.setdefault(event.command, bytearray()).extend(chunk.audio_content)
            if (
                event.response.WhichOneof("event") in ("turn_done", "interrupted")
                and event.command in replies
            ):
                _save_reply(args.save_dir, event.command, replies.pop(event.command), printer)
    if speaker is not None:
        await speaker.drain()
    for command, audio in sorted(replies.items()):
        _save_reply(args.save_dir, command, audio, printer)
    return 0


def _save_reply(folder: Path, command: int, audio: bytearray, printer: Printer) -> None:
    path = folder / f"reply-{command}.wav"
    write_wav(path, WavAudio(bytes(audio), printer.rate))
    if not printer.as_json:
        print(f"reply audio: {path} ({len(audio) / 2 / printer.rate:.1f} s)", flush=True)


def _print_edge_event(event: Any, as_json: bool) -> None:
    """An edge event (the edge module is loaded only with its extra, so it is told by name here)."""
    kind = type(event).__name__
    if as_json:
        fields = {k: (v.name if isinstance(v, grpc.StatusCode) else v) for k, v in vars(event).items()}
        print(json.dumps({"edge": kind, **fields}), flush=True)
    elif kind == "WakeHeard":
        print(f"[{event.heard_s:6.2f}s] wake: {event.model} ({event.score:.2f})", flush=True)
    elif kind == "CommandSent":
        length = event.end_s - event.start_s
        print(f"[{event.end_s:6.2f}s] sent {length:.1f} s of audio ({event.reason})", flush=True)
    elif kind == "CommandFailed":
        print(f"voicemesh: command {event.command}: {event.code.name}: {event.details}", file=sys.stderr)


async def history(args: argparse.Namespace) -> int:
    """Show or delete what the mesh keeps about a user."""
    async with _client(args) as client:
        if args.action == "delete":
            deleted = await client.users.DeleteUserData(
                user_data_pb2.DeleteUserDataRequest(user_id=args.user_id)
            )
            if args.json:
                print(json.dumps(MessageToDict(deleted, preserving_proto_field_name=True)))
            else:
                what = "the profile" if deleted.profile_deleted else "no profile"
                print_ = "the voice print" if deleted.voice_print_deleted else "no voice print"
                print(
                    f"deleted {args.user_id}: {deleted.turns_deleted} turns, {deleted.sessions_deleted} "
                    f"sessions, {deleted.cached_replies_deleted} cached replies, {what}, {print_}"
                )
            return 0
        data = await client.users.GetUserData(
            user_data_pb2.GetUserDataRequest(user_id=args.user_id, limit=args.limit)
        )
    if args.json:
        print(json.dumps(MessageToDict(data, preserving_proto_field_name=True)))
        return 0
    profile = ", ".join(f"{k}={v}" for k, v in sorted(data.profile.items()))
    print(f"{args.user_id}: profile {profile or '(none)'}; {len(data.turns)} turns shown, oldest first")
    for turn in data.turns:
        when = turn.time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        cut = " [interrupted]" if turn.interrupted else ""
        print(f"{when}  session {turn.session_id[:8]}  ({turn.route or 'no reply'})")
        print(f"  you: {turn.transcript}")
        print(f"  assistant: {turn.reply_text}{cut}")
    return 0


def _voice_line(user_id: str, status: voice_pb2.VoiceStatus) -> str:
    if not status.enrolled:
        return f"{user_id}: no voice print"
    required = "required" if status.require_match else "not required"
    when = status.enrolled_at.ToDatetime().strftime("%Y-%m-%d %H:%M")
    return (
        f"{user_id}: voice print from {status.samples} recordings ({status.speech_s:.1f} s of speech, "
        f"consistency {status.consistency:.2f}, {status.model}, {when}); a match is {required}"
    )


async def voice(args: argparse.Namespace) -> int:
    """Enroll, show, require or forget a user's voice print."""
    recordings = []
    if args.voice_command == "enroll":
        for path in args.wavs:
            if (recording := _read(path)) is None:
                return 2
            recordings.append(recording)
    async with _client(args) as client:
        if args.voice_command == "enroll":
            status = await client.enroll_voice(args.user_id, recordings, require_match=args.require_match)
        elif args.voice_command == "require":
            request = voice_pb2.SetVoiceRequiredRequest(
                user_id=args.user_id, require_match=args.state == "on"
            )
            status = (await client.voices.SetVoiceRequired(request)).status
        elif args.voice_command == "forget":
            forgot = voice_pb2.ForgetVoiceRequest(user_id=args.user_id)
            status = (await client.voices.ForgetVoice(forgot)).status
        else:
            asked = voice_pb2.GetVoiceStatusRequest(user_id=args.user_id)
            status = (await client.voices.GetVoiceStatus(asked)).status
    if args.json:
        print(json.dumps(MessageToDict(status, preserving_proto_field_name=True)))
    else:
        print(_voice_line(args.user_id, status))
    return 0


async def profile(args: argparse.Namespace) -> int:
    fields = {}
    for item in args.fields:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"voicemesh: {item!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        fields[key] = value
    request = user_data_pb2.UpdateProfileRequest(user_id=args.user_id, set=fields, remove=args.remove or [])
    async with _client(args) as client:
        updated = await client.users.UpdateProfile(request)
    print(", ".join(f"{k}={v}" for k, v in sorted(updated.profile.items())) or "(empty profile)")
    return 0


async def ingest(args: argparse.Namespace) -> int:
    """Add files (or every document file under a folder) to the user's documents, or remove them."""
    try:
        paths = list(document_files(args.paths))
    except OSError as exc:
        print(f"voicemesh: {exc}", file=sys.stderr)
        return 2
    async with _client(args) as client:
        if args.delete:
            request = retrieval_pb2.DeleteRequest(
                collection=retrieval_pb2.Collection(user_id=args.user, name=args.collection),
                document_ids=[str(p) for p in paths],
            )
            deleted = await client.documents.Delete(request)
            print(f"deleted {deleted.documents} documents ({deleted.passages} passages)")
            return 0 if deleted.documents == len(paths) else 2
        refused: list[str] = []

        def documents() -> Iterator[retrieval_pb2.Document]:
            for path in paths:
                try:
                    size = path.stat().st_size
                    if size > MAX_DOCUMENT_BYTES:
                        refused.append(
                            f"{path}: it is {size / (1 << 20):.1f} MiB, over {MAX_DOCUMENT_BYTES >> 20} MiB"
                        )
                        continue
                    data = path.read_bytes()
                except OSError as exc:
                    refused.append(f"{path}: {exc.strerror or exc}")
                    continue
                yield retrieval_pb2.Document(document_id=str(path), source=str(path), data=data)

        done = await client.ingest(documents(), user_id=args.user, collection=args.collection)
    refused += [f"{e.source or e.document_id}: {e.message}" for e in done.errors]
    for line in refused:
        print(f"voicemesh: not ingested: {line}", file=sys.stderr)
    print(
        f"ingested {done.documents} documents ({done.passages} passages), {done.unchanged} unchanged, "
        f"{len(refused)} refused; generation {done.generation}"
    )
    return 2 if refused else 0


def document_files(paths: list[Path]) -> Iterator[Path]:
    """The files named, and the document files under the folders named, as absolute paths (their ids)."""
    for path in paths:
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.is_file() and found.suffix.lower() in DOCUMENT_SUFFIXES:
                    yield found.resolve()
        elif path.exists():
            yield path.resolve()
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")


async def search(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        found = await client.search(
            args.query, user_id=args.user, collection=args.collection, top_k=args.top_k
        )
    if args.json:
        print(json.dumps(MessageToDict(found, preserving_proto_field_name=True)))
        return 0
    for n, passage in enumerate(found.passages, start=1):
        where = " - ".join(part for part in (passage.title, passage.heading) if part)
        print(f"[{n}] {passage.score:.3f}  {where}  ({passage.source})")
        print(f"    {passage.text[:300]}")
    took = found.timings.total_ms
    print(f"  ({len(found.passages)} passages in {took:.0f} ms, generation {found.generation})")
    return 0


async def documents(args: argparse.Namespace) -> int:
    """What the user's collection holds and how it is indexed."""
    collection = retrieval_pb2.Collection(user_id=args.user, name=args.collection)
    async with _client(args) as client:
        stats = await client.documents.Stats(retrieval_pb2.StatsRequest(collection=collection))
    if args.json:
        print(json.dumps(MessageToDict(stats, preserving_proto_field_name=True)))
        return 0
    print(f"{stats.documents} documents, {stats.passages} passages (generation {stats.generation})")
    if stats.generation:
        print(f"  dense: {stats.embedder}; {stats.dense_index}")
        print(f"  keyword: {stats.keyword_index}; rerank: {stats.reranker}")
        print(f"  on disk: {sum(stats.bytes.values()) / (1 << 20):.1f} MiB")
    return 0


def serve(args: argparse.Namespace) -> int:
    COMPONENTS[args.service].server().main()
    return 0


def up(args: argparse.Namespace) -> int:
    launcher = import_extra("voicemesh.rpc.launcher", "all")
    ports = {GATEWAY.name: args.port}
    if args.backend_ports is not None:
        ports.update(dict.fromkeys((c.name for c in BACKENDS), args.backend_ports))
    code: int = asyncio.run(launcher.up(args.host, ports))
    return code


def certs_init(args: argparse.Namespace) -> int:
    certs = import_extra("voicemesh.rpc.certs", "gateway")
    provision = import_extra("voicemesh.rpc.provision", "gateway")
    folder = args.dir or provision.LocalAuthority.default().certs
    for made in certs.init(folder, hosts=args.host or [], force=args.force):
        print(f"{made}: tls.crt, tls.key, ca.crt")
    print(f"CA: {folder / 'ca.crt'} (its key {folder / 'ca.key'} stays here)")
    return 0


def token_create(args: argparse.Namespace) -> int:
    provision = import_extra("voicemesh.rpc.provision", "gateway")
    authority = provision.LocalAuthority.default().ensure()
    scopes = args.scope or []
    if args.api_key:
        print(authority.add_api_key(args.tenant, args.user, scopes, note=args.note))
    else:
        print(authority.mint(args.user, tenant=args.tenant, scopes=scopes, ttl_s=args.ttl))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="voicemesh", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    p = commands.add_parser("up", help="start every service on loopback and wait until all are SERVING")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=GATEWAY.port, help="gateway port (0 picks a free one)")
    p.add_argument(
        "--backend-ports",
        type=int,
        default=None,
        metavar="0",
        help="give 0 to put the backends on free ports instead of their own ("
        + ", ".join(f"{c.name} {c.port}" for c in BACKENDS)
        + ")",
    )
    p.set_defaults(run=up)

    p = commands.add_parser("certs", help="make the mesh's TLS certificates")
    certs = p.add_subparsers(dest="certs_command", required=True)
    p = certs.add_parser("init", help="a local CA and a certificate per component (tls.crt, tls.key, ca.crt)")
    p.add_argument("--dir", type=Path, help="where (default ~/.config/voicemesh/certs, which `up` uses)")
    p.add_argument("--host", action="append", metavar="NAME|IP", help="another name on every certificate")
    p.add_argument("--force", action="store_true", help="a new CA too (every old certificate stops working)")
    p.set_defaults(run=certs_init)

    p = commands.add_parser("token", help="credentials for callers of the local mesh")
    tokens = p.add_subparsers(dest="token_command", required=True)
    p = tokens.add_parser("create", help="print a signed JWT (or, with --api-key, a new API key) for a user")
    p.add_argument("--user", required=True, help="the user it speaks for ('' with --api-key: no one user)")
    p.add_argument("--tenant", default="default", help="its tenant (default: default)")
    p.add_argument(
        "--scope", action="append", choices=["admin", "service"], help="act for the tenant's users"
    )
    p.add_argument("--ttl", type=float, default=24 * 3600, help="JWT lifetime in seconds (default a day)")
    p.add_argument("--api-key", action="store_true", help="an API key (kept hashed) instead of a JWT")
    p.add_argument("--note", default="", help="with --api-key: what it is for")
    p.set_defaults(run=token_create)

    p = commands.add_parser("serve", help="run one service in the foreground")
    p.add_argument("service", choices=sorted(COMPONENTS))
    p.set_defaults(run=serve)

    for name, help_text in (
        ("talk", "send a spoken question (an audio file) and hear the answer"),
        ("ask", "ask in text"),
    ):
        p = commands.add_parser(name, help=help_text)
        if name == "talk":
            p.add_argument("audio", type=Path, help="wav, mp3, m4a, ogg/opus or flac, any rate and channels")
            _hearing_options(p)
        else:
            p.add_argument("text")
        p.add_argument("--out", type=Path, help="write the spoken reply to this WAV file")
        p.add_argument("--voice", default="", help="TTS voice (default: the server's)")
        p.add_argument(
            "--sentences",
            type=_sentences,
            default=0,
            metavar="N",
            help=f"let the reply run to N sentences, 1-{limits.MAX_REPLY_SENTENCES} (default: the server's)",
        )
        p.add_argument("--json", action="store_true", help="print one JSON object per event")
        _target_options(p)
        p.add_argument("--session", default="", help="continue this conversation (its id is in turn_done)")
        p.add_argument(
            "--no-documents", action="store_true", help="do not ground the reply in your documents"
        )
        _collection_option(p)
        _user_option(p)
        p.set_defaults(run=talk if name == "talk" else ask)

    p = commands.add_parser(
        "listen", help="listen for the wake word on the microphone (or a WAV file) and converse"
    )
    p.add_argument(
        "--file", type=Path, help="play this audio file through the edge at real-time pace instead"
    )
    p.add_argument("--fast", action="store_true", help="with --file: do not wait for real time")
    p.add_argument(
        "--hotword",
        action="append",
        default=[],
        metavar="PHRASE",
        help="a word or phrase to expect (repeat it)",
    )
    p.add_argument(
        "--wake-word",
        action="append",
        metavar="NAME|PATH",
        help="bundled model name or custom .onnx (repeatable; give '' for none: any speech opens)",
    )
    p.add_argument("--threshold", type=float, help="wake word score that fires (0-1)")
    p.add_argument("--save-dir", type=Path, help="ask for spoken replies and write them here as WAV")
    p.add_argument("--quiet", action="store_true", help="with the microphone: do not play replies")
    p.add_argument("--voice", default="", help="TTS voice (default: the server's)")
    p.add_argument("--json", action="store_true", help="print one JSON object per event")
    _target_options(p)
    _user_option(p)
    p.set_defaults(run=listen)

    p = commands.add_parser("history", help="show or delete what the mesh keeps about a user")
    p.add_argument("action", choices=["show", "delete"])
    p.add_argument("user_id", metavar="USER")
    p.add_argument("--limit", type=int, default=20, help="with show: most recent turns to list (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _target_options(p)
    p.set_defaults(run=history)

    p = commands.add_parser("profile", help="set (KEY=VALUE) or remove fields of a user's profile")
    p.add_argument("user_id", metavar="USER")
    p.add_argument("fields", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--remove", action="append", metavar="KEY", help="remove this field (repeatable)")
    _target_options(p)
    p.set_defaults(run=profile)

    p = commands.add_parser("voice", help="a user's voice print: enroll, status, require, forget")
    voices = p.add_subparsers(dest="voice_command", required=True)
    p = voices.add_parser("enroll", help="make the user's voice print from WAV recordings of them speaking")
    p.add_argument("user_id", metavar="USER")
    p.add_argument(
        "wavs", nargs="+", type=Path, metavar="WAV", help="1-10 recordings; three of 3-5 s work well"
    )
    p.add_argument("--require-match", action="store_true", help="refuse spoken turns in another voice")
    p = voices.add_parser("status", help="whether the user has a voice print, and its settings")
    p.add_argument("user_id", metavar="USER")
    p = voices.add_parser("require", help="refuse (on) or allow (off) spoken turns in another voice")
    p.add_argument("user_id", metavar="USER")
    p.add_argument("state", choices=["on", "off"])
    p = voices.add_parser("forget", help="delete the user's voice print")
    p.add_argument("user_id", metavar="USER")
    for sub in voices.choices.values():
        sub.add_argument("--json", action="store_true", help="print JSON")
        _target_options(sub)
        sub.set_defaults(run=voice)

    p = commands.add_parser("ingest", help="add files or folders to your documents (the replies' grounding)")
    p.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="text, Markdown, HTML or PDF; folders too"
    )
    p.add_argument("--delete", action="store_true", help="remove these documents instead")
    _collection_option(p)
    _target_options(p)
    _user_option(p)
    p.set_defaults(run=ingest)

    p = commands.add_parser("search", help="the passages of your documents that best answer a question")
    p.add_argument("query")
    p.add_argument("--top-k", type=int, default=5, help="passages to show (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _collection_option(p)
    _target_options(p)
    _user_option(p)
    p.set_defaults(run=search)

    p = commands.add_parser("documents", help="what your documents' collection holds and how it is indexed")
    p.add_argument("--json", action="store_true", help="print JSON")
    _collection_option(p)
    _target_options(p)
    _user_option(p)
    p.set_defaults(run=documents)
    return root


def _hearing_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--hotword",
        action="append",
        default=[],
        metavar="PHRASE",
        help="a word or phrase to expect, spelled as it should come out (repeat it for more)",
    )
    p.add_argument(
        "--endpointing",
        choices=["semantic", "fixed"],
        default="",
        help="end each turn when it sounds finished (semantic) or after a fixed silence (default: the "
        "server's, semantic)",
    )


def _target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default=DEFAULT_TARGET, help=f"gateway address (default {DEFAULT_TARGET})")
    p.add_argument(
        "--token",
        default="",
        help="bearer token or API key (default $VOICEMESH_TOKEN, else the key `voicemesh up` saved)",
    )
    p.add_argument(
        "--ca",
        default="",
        help="CA certificate of the gateway's TLS (default $VOICEMESH_CA, else the local CA)",
    )
    p.add_argument("--insecure", action="store_true", help="plaintext, to a loopback address only")


def _client(args: argparse.Namespace) -> AsyncClient:
    return AsyncClient(args.target, token=args.token, ca=args.ca, insecure=args.insecure)


def _collection_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collection", default="", help="which of your collections (default: default)")


def _user_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--user",
        default=DEFAULT_USER,
        help="who is speaking: their profile and history give context, and turns are kept in their history "
        "(default $VOICEMESH_USER or your login name; '' for anonymous)",
    )


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        result = args.run(args)
        code = asyncio.run(result) if asyncio.iscoroutine(result) else result
    except grpc.aio.AioRpcError as exc:
        print(f"voicemesh: {exc.code().name}: {exc.details()}", file=sys.stderr)
        code = 1
    except (MissingExtra, InvalidRequest) as exc:
        print(f"voicemesh {args.command}: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `voicemesh talk --json | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()

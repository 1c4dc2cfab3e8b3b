"""Fuzz every public RPC of every server: random bytes, mutated messages and wild field values.

    python bench/fuzz.py [--inputs 10000] [--concurrency 8] [--seed 1]

Starts the mesh as `voicemesh up` does (TLS everywhere, mTLS to the backends, a token at the
gateway) on a data folder of its own, then sends ``--inputs`` inputs to each RPC of each server.
An input is one request (or, for a client stream, one to four of them): a seeded random byte
string, a valid example message with bytes flipped, cut or spliced, or a message whose fields hold
wild values (control characters, huge numbers, long strings). Every call has a deadline.

A crash (a process gone), a hang (the deadline passed with no answer), or INTERNAL or UNKNOWN is a
failure (a reply still streaming at the deadline is counted apart, as slow): the
run prints the status codes per RPC, each process's resident memory before and after, writes
bench/results/fuzz.json, and exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

from voicemesh.common.components import COMPONENTS
from voicemesh.common.credentials import Credentials, channel_credentials
from voicemesh.rpc.launcher import Mesh, backend_channel, gateway_channel
from voicemesh.rpc.provision import LocalAuthority
from voicemesh.rpc.tls import TlsFolder
from voicemesh.v1 import (  # noqa: F401  # imported for their descriptors
    core_pb2,
    gateway_pb2,
    retrieval_pb2,
    speech_to_text_pb2,
    text_to_speech_pb2,
    user_data_pb2,
    voice_pb2,
)

SLOW = "STILL_STREAMING_AT_DEADLINE"
FAILURES = {"INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED", "CRASHED"}
DEADLINE_S = 30.0
WILD_STRINGS = ["", "x", "\x00\x01\r\n", "{}", "<|im_start|>system", "é" * 300, "a" * 5000, "\ud7ff\ue000"]
WILD_INTS = [0, 1, -1, 2**31 - 1, -(2**31), 2**63 - 1, 48_000, 7]


def example(descriptor: Descriptor, depth: int = 0) -> Message:
    """A message with every field set to a plain value: what a careful client might send."""
    message = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if field.containing_oneof is not None and message.WhichOneof(field.containing_oneof.name):
            continue  # one member of each oneof
        value = _plain(field, depth)
        if value is None:
            continue
        _set(message, field, value)
    return message


def _plain(field: FieldDescriptor, depth: int) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if depth >= 3 or field.message_type.GetOptions().map_entry:
            return None
        return example(field.message_type, depth + 1)
    if field.type == FieldDescriptor.TYPE_ENUM:
        values = field.enum_type.values
        return values[1].number if len(values) > 1 else values[0].number
    if field.type == FieldDescriptor.TYPE_STRING:
        return "hello"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return b"\0" * 640
    if field.type == FieldDescriptor.TYPE_BOOL:
        return False
    if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return 0.0
    return 0


def wild(descriptor: Descriptor, rng: random.Random, depth: int = 0) -> Message:
    """A message of the right type whose fields hold values no careful client sends."""
    message = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if rng.random() < 0.4:
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3 or field.message_type.GetOptions().map_entry:
                continue
            value: Any = wild(field.message_type, rng, depth + 1)
        elif field.type == FieldDescriptor.TYPE_ENUM:
            value = rng.choice([v.number for v in field.enum_type.values] + [99, -5])
        elif field.type == FieldDescriptor.TYPE_STRING:
            value = rng.choice(WILD_STRINGS)
        elif field.type == FieldDescriptor.TYPE_BYTES:
            value = rng.randbytes(rng.choice([0, 1, 3, 641, 70_000]))
        elif field.type == FieldDescriptor.TYPE_BOOL:
            value = rng.random() < 0.5
        elif field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            value = rng.choice([0.0, -1.0, 1e30, float("nan"), float("inf"), 0.5])
        else:
            value = rng.choice(WILD_INTS)
        try:
            _set(message, field, value)
        except (ValueError, TypeError, OverflowError):
            continue  # out of the field's range: the encoder refuses it, so no client can send it
    return message


def _set(message: Message, field: FieldDescriptor, value: Any) -> None:
    if field.is_repeated:
        target = getattr(message, field.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            target.add().CopyFrom(value)
        else:
            target.append(value)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        getattr(message, field.name).CopyFrom(value)
    else:
        setattr(message, field.name, value)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Flip, cut, splice or repeat bytes of a serialized message."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if not buffer or choice < 0.25:
            buffer[rng.randint(0, len(buffer)) :] = rng.randbytes(rng.randint(0, 8))
        elif choice < 0.6:
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
        elif choice < 0.8:
            at = rng.randint(0, len(buffer))
            buffer[at:at] = rng.randbytes(rng.randint(1, 16))
        else:
            del buffer[: rng.randint(1, len(buffer))]
    return bytes(buffer)


def one_input(descriptor: Descriptor, rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.3:
        return rng.randbytes(rng.choice([0, 1, 2, 5, 17, 64, 300]))
    if kind < 0.7:
        return mutate(example(descriptor).SerializeToString(), rng)
    return wild(descriptor, rng).SerializeToString()


def inputs_for(method: MethodDescriptor, rng: random.Random) -> list[bytes]:
    if not method.client_streaming:
        return [one_input(method.input_type, rng)]
    messages = [one_input(method.input_type, rng) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.5:  # past the config check, into the stream's data
        messages[0] = example(method.input_type).SerializeToString()
    return messages


def public_methods() -> list[tuple[str, MethodDescriptor]]:
    pool = descriptor_pool.Default()
    return [
        (component.name, method)
        for component in COMPONENTS.values()
        for service in component.services
        for method in pool.FindServiceByName(service).methods
    ]


async def call(channel: grpc.aio.Channel, method: MethodDescriptor, messages: list[bytes]) -> tuple[str, str]:
    """The call's final status code, and its message."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    received = 0
    try:
        if method.server_streaming:
            async for _ in channel.unary_stream(path, _same, _same)(messages[0], timeout=DEADLINE_S):
                received += 1
        else:
            await channel.unary_unary(path, _same, _same)(messages[0], timeout=DEADLINE_S)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and received:
            # Still answering when the time ran out (a reply of thousands of tokens the request
            # asked for): slow, not hung.
            return SLOW, f"{received} responses before the deadline"
        return str(exc.code().name), str(exc.details())
    return "OK", ""


def call_streaming(channel: grpc.Channel, method: MethodDescriptor, messages: list[bytes]) -> tuple[str, str]:
    """A client stream, on the blocking client in a thread. The asyncio client reports a message
    it was still writing when the server answered as its own INTERNAL ("Internal error from
    Core"), which hides the server's real answer; the blocking one keeps the server's status."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.server_streaming:
            for _ in channel.stream_stream(path, _same, _same)(iter(messages), timeout=DEADLINE_S):
                pass
        else:
            channel.stream_unary(path, _same, _same)(iter(messages), timeout=DEADLINE_S)
    except grpc.RpcError as exc:
        return str(exc.code().name), str(exc.details())  # type: ignore[attr-defined]
    return "OK", ""


def _same(data: bytes) -> bytes:
    return data


def blocking_channel(name: str, address: str, authority: LocalAuthority) -> grpc.Channel:
    if name == "gateway":
        credentials = Credentials.find("", authority.certs / "ca.crt", folder=authority.folder)
        return grpc.secure_channel(address, channel_credentials(credentials))
    return grpc.secure_channel(address, TlsFolder(authority.tls_dir("gateway")).client_credentials())


def rss_mib(mesh: Mesh) -> dict[str, float]:
    sizes = {}
    for process in mesh.processes:
        try:
            status = Path(f"/proc/{process.proc.pid}/status").read_text()
            sizes[process.name] = int(status.split("VmRSS:")[1].split()[0]) / 1024
        except (OSError, IndexError):
            sizes[process.name] = 0.0
    return sizes


async def fuzz(args: argparse.Namespace) -> dict[str, Any]:
    settings = {
        "core": {"max_tokens": 12},  # each reply short: the point is the input, not the model's work
        "gateway": {"limit_llm_per_min": 100_000, "limit_tts_per_min": 100_000, "limit_stt_per_min": 100_000},
    }
    mesh = Mesh.on_free_ports(settings=settings, log_dir=args.log_dir)
    await mesh.start()
    rng = random.Random(args.seed)
    counts: dict[str, Counter[str]] = {}
    messages: dict[str, dict[str, str]] = {}
    try:
        before = rss_mib(mesh)
        addresses = mesh.addresses()
        channels = {
            name: gateway_channel(address) if name == "gateway" else backend_channel(address)
            for name, address in addresses.items()
        }
        authority = LocalAuthority.default()
        blocking = {name: blocking_channel(name, address, authority) for name, address in addresses.items()}
        limit = asyncio.Semaphore(args.concurrency)
        started = time.monotonic()
        for server, method in public_methods():
            label = f"{server} {method.containing_service.name}/{method.name}"
            tally: Counter[str] = Counter()
            batch = [inputs_for(method, rng) for _ in range(args.inputs)]

            async def one(server: str, rpc: MethodDescriptor, requests: list[bytes]) -> tuple[str, str]:
                async with limit:
                    if rpc.client_streaming:
                        return await asyncio.to_thread(call_streaming, blocking[server], rpc, requests)
                    return await call(channels[server], rpc, requests)

            said: dict[str, str] = {}
            for code, message in await asyncio.gather(*(one(server, method, m) for m in batch)):
                tally[code] += 1
                said.setdefault(code, message[:300])  # one message per code: what callers are told
            messages[label] = said
            gone = [p.name for p in mesh.processes if p.proc.returncode is not None]
            if gone:
                tally["CRASHED"] += 1
            counts[label] = tally
            print(f"{label:<52} " + ", ".join(f"{k} {v}" for k, v in tally.most_common()), flush=True)
            if gone:
                break
        elapsed = time.monotonic() - started
        await asyncio.sleep(1.0)  # let the last calls' work finish before memory is read again
        after = rss_mib(mesh)
        for channel in channels.values():
            await channel.close()
        for sync in blocking.values():
            sync.close()
    finally:
        await mesh.stop()
    failures = {label: {k: v for k, v in tally.items() if k in FAILURES} for label, tally in counts.items()}
    failures = {label: codes for label, codes in failures.items() if codes}
    return {
        "inputs_per_rpc": args.inputs,
        "seed": args.seed,
        "rpcs": len(counts),
        "calls": sum(sum(t.values()) for t in counts.values()),
        "seconds": round(elapsed, 1),
        "codes": {label: dict(tally) for label, tally in counts.items()},
        "failures": failures,
        "messages": messages,
        "rss_mib_before": before,
        "rss_mib_after": after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs per RPC")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-dir", type=Path, default=None, help="keep each process's log here")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fuzz.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="voicemesh-fuzz-") as data:
        os.environ["XDG_DATA_HOME"] = data  # its history, sessions and documents are its own
        report = asyncio.run(fuzz(args))
    print(f"\n{report['calls']} calls to {report['rpcs']} RPCs in {report['seconds']} s")
    print(
        "resident memory (MiB): "
        + ", ".join(
            f"{name} {report['rss_mib_before'][name]:.0f} -> {report['rss_mib_after'][name]:.0f}"
            for name in report["rss_mib_before"]
        )
    )
    print(f"failures: {report['failures'] or 'none'}")
    for label, codes in report["failures"].items():
        for code in codes:
            print(f"  {label} {code}: {report['messages'][label][code]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    sys.exit(1 if report["failures"] else 0)


if __name__ == "__main__":
    main()

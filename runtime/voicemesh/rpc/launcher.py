"""``voicemesh up``: every service as its own process on loopback, ready when all are SERVING.

Backends start first on their ports (0 picks free ones); each prints its address on stdout once it
listens, and the gateway is started pointing at those addresses. Secure by default: every process
serves TLS from the local CA's certificates, the backends take only mesh certificates (mTLS), and
the gateway takes only callers with a token or key (voicemesh.rpc.provision makes them once).
Ctrl-C or SIGTERM stops them all with SIGTERM, so each drains: the gateway first, then the
backends once it has exited; whatever is still alive after the grace period is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voicemesh.common.components import BACKENDS, COMPONENTS, GATEWAY, Component
from voicemesh.common.credentials import Credentials, open_channel
from voicemesh.rpc.host import METRICS_PREFIX, READY_PREFIX
from voicemesh.rpc.provision import LocalAuthority
from voicemesh.rpc.tls import TlsFolder, mesh_channel

log = logging.getLogger(__name__)

# How long `voicemesh up` gives each process to stop on SIGTERM before it kills it: more than any
# component's default shutdown_s() (tests/test_k8s.py checks), so none loses queued work.
STOP_GRACE_S = 12.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now, for a process about to be started on it."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class StartupError(RuntimeError):
    """A service failed to start; the message says which and why."""


@dataclass
class Process:
    name: str
    proc: asyncio.subprocess.Process
    address: str = ""
    metrics: str = ""  # host:port of /metrics, if the process serves it
    log: Path | None = None  # where its stderr goes, if not to ours
    component: Component | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)  # what it was started with
    _drain: asyncio.Task[None] | None = field(default=None, repr=False)


async def start_service(
    component: Component, env: dict[str, str], timeout_s: float, *, name: str = "", log: Path | None = None
) -> Process:
    """Start ``component`` (as process ``name``, default its own); returns once it listens.

    With ``log``, the process's stderr (its log) is appended to that file instead of ours.
    """
    name = name or component.name
    with contextlib.ExitStack() as files:
        stderr = files.enter_context(log.open("ab")) if log is not None else None
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            component.package,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
    process = Process(name, proc, log=log, component=component, env=env)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(timeout_s):
            while line := (await proc.stdout.readline()).decode():
                if line.startswith(METRICS_PREFIX):
                    process.metrics = line.split()[1]
                elif line.startswith(READY_PREFIX):
                    process.address = line.split()[1]
                    break
    except TimeoutError:
        raise StartupError(f"{name} did not start listening within {timeout_s:.0f}s") from None
    if not process.address:
        raise StartupError(
            f"{name} exited with code {await proc.wait()} before listening (see its log above)"
        )

    async def drain() -> None:  # keep the pipe from filling; services log to stderr anyway
        assert proc.stdout is not None
        while await proc.stdout.readline():
            pass

    process._drain = asyncio.create_task(drain())
    return process


def security_env(name: str, authority: LocalAuthority) -> dict[str, str]:
    """The settings that make one component secure: its TLS folder, and the gateway's keys."""
    prefix = COMPONENTS[name].env_prefix
    env = {f"{prefix}TLS_DIR": str(authority.tls_dir(name))}
    if name == GATEWAY.name:
        env[f"{prefix}JWKS_FILE"] = str(authority.jwks)
        env[f"{prefix}API_KEYS_FILE"] = str(authority.api_keys)
    return env


def service_env(name: str, **settings: object) -> dict[str, str]:
    """This process's environment plus settings for one service (``max_tokens=8`` →
    VOICEMESH_CORE_MAX_TOKENS=8), on free ports unless the settings name one, secured with the
    local authority's certificates and keys as ``voicemesh up`` secures it."""
    prefix = COMPONENTS[name].env_prefix
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        f"{prefix}PORT": "0",
        f"{prefix}METRICS_PORT": "0",
        **security_env(name, LocalAuthority.default().ensure()),
        **{f"{prefix}{key.upper()}": str(value) for key, value in settings.items()},
    }


def gateway_channel(
    address: str,
    *,
    token: str = "",
    authority: LocalAuthority | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """A caller's channel to a gateway of this machine's mesh: TLS from the local CA, and ``token``
    (by default the local admin key)."""
    authority = authority or LocalAuthority.default()
    credentials = Credentials.find(token, authority.certs / "ca.crt", folder=authority.folder)
    return open_channel(address, credentials, options=options)


def mesh_server_credentials(
    component: str, authority: LocalAuthority | None = None
) -> grpc.ServerCredentials:
    """What a stand-in for ``component`` (a test's fake backend) listens with: its certificate,
    mesh clients only, as the real one does."""
    folder = TlsFolder((authority or LocalAuthority.default()).tls_dir(component))
    return folder.server_credentials(require_client_cert=True)


def backend_channel(
    address: str, *, authority: LocalAuthority | None = None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """A channel to a backend as the gateway opens it: mTLS with the gateway's certificate."""
    authority = authority or LocalAuthority.default()
    return mesh_channel(address, str(authority.tls_dir(GATEWAY.name)), list(options))


async def stop_processes(processes: list[Process], grace_s: float = 15.0) -> None:
    """SIGTERM them all at once; kill whatever has not exited after ``grace_s``."""
    for process in processes:
        if process.proc.returncode is None:
            process.proc.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            await asyncio.wait_for(process.proc.wait(), grace_s)
        except TimeoutError:
            log.warning("%s did not stop within %.0fs; killing it", process.name, grace_s)
            process.proc.kill()
            await process.proc.wait()
        if process._drain:
            process._drain.cancel()


async def wait_serving(address: str, timeout_s: float, tls_dir: Path | None = None) -> None:
    """Until the process at ``address`` reports SERVING, over mTLS with the certificate in
    ``tls_dir`` (by default the local gateway's: health sits behind the same TLS as the rest)."""
    folder = tls_dir or LocalAuthority.default().tls_dir(GATEWAY.name)
    async with mesh_channel(address, str(folder), []) as channel:
        await _serving(channel, timeout_s)


async def _serving(channel: grpc.aio.Channel, timeout_s: float) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    async with asyncio.timeout(timeout_s):
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)


class Mesh:
    """The running processes.

    ``settings`` gives components settings of their own (``{"gateway": {"max_core_calls": 1}}``),
    over this process's environment; with ``log_dir``, each process logs to ``<log_dir>/<name>.log``.
    ``authority`` holds the certificates and keys (the config folder's by default); ``secure=False``
    runs plaintext with no authentication, for a bench that measures what TLS costs.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        ports: dict[str, int] | None = None,
        settings: dict[str, dict[str, object]] | None = None,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        authority: LocalAuthority | None = None,
        secure: bool = True,
    ) -> None:
        self.host = host
        self.authority = (authority or LocalAuthority.default()).ensure() if secure else None
        self.ports = {**{c.name: c.port for c in COMPONENTS.values()}, **(ports or {})}
        self.settings = settings or {}
        self.env = env or {}  # for every process, over this one's environment (OTEL_*, say)
        self.log_dir = log_dir
        self.processes: list[Process] = []

    @classmethod
    def on_free_ports(cls, host: str = "127.0.0.1", **options: Any) -> Mesh:
        """Every component on a port nothing uses (several meshes at once, tests and benches)."""
        return cls(host=host, ports=dict.fromkeys(COMPONENTS, 0), **options)

    @property
    def gateway(self) -> str:
        return next(p.address for p in self.processes if p.name == "gateway")

    def _env(self, name: str) -> dict[str, str]:
        """The environment of one component's process: where it listens, and its own settings."""
        prefix = COMPONENTS[name].env_prefix
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env.update({f"{prefix}HOST": self.host, f"{prefix}PORT": str(self.ports[name])})
        if self.authority is not None:
            env.update(security_env(name, self.authority))
        if self.ports[name] == 0:  # a free gRPC port means a free metrics port too (several meshes at once)
            env[f"{prefix}METRICS_PORT"] = "0"
        env.update(
            {f"{prefix}{key.upper()}": str(value) for key, value in self.settings.get(name, {}).items()}
        )
        return env

    async def _wait_serving(self, address: str, timeout_s: float) -> None:
        """The launcher checks health as the gateway would: with its certificate, if secure."""
        if self.authority is None:
            async with grpc.aio.insecure_channel(address) as channel:
                await _serving(channel, timeout_s)
        else:
            await wait_serving(address, timeout_s, self.authority.tls_dir(GATEWAY.name))

    def _log(self, name: str) -> Path | None:
        return None if self.log_dir is None else self.log_dir / f"{name}.log"

    def addresses(self) -> dict[str, str]:
        return {p.name: p.address for p in self.processes}

    async def start(self, timeout_s: float = 180.0) -> None:
        try:
            starts = [start_service(c, self._env(c.name), timeout_s, log=self._log(c.name)) for c in BACKENDS]
            for started in asyncio.as_completed(starts):
                self.processes.append(await started)
            targets = {f"{GATEWAY.env_prefix}{p.name.upper()}_TARGET": p.address for p in self.processes}
            gateway_env = {**self._env(GATEWAY.name), **targets}
            gateway = await start_service(GATEWAY, gateway_env, timeout_s, log=self._log(GATEWAY.name))
            self.processes.append(gateway)
            for process in self.processes:
                await self._wait_serving(process.address, timeout_s)
        except BaseException:
            await self.stop()
            raise

    async def restart(self, name: str, *, kill: bool = True, timeout_s: float = 180.0) -> Process:
        """Stop one process (SIGKILL, or SIGTERM with ``kill=False``) and start it again on the same
        address, with the same settings; returns once it is SERVING."""
        index, old = next((i, p) for i, p in enumerate(self.processes) if p.name == name)
        if kill:
            old.proc.kill()
            await old.proc.wait()
        else:
            await stop_processes([old])
        if old._drain:
            old._drain.cancel()
        assert old.component is not None
        env = {**old.env, f"{old.component.env_prefix}PORT": old.address.rpartition(":")[2]}
        new = await start_service(old.component, env, timeout_s, name=name, log=old.log)
        self.processes[index] = new
        await self._wait_serving(new.address, timeout_s)
        return new

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """The gateway drains first, so its turns in flight still reach the backends; then they stop."""
        gateway = [p for p in self.processes if p.name == "gateway"]
        backends = [p for p in self.processes if p.name != "gateway"]
        for group in (gateway, backends):
            await stop_processes(group, grace_s)
        self.processes.clear()

    async def wait_for_exit(self) -> Process:
        """Return the first process that exits (a crash while the mesh is up)."""
        waits = {asyncio.create_task(p.proc.wait()): p for p in self.processes}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return waits[done.pop()]


async def up(host: str, ports: dict[str, int]) -> int:
    mesh = Mesh(host=host, ports=ports)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    names = ", ".join(c.name for c in (*BACKENDS, GATEWAY))
    print(f"voicemesh: starting {names} …", flush=True)
    starting = asyncio.create_task(mesh.start())
    await asyncio.wait([starting, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        return 130
    try:
        starting.result()
    except (StartupError, TimeoutError) as exc:
        print(f"voicemesh: {exc or 'services did not report SERVING in time'}", file=sys.stderr, flush=True)
        return 1
    for process in mesh.processes:
        metrics = f"  metrics {process.metrics}" if process.metrics else ""
        print(f"  {process.name:<8} {process.address}  SERVING{metrics}", flush=True)
    print(f"voicemesh is up: gateway listening on {mesh.gateway} (Ctrl-C stops everything)", flush=True)
    if mesh.authority is not None:
        print(
            f"  TLS from {mesh.authority.certs}; the admin key the CLI and SDK use is in "
            f"{mesh.authority.credentials}",
            flush=True,
        )
    crashed = asyncio.create_task(mesh.wait_for_exit())
    await asyncio.wait([crashed, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if crashed.done():
        process = crashed.result()
        print(
            f"voicemesh: {process.name} exited with code {process.proc.returncode}; stopping", file=sys.stderr
        )
        code = 1
    else:
        crashed.cancel()
    print("voicemesh: stopping …", flush=True)
    await mesh.stop()
    print("voicemesh: stopped", flush=True)
    return code

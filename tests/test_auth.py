"""Only the right people in: TLS on every hop, mTLS to the backends, a credential on every public
call, and each caller confined to its own user's data. All through the mesh `voicemesh up` starts."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voicemesh.common.credentials import Credentials, open_channel
from voicemesh.rpc.host import ServiceHost
from voicemesh.rpc.launcher import gateway_channel
from voicemesh.rpc.provision import ALGORITHM, LocalAuthority
from voicemesh.v1 import gateway_pb2, gateway_pb2_grpc, user_data_pb2, user_data_pb2_grpc


async def ask(address: str, token: str, text: str = "Say hi.", user_id: str = "") -> gateway_pb2.TurnDone:
    async with open_channel(
        address, Credentials(token, LocalAuthority.default().certs / "ca.crt")
    ) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        done = None
        async for event in stub.Ask(gateway_pb2.AskRequest(text=text, user_id=user_id), timeout=120):
            if event.WhichOneof("event") == "turn_done":
                done = event.turn_done
        assert done is not None
        return done


async def refusal(address: str, token: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ask(address, token)
    return caught.value


def foreign_token(**claims: object) -> str:
    """Signed by a key the gateway has never seen, under the local key's id."""
    authority = LocalAuthority.default()
    kid = json.loads(authority.jwks.read_text())["keys"][0]["kid"]
    now = int(time.time())
    body = {"iss": "voicemesh-local", "aud": "voicemesh", "sub": "mallory", "exp": now + 60, **claims}
    return jwt.encode(
        body, ec.generate_private_key(ec.SECP256R1()), algorithm=ALGORITHM, headers={"kid": kid}
    )


async def test_each_bad_credential_is_refused_with_its_own_reason_then_a_good_one_is_served(mesh) -> None:  # type: ignore[no-untyped-def]
    authority = LocalAuthority.default()
    cases = {
        "": "needs a credential: send metadata 'authorization: Bearer <token>'; `voicemesh token create",
        authority.mint("ada", audience="someone-else"): "audience is not 'voicemesh'",
        authority.mint("ada", ttl_s=-120): "has expired",
        authority.mint("ada", issuer="https://evil.example"): "issuer is not 'voicemesh-local'",
        foreign_token(): "signature does not verify",
        "vmk_0123456789ab_notarealsecret": "API key is not one the gateway knows",
        "hello": "neither a JWT nor a voicemesh API key",
    }
    for token, reason in cases.items():
        refused = await refusal(mesh.gateway, token)
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, (token, refused.details())
        assert reason in refused.details(), (token, refused.details())
    done = await ask(mesh.gateway, authority.mint("ada"))
    assert done.reply_text


async def test_a_token_for_ada_cannot_read_or_change_bobs_data_and_bobs_data_is_untouched(mesh) -> None:  # type: ignore[no-untyped-def]
    authority = LocalAuthority.default()
    ada, bob = f"ada-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    bob_token, ada_token = authority.mint(bob), authority.mint(ada)
    said = await ask(mesh.gateway, bob_token, "My favourite colour is teal.")  # his own user, filled in
    ca_path = LocalAuthority.default().certs / "ca.crt"

    async def bobs_turns(token: str) -> list[str]:
        async with open_channel(mesh.gateway, Credentials(token, ca_path)) as channel:
            users = user_data_pb2_grpc.UserDataServiceStub(channel)
            for _ in range(50):  # the turn's record is written behind the reply
                data = await users.GetUserData(user_data_pb2.GetUserDataRequest(user_id=bob), timeout=30)
                if data.turns:
                    return [t.transcript for t in data.turns]
                await asyncio.sleep(0.1)
            return []

    assert await bobs_turns(bob_token) == [said.transcript]
    async with open_channel(mesh.gateway, Credentials(ada_token, ca_path)) as channel:
        users = user_data_pb2_grpc.UserDataServiceStub(channel)
        for call in (
            users.GetUserData(user_data_pb2.GetUserDataRequest(user_id=bob)),
            users.DeleteUserData(user_data_pb2.DeleteUserDataRequest(user_id=bob)),
            users.UpdateProfile(user_data_pb2.UpdateProfileRequest(user_id=bob, set={"name": "Mallory"})),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert (
                f"this credential is for user {ada!r}; it may not act for user_id {bob!r}"
                in caught.value.details()
            )
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Ask(gateway_pb2.AskRequest(text="What is my favourite colour?", user_id=bob)):
                pass
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await bobs_turns(bob_token) == [said.transcript]  # untouched
    # The admin key `voicemesh up` saved acts for any user of its tenant.
    assert await bobs_turns(Credentials.find().token) == [said.transcript]


async def test_a_client_without_a_mesh_certificate_cannot_reach_the_stt_service(mesh) -> None:  # type: ignore[no-untyped-def]
    authority = LocalAuthority.default()
    stt = mesh.addresses["stt"]
    attempts = {
        "plaintext": grpc.aio.insecure_channel(stt),
        "TLS without a certificate": grpc.aio.secure_channel(
            stt, grpc.ssl_channel_credentials(root_certificates=(authority.certs / "ca.crt").read_bytes())
        ),
    }
    for what, channel in attempts.items():
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, what
    gateway = authority.tls_dir("gateway")
    mesh_credentials = grpc.ssl_channel_credentials(
        root_certificates=(authority.certs / "ca.crt").read_bytes(),
        private_key=(gateway / "tls.key").read_bytes(),
        certificate_chain=(gateway / "tls.crt").read_bytes(),
    )
    async with grpc.aio.secure_channel(stt, mesh_credentials) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_gateway_speaks_only_tls_and_health_needs_no_token(mesh) -> None:  # type: ignore[no-untyped-def]
    async with grpc.aio.insecure_channel(mesh.gateway) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    async with open_channel(
        mesh.gateway, Credentials("", LocalAuthority.default().certs / "ca.crt")
    ) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicemesh.client.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_up_left_a_private_admin_credential_and_the_cli_mints_tokens_that_work(mesh) -> None:  # type: ignore[no-untyped-def]
    authority = LocalAuthority.default()
    for secret in (
        authority.credentials,
        authority.signing_key,
        authority.api_keys,
        authority.certs / "ca.key",
    ):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    user = f"ada-{uuid.uuid4().hex[:6]}"
    minted = cli("token", "create", "--user", user)
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == user
    shown = cli("history", "show", user, "--target", mesh.gateway, "--token", token)
    assert shown.returncode == 0, shown.stderr
    other = cli("history", "show", "bob", "--target", mesh.gateway, "--token", token)
    assert other.returncode == 1
    assert other.stderr.startswith("voicemesh: PERMISSION_DENIED: this credential is for user")
    # The saved admin key, found with nothing on the command line.
    answered = cli("ask", "Say hi.", "--target", mesh.gateway, "--user", user, "--json")
    assert answered.returncode == 0, answered.stderr
    # A key made with --api-key works at once: the gateway reads its keys file again when it changes.
    key = cli("token", "create", "--user", user, "--api-key").stdout.strip()
    assert key.startswith("vmk_") and key not in authority.api_keys.read_text()
    with_key = cli("history", "show", user, "--target", mesh.gateway, VOICEMESH_TOKEN=key)
    assert with_key.returncode == 0, with_key.stderr


def test_plaintext_is_refused_to_anything_but_loopback() -> None:
    result = cli("ask", "hi", "--target", "10.1.2.3:50051", "--insecure")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "voicemesh ask: --insecure sends the token in the clear; it is allowed only to a loopback address, "
        "not 10.1.2.3:50051"
    ]


async def test_reflection_can_be_turned_off() -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    for on in (True, False):
        host = ServiceHost(lambda server: [], reflection_on=on)
        await host.start()
        try:
            async with grpc.aio.insecure_channel(host.address) as channel:
                stub = reflection_pb2_grpc.ServerReflectionStub(channel)
                request = reflection_pb2.ServerReflectionRequest(list_services="")
                if on:
                    replies = [r async for r in stub.ServerReflectionInfo(iter([request]), timeout=5)]
                    assert replies[0].list_services_response.service
                else:
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        _ = [r async for r in stub.ServerReflectionInfo(iter([request]), timeout=5)]
                    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        finally:
            await host.stop(0)


async def test_the_launchers_channel_helper_carries_the_admin_key(mesh) -> None:  # type: ignore[no-untyped-def]
    async with gateway_channel(mesh.gateway) as channel:
        stub = user_data_pb2_grpc.UserDataServiceStub(channel)
        data = await stub.GetUserData(user_data_pb2.GetUserDataRequest(user_id="nobody-yet"), timeout=30)
        assert not data.turns


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


@pytest.mark.timeout(300)
async def test_ten_thousand_made_up_identities_leave_the_gateways_memory_bounded(tmp_path: Path) -> None:
    """Each a distinct tenant and user with a valid token (the worst a key-holder can do): the
    limiter keeps one entry per tenant for a window, nothing else grows per caller."""
    from voicemesh.common.components import GATEWAY
    from voicemesh.rpc.launcher import service_env, start_service, stop_processes, wait_serving

    dead = "127.0.0.1:1"  # no backend: each Ask is admitted, counted, and refused at the core's breaker
    gateway = await start_service(
        GATEWAY,
        # Its 10,000 unrecorded turns spill into a folder of its own, not the next gateway's.
        service_env(
            "gateway", stt_target=dead, core_target=dead, tts_target=dead, rag_target=dead, spill_dir=tmp_path
        ),
        120,
    )
    authority = LocalAuthority.default()
    try:
        await wait_serving(gateway.address, 60)
        async with open_channel(gateway.address, Credentials("", authority.certs / "ca.crt")) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            limit = asyncio.Semaphore(32)
            codes: dict[str, int] = {}

            async def one(i: int) -> None:
                token = authority.mint(f"user-{i}", tenant=f"tenant-{i}")
                async with limit:
                    try:
                        async for _ in stub.Ask(
                            gateway_pb2.AskRequest(text="Hi."),
                            metadata=(("authorization", f"Bearer {token}"),),
                            timeout=30,
                        ):
                            pass
                        code = "OK"
                    except grpc.aio.AioRpcError as exc:
                        code = exc.code().name
                codes[code] = codes.get(code, 0) + 1

            await asyncio.gather(*(one(i) for i in range(500)))  # warm: one-off allocations
            before = rss_mib(gateway.proc.pid)
            await asyncio.gather(*(one(i) for i in range(500, 10_500)))
            after = rss_mib(gateway.proc.pid)
        print(f"gateway resident memory {before:.1f} -> {after:.1f} MiB over 10,000 identities")
        assert set(codes) == {"UNAVAILABLE"}, codes  # every one authenticated, admitted, refused downstream
        # Measured: 86 -> 118 MiB, most of it the (bounded) queue of turn records the dead core never
        # took, the rest one limiter entry per tenant until its window passes.
        assert after - before < 48, (before, after)
    finally:
        await stop_processes([gateway])


async def test_two_tenants_users_of_one_name_are_two_people(mesh) -> None:  # type: ignore[no-untyped-def]
    """History, profile, sessions, voice print and cached replies are kept per tenant and user."""
    authority = LocalAuthority.default()
    name = f"ada-{uuid.uuid4().hex[:6]}"
    ca_path = authority.certs / "ca.crt"
    home, acme = authority.mint(name), authority.mint(name, tenant="acme")
    said = await ask(mesh.gateway, acme, "Hello from acme.", user_id=name)

    async def data(token: str) -> user_data_pb2.GetUserDataResponse:
        async with open_channel(mesh.gateway, Credentials(token, ca_path)) as channel:
            users = user_data_pb2_grpc.UserDataServiceStub(channel)
            if token == acme:
                await users.UpdateProfile(
                    user_data_pb2.UpdateProfileRequest(user_id=name, set={"city": "Oslo"})
                )
            for _ in range(50):  # the turn's record is written behind the reply
                found = await users.GetUserData(user_data_pb2.GetUserDataRequest(user_id=name), timeout=30)
                if found.turns or token != acme:
                    return found
                await asyncio.sleep(0.1)
            return found

    theirs, ours = await data(acme), await data(home)
    assert [t.transcript for t in theirs.turns] == [said.transcript] and theirs.profile == {"city": "Oslo"}
    assert not ours.turns and not ours.profile  # the default tenant's user of that name is someone else


def test_a_rotated_signing_key_and_a_removed_api_key_take_effect_without_a_restart(tmp_path: Path) -> None:
    from jwt.algorithms import ECAlgorithm

    from voicemesh.common.errors import Unauthenticated
    from voicemesh.gateway.auth import Authenticator

    authority = LocalAuthority(tmp_path).ensure()
    gateway = Authenticator(
        jwks_file=str(authority.jwks),
        api_keys_file=str(authority.api_keys),
        issuer="voicemesh-local",
        audience="voicemesh",
        leeway_s=0,
    )

    def who(token: str) -> str:
        return gateway.identify([("authorization", f"Bearer {token}")]).user

    old, key = authority.mint("ada"), authority.add_api_key("default", "bob", [])
    assert who(old) == "ada" and who(key) == "bob"

    # Rotation: the new signer's public key joins the JWKS; tokens it signs work at once.
    signer = ec.generate_private_key(ec.SECP256R1())
    public = {**json.loads(ECAlgorithm.to_jwk(signer.public_key())), "kid": "next", "alg": ALGORITHM}
    jwks = json.loads(authority.jwks.read_text())
    authority.jwks.write_text(json.dumps({"keys": [*jwks["keys"], public]}))
    claims = {"iss": "voicemesh-local", "aud": "voicemesh", "sub": "cy", "exp": int(time.time()) + 60}
    assert who(jwt.encode(claims, signer, algorithm=ALGORITHM, headers={"kid": "next"})) == "cy"
    assert who(old) == "ada"  # both keys hold during the switch

    # The old key leaves the JWKS: every token it signed is refused, and the removed API key too.
    authority.jwks.write_text(json.dumps({"keys": [public]}))
    authority.api_keys.write_text(json.dumps({"keys": []}))
    for token, reason in ((old, "which the gateway's JWKS does not hold"), (key, "revoked")):
        with pytest.raises(Unauthenticated, match=reason):
            who(token)

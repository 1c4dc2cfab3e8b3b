"""``voicemesh certs init``: a local CA and a certificate per component, with ``cryptography``.

Each component's folder (``<dir>/<name>/tls.crt, tls.key, ca.crt``) is what cert-manager puts in a
Secret, so the settings read the same files on a laptop and in a cluster. Every certificate is good
for both ends of a connection (serverAuth and clientAuth): the gateway shows its own to the
backends. Names cover loopback and the in-cluster Service names of the k8s overlays.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from voicemesh.common.components import COMPONENTS
from voicemesh.rpc.tls import CA, CERT, KEY

DAYS = 825  # the longest lifetime clients accept for a server certificate
NAMESPACES = ("voicemesh", "voicemesh-dev", "voicemesh-prod")
CA_KEY = "ca.key"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "voicemesh"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def write_file(path: Path, data: bytes, *, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if secret:  # created 0600, never readable by others even for an instant
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(path, 0o600)
    else:
        path.write_bytes(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def dns_names(component: str, extra: Iterable[str] = ()) -> list[str]:
    """Loopback, and the k8s Service's name (voicemesh-<component>) bare and in the overlays'
    namespaces: the names the gateway's dns:/// targets use."""
    service = f"voicemesh-{component}"
    names = ["localhost", service]
    for namespace in NAMESPACES:
        names += [
            f"{service}.{namespace}",
            f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.cluster.local",
        ]
    return [*names, *extra]


def init(folder: Path, *, hosts: Iterable[str] = (), force: bool = False) -> list[Path]:
    """Create the CA (unless there is one, or ``force``) and every component's certificate; returns
    the component folders. ``hosts`` adds names or addresses to every certificate."""
    hosts = list(hosts)
    now = datetime.datetime.now(datetime.UTC)
    ca_cert_path, ca_key_path = folder / CA, folder / CA_KEY
    if force or not (ca_cert_path.exists() and ca_key_path.exists()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("voicemesh local CA"))
            .issuer_name(_name("voicemesh local CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(ca_key, hashes.SHA256())
        )
        write_file(ca_key_path, _key_pem(ca_key), secret=True)
        write_file(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM))
    ca_pem = ca_cert_path.read_bytes()
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    folders = []
    for component in COMPONENTS:
        key = ec.generate_private_key(ec.SECP256R1())
        addresses = [h for h in hosts if _is_ip(h)]
        names: list[x509.GeneralName] = [
            x509.DNSName(n) for n in dns_names(component, [h for h in hosts if not _is_ip(h)])
        ]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1", *addresses)]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(component))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(loaded, hashes.SHA256())
        )
        target = folder / component
        write_file(target / KEY, _key_pem(key), secret=True)
        write_file(target / CERT, cert.public_bytes(serialization.Encoding.PEM))
        write_file(target / CA, ca_pem)
        folders.append(target)
    return folders


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

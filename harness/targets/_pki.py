"""The PKI of a local Kubernetes control plane, made with ``cryptography``.

One CA signs: the kube-apiserver serving certificate (127.0.0.1, localhost and the in-cluster
names), and one client certificate per identity. The admin identity is in ``system:masters``
(it bypasses RBAC and API priority and fairness: right for the harness's own calls, wrong for
testing a platform's RBAC, which must use the platform's ServiceAccount). The controller-manager
and the scheduler get the users their bootstrap ClusterRoles are bound to; the front-proxy client
is the apiserver's own identity towards aggregated API servers. A separate key pair
signs ServiceAccount tokens. Keys are ECDSA P-256 (fast to make, accepted by every component)
and written with mode 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=30)
SERVING_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
SERVING_IPS = ("127.0.0.1", "10.96.0.1")  # loopback and the `kubernetes` Service's cluster IP


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate's user (CN) and groups (O)."""

    user: str
    groups: tuple[str, ...] = ()


ADMIN = ClientIdentity("kubernetes-admin", ("system:masters",))
CONTROLLER_MANAGER = ClientIdentity("system:kube-controller-manager")
SCHEDULER = ClientIdentity("system:kube-scheduler")
# The apiserver's identity towards aggregated API servers (the requestheader front proxy).
FRONT_PROXY = ClientIdentity("front-proxy-client")


@dataclass(frozen=True)
class ClusterPki:
    """Every file the control plane's processes and clients need."""

    ca: KeyPair
    serving: KeyPair
    clients: dict[str, KeyPair]  # keyed by ClientIdentity.user
    sa_private_key: Path
    sa_public_key: Path


def write_pki(directory: Path, identities: tuple[ClientIdentity, ...]) -> ClusterPki:
    """Create a CA, a serving certificate, the client certificates and the SA key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gsharness-kube-ca")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca = _write(directory, "ca", ca_cert, ca_key)
    serving = _write_leaf(
        directory,
        "apiserver",
        subject=_name("kube-apiserver"),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        ca=(ca_cert, ca_key),
        san=[x509.DNSName(n) for n in SERVING_NAMES]
        + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS],
    )
    clients = {
        ident.user: _write_leaf(
            directory,
            ident.user.replace(":", "-"),
            subject=_name(ident.user, ident.groups),
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            ca=(ca_cert, ca_key),
        )
        for ident in identities
    }
    sa_key = ec.generate_private_key(ec.SECP256R1())
    sa_private = _write_private(directory / "sa.key", sa_key)
    sa_public = directory / "sa.pub"
    sa_public.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return ClusterPki(ca, serving, clients, sa_private, sa_public)


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_leaf(
    directory: Path,
    stem: str,
    *,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    san: list[x509.GeneralName] | None = None,
) -> KeyPair:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return _write(directory, stem, builder.sign(ca_key, hashes.SHA256()), key)


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> KeyPair:
    cert_path = directory / f"{stem}.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return KeyPair(cert_path, _write_private(directory / f"{stem}.key", key))


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return path

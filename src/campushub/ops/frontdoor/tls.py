"""The front door's certificate: a local CA made once, a file the site gives (which must cover every name), or
ACME through mod_md; and the Apache lines for each."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ...sitefile.errors import SiteError
from ...sitefile.sections import FrontDoorSettings
from .. import state

if TYPE_CHECKING:
    pass


LOCAL_CA_DAYS = 825


def local_ca(folder: Path, server_name: str, wildcard: bool = False) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``server_name`` (with ``wildcard``, ``*.server_name`` too; and loopback),
    made once in ``folder``: again when the names it covers change."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_pem, cert_pem, key_pem = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    wanted = [server_name, f"*.{server_name}"] if wildcard else [server_name]
    if cert_pem.exists() and key_pem.exists() and not uncovered(cert_pem, wanted):
        return ca_pem, cert_pem, key_pem
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def build(subject, issuer, public_key, signer, *extensions):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=LOCAL_CA_DAYS))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"campushub local CA ({server_name})")])
    ca = build(ca_name, ca_name, ca_key.public_key(), ca_key, (x509.BasicConstraints(ca=True, path_length=0), True))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in wanted]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(server_name)))
    except ValueError:
        names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = build(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_name)]),
        ca_name,
        key.public_key(),
        ca_key,
        (x509.SubjectAlternativeName(names), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
    )
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    state.write_private(
        key_pem,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    return ca_pem, cert_pem, key_pem


def lines(door: FrontDoorSettings, folder: Path, root: str) -> list[str]:
    """Apache's certificate lines; certificate files are copied into ``folder``/tls."""
    cert = door.certificate
    if cert.source == "acme":  # mod_md obtains and renews the certificate itself
        lines = [
            f"MDomain {' '.join(names(door))}",
            "MDCertificateAgreement accepted",
            f"MDContactEmail {cert.acme_email}",
            f"MDStoreDir {root}/md",
        ]
        if door.user_origins:  # a wildcard name: only the DNS-01 challenge can prove it
            lines += ["MDCAChallenges dns-01", f"MDChallengeDns01 {cert.acme_dns01_command}"]
        if cert.acme_staging:
            lines.append("MDCertificateAuthority https://acme-staging-v02.api.letsencrypt.org/directory")
        return lines
    if cert.source == "file":
        server_cert, server_key = Path(str(cert.cert)), Path(str(cert.key))  # both set: the model refuses less
        missing = uncovered(server_cert, names(door))
        if missing:
            raise SiteError(
                [
                    f"front_door.certificate.cert: {server_cert} does not cover {', '.join(missing)}"
                    + (" (per-user origins need a wildcard certificate)" if door.user_origins else "")
                ]
            )
    else:
        _ca, server_cert, server_key = local_ca(folder / "ca", door.server_name, door.user_origins)
    tls = folder / "tls"
    tls.mkdir(mode=0o700, exist_ok=True)
    shutil.copyfile(server_cert, tls / "server.pem")
    shutil.copyfile(server_key, state.private_file(tls / "server.key"))
    return [f"SSLCertificateFile {root}/tls/server.pem", f"SSLCertificateKeyFile {root}/tls/server.key"]


def names(door: FrontDoorSettings) -> list[str]:
    """The names the front door's certificate must cover: its own, and every user's with per-user origins."""
    return [door.server_name, f"*.{door.server_name}"] if door.user_origins else [door.server_name]


def uncovered(pem: Path, wanted: list[str]) -> list[str]:
    """The names in ``wanted`` that the certificate at ``pem`` has no subject alternative name for."""
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(pem.read_bytes())
        has = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return wanted
    dns = {n.lower() for n in has.get_values_for_type(x509.DNSName)}
    return [n for n in wanted if n.lower() not in dns]

"""The front door's SAML sign-in: Shibboleth SP 3 (mod_shib in Apache, ``shibd`` beside it).

``campushub frontdoor`` writes the SP's configuration into the front door's folder (``shibboleth/``) with
its key pair, made once and kept (0600), and ``run`` starts ``shibd`` before Apache. Attributes reach
Apache as environment variables named by ``attribute-map.xml`` (a client cannot send one), and become the
hub's identity headers on the hub's paths only, as with OpenID Connect.
"""

from __future__ import annotations

import base64
import datetime
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ...sitefile.sections import SAML_ATTRIBUTES, SAML_HANDLER, FrontDoorSettings, SamlSettings
from .. import state

if TYPE_CHECKING:
    from ...sitefile.model import Site

#: the SP's folder in the front door's, and what shibd writes there: its socket and logs (which Apache's workers
#: reach: the socket, and mod_shib's own log), and the metadata it fetched
FOLDER = "shibboleth"
RUNTIME = {"run": 0o711, "log": 0o711, "cache": 0o700}
#: the cookies of a Shibboleth session and of a sign-in under way
COOKIES = "(_shibsession_|_shibstate_|_opensaml_req_)"
KEY_BITS = 3072
CERT_YEARS = 10


def entity_id(door: FrontDoorSettings, saml: SamlSettings) -> str:
    """The SP's entityID: the site's, else ``https://SERVER_NAME/shibboleth``."""
    return saml.entity_id or f"https://{door.server_name}/shibboleth"


def sign_in(site: Site, door: FrontDoorSettings, saml: SamlSettings, root: str) -> dict:
    """The template's ``sso``: mod_shib's config file, the headers set from the session's attributes on the hub's
    paths, the paths Apache answers itself, the cookies it keeps from what it proxies, and its logout."""
    auth = site.auth
    return {
        "name": "saml",
        "saml": saml,
        "config": f"{root}/{FOLDER}/shibboleth2.xml",
        # mod_shib builds its own URLs (the assertion consumer's) from this name
        "server_name": door.origin,
        "headers": [(auth.user_header, saml.user_attribute), (auth.groups_header, saml.groups_attribute)],
        "headers_extra": [],
        "paths": [SAML_HANDLER, "/shibboleth-sp/"],
        "cookies": COOKIES,
        # mod_shib's handler (the assertion consumer, logout) reads them after Apache edits the request's
        "cookie_condition": f' "expr=%{{REQUEST_URI}} !~ m#^{SAML_HANDLER}/#"',
        "logout": door.logout_url(),
    }


def write(site: Site, door: FrontDoorSettings, saml: SamlSettings, folder: Path, root: str, templates) -> None:
    """The SP's configuration in ``folder``/shibboleth: ``shibboleth2.xml``, ``attribute-map.xml``, the loggers,
    the IdP's metadata (or the certificate that signs it), and the key pair, made once."""
    sp = folder / FOLDER
    sp.mkdir(mode=0o711, exist_ok=True)
    for name, mode in RUNTIME.items():
        (sp / name).mkdir(exist_ok=True)
        (sp / name).chmod(mode)
    key_pair(sp, door.server_name)
    if saml.idp_metadata_file:
        shutil.copyfile(saml.idp_metadata_file, sp / "idp-metadata.xml")
    if saml.idp_metadata_certificate:
        shutil.copyfile(saml.idp_metadata_certificate, sp / "idp-metadata-signer.pem")
    values = {
        "dir": f"{root}/{FOLDER}",
        "saml": saml,
        "entity_id": entity_id(door, saml),
        "contact": "root@localhost",
        "help": site.branding.help_url or "/",
        "attributes": {a: SAML_ATTRIBUTES[a] for a in (saml.user_attribute, saml.groups_attribute)},
    }
    for name in ("shibboleth2.xml", "attribute-map.xml", "shibd.logger", "native.logger"):
        (sp / name).write_text(templates.get_template(f"frontdoor/{FOLDER}/{name}").render(**values))


def key_pair(folder: Path, server_name: str) -> tuple[Path, Path]:
    """The SP's signing and decryption key (``sp-key.pem``, 0600) and its certificate, made once and kept: the
    identity provider knows the SP by this certificate."""
    key_pem, cert_pem = folder / "sp-key.pem", folder / "sp-cert.pem"
    if key_pem.exists() and cert_pem.exists():
        return key_pem, cert_pem
    folder.mkdir(mode=0o711, parents=True, exist_ok=True)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365 * CERT_YEARS))
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    state.write_private(key_pem, private)
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_pem, cert_pem


def metadata(door: FrontDoorSettings, saml: SamlSettings, folder: Path, templates) -> str:
    """The SP's metadata, for its registration at the campus identity provider."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    _key, cert_pem = key_pair(folder / FOLDER, door.server_name)
    der = x509.load_pem_x509_certificate(cert_pem.read_bytes()).public_bytes(serialization.Encoding.DER)
    return templates.get_template(f"frontdoor/{FOLDER}/sp-metadata.xml").render(
        entity_id=entity_id(door, saml), certificate=base64.b64encode(der).decode(), public=door.origin
    )

"""The campus front door: Apache httpd configuration generated from the site file.

Apache terminates TLS, signs users in with the campus OpenID Connect provider
(mod_auth_openidc), removes any identity headers the client sent, sets them (with the ID
token and the proxy secret) from the authenticated session on the hub's paths only, and
proxies (websockets too) to the hub.
"""

from __future__ import annotations

import datetime
import grp
import ipaddress
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import jinja2

from ..auth.remote_user import RemoteUserAuth, id_token_of
from ..hub import branding
from ..sitefile.errors import SiteError
from ..sitefile.fields import read_secret
from ..sitefile.sections import FrontDoorSettings
from . import state

if TYPE_CHECKING:
    from ..sitefile.model import Site


def door_of(site: Site) -> FrontDoorSettings:
    """The site's front door, or a problem when it has none."""
    if site.front_door is None:
        raise SiteError(["front_door: not in the site file (see docs/front-door.md)"])
    return site.front_door


def problems(site: Site) -> list[str]:
    """The front door needs the SSO login, with the secret it sends."""
    if not site.front_door:
        return []
    if not isinstance(site.auth, RemoteUserAuth):
        return ["front_door: needs auth.type remote_user (the front door logs users in through the SSO)"]
    if not site.auth.proxy_secret:
        return [
            "front_door: set auth.proxy_secret: the front door sends it, so the hub can tell"
            " the front door from anything else that reaches its proxy"
        ]
    return _origin_problems(site)


def _origin_problems(site: Site) -> list[str]:
    """Per-user origins need a name users' names can go under, a certificate that can cover them, and the hub at
    the front door's own name."""
    door = door_of(site)
    if not door.user_origins:
        return []
    off = " (or set front_door.user_origins: false, and read docs/authentication.md for what that allows)"
    found = []
    if "." not in door.server_name or _is_address(door.server_name):
        found.append(
            f"front_door.server_name: per-user origins put each user's server at NAME.{door.server_name}, which needs"
            f" a DNS name with a dot (hub.example.edu, or hub.localhost to try it on one machine){off}"
        )
    cert = door.certificate
    if cert.source == "acme" and not cert.acme_dns01_command:
        found.append(
            f"front_door.certificate.acme_dns01_command: per-user origins need a certificate for *.{door.server_name},"
            " which ACME CAs issue only through the DNS-01 challenge: give the program that publishes its DNS record,"
            f" or use source: file with a wildcard certificate{off}"
        )
    public = site.hub.public_url and urlsplit(site.hub.public_url)
    if public and (public.scheme, public.netloc) != ("https", urlsplit(public_origin(door)).netloc):
        found.append(
            f"hub.public_url: the front door serves the hub at {public_origin(door)}/ (front_door.server_name and"
            " https_port); leave public_url unset, or make it that"
        )
    return found


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def warnings(site: Site) -> list[str]:
    """What per-user origins turned off allows."""
    if not site.front_door or site.front_door.user_origins:
        return []
    return [
        "front_door.user_origins: false: users' servers share the hub's origin, so a page a user's server serves"
        " can act on the hub as any user who opens it, an admin included (JupyterHub's documented limit of one"
        " origin; see docs/authentication.md)"
    ]


MODULES = [
    "mpm_event",
    "alias",
    "mime",
    "authn_core",
    "authz_core",
    "authz_user",
    "headers",
    "rewrite",
    "socache_shmcb",
    "ssl",
    "proxy",
    "proxy_http",
    "proxy_wstunnel",
    "auth_openidc",
    "md",
]
MODULE_DIR = "/usr/lib/apache2/modules"
#: where the front door serves its own pages (never proxied to the hub)
ERROR_PATH = "/campushub-error/"
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


def _tls(site: Site, folder: Path, root: str) -> list[str]:
    """Apache's certificate lines; certificate files are copied into ``folder``/tls."""
    door = door_of(site)
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


def public_origin(door: FrontDoorSettings) -> str:
    """``https://server_name[:port]``: the hub's origin, as users' browsers see it."""
    return f"https://{door.server_name}" + ("" if door.https_port == 443 else f":{door.https_port}")


def quoted(value: str, field: str) -> str:
    """``value`` in double quotes for Apache's config; a value that cannot be quoted is refused, naming ``field``."""
    if any(c in value for c in '"\\') or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise SiteError([f"{field}: holds a quote, backslash or control character, which Apache's config cannot hold"])
    return f'"{value}"'


TEMPLATES = jinja2.Environment(
    loader=jinja2.FunctionLoader(lambda name: resources.files("campushub").joinpath("templates", name).read_text()),
    autoescape=False,  # Apache's config, not HTML: every value is validated, and quoted ones by `quoted`
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)
TEMPLATES.filters["quoted"] = quoted


def vhost(site: Site, folder: Path, root: str) -> str:
    """The virtual hosts (HTTP redirect, HTTPS with SSO for the hub, HTTPS for users' servers at their own names):
    what a site's existing Apache includes."""
    door, auth = door_of(site), site.auth
    assert isinstance(auth, RemoteUserAuth) and auth.proxy_secret  # problems() refuses the site otherwise
    public = public_origin(door)
    # the hub's proxy serves the same paths as the front door (a bind_url path is the public path too)
    upstream = urlsplit(door.upstream or site.hub.bind_url.replace("0.0.0.0", "127.0.0.1"))
    id_token = id_token_of(site)
    assert id_token is not None  # a front door always sends one
    prefix = urlsplit(site.hub.bind_url).path.rstrip("/") + "/"
    return TEMPLATES.get_template("frontdoor/vhost.conf").render(
        door=door,
        oidc=door.oidc,
        auth=auth,
        secret=auth.proxy_secret,
        secret_value=read_secret(auth.proxy_secret, "auth.proxy_secret", min_length=16),
        client_secret=read_secret(door.oidc.client_secret, "front_door.oidc.client_secret"),
        passphrase=state.secret(folder / "oidc_passphrase")[0],
        id_token_header=id_token.header,
        identity_headers=(auth.user_header, auth.groups_header, auth.proxy_secret.header, id_token.header),
        public=public,
        upstream=f"{upstream.scheme}://{upstream.netloc}",
        hub_path=prefix + "hub/",
        user_path=prefix + "user/",
        user_origins=door.user_origins,
        tls=_tls(site, folder, root),
        error_path=ERROR_PATH,
        root=root,
        logout_to=quote(door.oidc.logout_to or f"{public}/", safe=""),
    )


def httpd_conf(site: Site, root: str) -> str:
    """A complete Apache configuration that runs only the front door, its files under ``root``."""
    return TEMPLATES.get_template("frontdoor/httpd.conf").render(
        door=site.front_door, root=root, modules=MODULES, module_dir=MODULE_DIR
    )


def error_pages(site: Site, folder: Path):
    """The page users see when the hub does not answer, in the site's name and colours (readable by Apache)."""
    folder.mkdir(mode=0o755, exist_ok=True)
    folder.chmod(0o755)
    template = jinja2.Environment(autoescape=True).from_string(
        resources.files("campushub").joinpath("templates", "frontdoor", "503.html").read_text()
    )
    page = folder / "503.html"
    page.write_text(template.render(**site.branding.model_dump(), **branding.colors(site.branding)))
    page.chmod(0o644)


def write(site: Site, folder: Path, root: str | None = None) -> Path:
    """Write ``httpd.conf``, ``campushub-vhost.conf`` (both 0600: they hold secrets), ``tls/`` and the two
    logs (0640 to the adm group) into ``folder``.

    The folder also keeps what is made once and reused: the local CA (``ca/``) and the
    passphrase mod_auth_openidc encrypts its sessions with.

    ``root`` is where Apache will see ``folder`` (in a container, its mount point); default: ``folder``.
    """
    folder.mkdir(mode=0o711, parents=True, exist_ok=True)
    folder.chmod(0o711)  # Apache's workers (www-data) reach errors/ only; every other file is private
    root = (root or str(folder.absolute())).rstrip("/")
    error_pages(site, folder / "errors")
    state.write_private(folder / "campushub-vhost.conf", vhost(site, folder, root))
    conf = folder / "httpd.conf"
    state.write_private(conf, httpd_conf(site, root))
    for log in ("access.log", "error.log"):
        private_log(folder / log)
    return conf


def private_log(path: Path):
    """Make ``path`` before Apache opens it (as root, keeping its mode): readable by root and the ``adm`` group
    (Debian's readers of logs) only. It holds users' names and the paths they open."""
    state.private_file(path)
    try:
        os.chown(path, 0, grp.getgrnam("adm").gr_gid)
        path.chmod(0o640)
    except (KeyError, PermissionError):  # no adm group, or not root: private to its owner
        pass

"""The campus front door: Apache httpd configuration generated from the site file.

Apache terminates TLS, signs users in with the campus OpenID Connect provider
(mod_auth_openidc), removes any identity headers the client sent, sets them (with the ID
token and the proxy secret) from the authenticated session on the hub's paths only, and
proxies (websockets too) to the hub.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import quote, urlsplit

import jinja2
from pydantic import Field, model_validator

from . import branding, state
from .auth.remote_user import RemoteUserAuth, id_token_of
from .fields import HostName, HttpUrl, Model, Name, Port, SecretSource, read_secret

if TYPE_CHECKING:
    from .site import Site


class Certificate(Model):
    """Where the front door's TLS certificate comes from."""

    source: Literal["local_ca", "file", "acme"] = Field(
        "local_ca",
        description="`file`: `cert` and `key` paths. `acme`: mod_md gets and renews a certificate."
        " `local_ca`: campushub makes a CA and a certificate for `server_name` in the output folder's `ca/`"
        " (browsers must trust `ca/ca.pem`)",
    )
    cert: Path | None = Field(None, description="with `source: file`: the certificate (PEM)")
    key: Path | None = Field(None, description="with `source: file`: its private key (PEM)")
    acme_email: Name | None = Field(None, description="with `source: acme`: the contact address for the CA")
    acme_staging: bool = Field(
        True, description="with `source: acme`: use Let's Encrypt's staging CA until you trust the setup; then false"
    )

    @model_validator(mode="after")
    def _complete(self):
        if self.source == "file" and not (self.cert and self.key):
            raise ValueError("source 'file' needs 'cert' and 'key'")
        if self.source == "acme" and not self.acme_email:
            raise ValueError("source 'acme' needs 'acme_email'")
        return self


class OidcSettings(Model):
    """mod_auth_openidc: the campus's OpenID Connect provider."""

    metadata_url: HttpUrl = Field(description="the provider's `.well-known/openid-configuration`")
    client_id: Name = Field(description="the client registered at the provider")
    client_secret: SecretSource = Field(description="its secret, from `env` or `file`")
    scopes: Name = Field("openid profile groups", description="what to ask the provider for")
    user_claim: Name = Field("preferred_username", description="the claim that becomes `auth.user_header`")
    groups_claim: Name = Field(
        "groups", description="the claim that becomes `auth.groups_header`, joined with `groups_separator`"
    )
    redirect_path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_-]+$")] = Field(
        "/oidc-callback",
        description="mod_auth_openidc's callback (register `https://SERVER_NAME/PATH` at the provider)",
    )
    logout_to: HttpUrl | None = Field(
        None, description="where the provider sends users after logout; default `https://SERVER_NAME/`"
    )


class FrontDoorSettings(Model):
    """Apache httpd in front of the hub: TLS, and the campus SSO setting the identity."""

    server_name: HostName = Field("localhost", description="the host name users type; the certificate's name")
    address: Name = Field("127.0.0.1", description="where Apache listens")
    http_port: Port = Field(80, description="HTTP, which only redirects to HTTPS")
    https_port: Port = Field(443, description="HTTPS")
    upstream: HttpUrl | None = Field(
        None,
        description="where Apache sends requests: the hub's proxy as the front"
        " door reaches it; default `hub.bind_url` (on loopback)",
    )
    certificate: Certificate = Field(Certificate(), description="the TLS certificate")
    oidc: OidcSettings = Field(description="the campus OpenID Connect provider")


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
    return []


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


def local_ca(folder: Path, server_name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``server_name`` (and loopback), made once in ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_pem, cert_pem, key_pem = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    if cert_pem.exists() and key_pem.exists():
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
    names = [x509.DNSName(server_name)]
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
    state.private_file(key_pem).write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_pem, cert_pem, key_pem


def _tls(site: Site, folder: Path, root: str) -> list[str]:
    """Apache's certificate lines; certificate files are copied into ``folder``/tls."""
    door = site.front_door
    cert = door.certificate
    if cert.source == "acme":  # mod_md obtains and renews the certificate itself
        lines = [
            f"MDomain {door.server_name}",
            "MDCertificateAgreement accepted",
            f"MDContactEmail {cert.acme_email}",
            f"MDStoreDir {root}/md",
        ]
        if cert.acme_staging:
            lines.append("MDCertificateAuthority https://acme-staging-v02.api.letsencrypt.org/directory")
        return lines
    if cert.source == "file":
        server_cert, server_key = cert.cert, cert.key
    else:
        _ca, server_cert, server_key = local_ca(folder / "ca", door.server_name)
    tls = folder / "tls"
    tls.mkdir(mode=0o700, exist_ok=True)
    shutil.copyfile(server_cert, tls / "server.pem")
    shutil.copyfile(server_key, state.private_file(tls / "server.key"))
    return [f"SSLCertificateFile {root}/tls/server.pem", f"SSLCertificateKeyFile {root}/tls/server.key"]


def vhost(site: Site, folder: Path, root: str) -> str:
    """The two virtual hosts (HTTP redirect, HTTPS with SSO): what a site's existing Apache includes."""
    door, auth = site.front_door, site.auth
    assert isinstance(auth, RemoteUserAuth) and auth.proxy_secret  # problems() refuses the site otherwise
    oidc = door.oidc
    secret = auth.proxy_secret
    public = f"https://{door.server_name}" + ("" if door.https_port == 443 else f":{door.https_port}")
    # the hub's proxy serves the same paths as the front door (a bind_url path is the public path too)
    upstream = urlsplit(door.upstream or site.hub.bind_url.replace("0.0.0.0", "127.0.0.1"))
    upstream = f"{upstream.scheme}://{upstream.netloc}"
    passphrase = state.secret(folder / "oidc_passphrase")[0]
    id_token = id_token_of(site)
    headers = (auth.user_header, auth.groups_header, secret.header, id_token.header)
    hub_path = urlsplit(site.hub.bind_url).path.rstrip("/") + "/hub/"
    logout_to = oidc.logout_to or f"{public}/"
    lines = [
        f"<VirtualHost {door.address}:{door.http_port}>",
        f"    ServerName {door.server_name}",
        "    RewriteEngine On",
        f"    RewriteRule ^ {public}%{{REQUEST_URI}} [R=301,L]",
        "</VirtualHost>",
        "",
        f"<VirtualHost {door.address}:{door.https_port}>",
        f"    ServerName {door.server_name}",
        "    SSLEngine on",
        "    SSLProtocol -all +TLSv1.2 +TLSv1.3",
        *(f"    {line}" for line in _tls(site, folder, root)),
        '    Header always set Strict-Transport-Security "max-age=63072000; includeSubDomains"',
        "",
        "    # single sign-on: every path needs an OpenID Connect session",
        f"    OIDCProviderMetadataURL {oidc.metadata_url}",
        f"    OIDCClientID {oidc.client_id}",
        f'    OIDCClientSecret "{read_secret(oidc.client_secret, "front_door.oidc.client_secret")}"',
        f"    OIDCRedirectURI {public}{oidc.redirect_path}",
        f'    OIDCCryptoPassphrase "{passphrase}"',
        f'    OIDCScope "{oidc.scopes}"',
        "    # sub is in every ID token: the hub, not Apache, judges a token without the user claim",
        "    OIDCRemoteUserClaim sub",
        f'    OIDCClaimDelimiter "{auth.groups_separator}"',
        "    OIDCPassClaimsAs environment",
        "    OIDCPassIDTokenAs serialized",
        "    OIDCCookieHTTPOnly On",
        "    OIDCCookieSameSite On",
        "    <Location />",
        "        AuthType openid-connect",
        "        Require valid-user",
        "    </Location>",
        "",
        "    # identity comes from the session only: whatever the client sent is dropped, on every path",
        *(f"    RequestHeader unset {h} early" for h in headers),
        '    RequestHeader set X-Forwarded-Proto "https"',
        "    # ... and is set on the hub's own paths only, so users' servers never see it (nor the",
        "    # secret); a claim the session lacks sends no header, never the text (null)",
        f"    <Location {hub_path}>",
        _from_env(auth.user_header, f"OIDC_CLAIM_{oidc.user_claim}"),
        _from_env(auth.groups_header, f"OIDC_CLAIM_{oidc.groups_claim}"),
        _from_env(id_token.header, "OIDC_id_token"),
        f'        RequestHeader set {secret.header} "{read_secret(secret, "auth.proxy_secret", min_length=16)}"',
        "    </Location>",
        "",
        "    # what users see when the hub does not answer (restarting, down): a page of the site's own",
        f"    ErrorDocument 502 {ERROR_PATH}503.html",
        f"    ErrorDocument 503 {ERROR_PATH}503.html",
        f"    Alias {ERROR_PATH} {root}/errors/",
        f"    <Directory {root}/errors>",
        "        Require all granted",
        "    </Directory>",
        f"    <Location {ERROR_PATH}>",
        "        AuthType None",
        "        Require all granted",
        "        ForceType text/html",
        "    </Location>",
        "",
        "    # the hub's proxy, websockets included; Host is kept for JupyterLab's origin checks",
        "    ProxyPreserveHost On",
        f"    ProxyPass {ERROR_PATH} !",
        f"    ProxyPass {oidc.redirect_path} !",
        f"    ProxyPass / {upstream}/ upgrade=websocket",
        f"    ProxyPassReverse / {upstream}/",
        "</VirtualHost>",
        "",
        f"# the SSO's logout, for auth.logout_url: {public}{oidc.redirect_path}?logout={quote(logout_to, safe='')}",
    ]
    return "\n".join(lines) + "\n"


def _from_env(header: str, variable: str) -> str:
    return f'        RequestHeader set {header} "%{{{variable}}}e" env={variable}'


def httpd_conf(site: Site, root: str) -> str:
    """A complete Apache configuration that runs only the front door, its files under ``root``."""
    door = site.front_door
    lines = [
        "# Generated by `campushub frontdoor` from the site file: edit the site file, not this.",
        f"ServerRoot {root}",
        f"PidFile {root}/httpd.pid",
        f"DefaultRuntimeDir {root}",
        f"ErrorLog {root}/error.log",
        'LogFormat "%h %u \\"%r\\" %>s %b" campushub',
        f"CustomLog {root}/access.log campushub",
        "User www-data",
        "Group www-data",
        *(f"LoadModule {m}_module {MODULE_DIR}/mod_{m}.so" for m in MODULES),
        f"ServerName {door.server_name}",
        f"Listen {door.address}:{door.http_port}",
        f"Listen {door.address}:{door.https_port}",
        f"SSLSessionCache shmcb:{root}/ssl_scache(512000)",
        "TypesConfig /dev/null",
        f"Include {root}/campushub-vhost.conf",
    ]
    return "\n".join(lines) + "\n"


def error_pages(site: Site, folder: Path):
    """The page users see when the hub does not answer, in the site's name and colours (readable by Apache)."""
    folder.mkdir(mode=0o755, exist_ok=True)
    folder.chmod(0o755)
    template = jinja2.Environment(autoescape=True).from_string(
        resources.files("campushub").joinpath("templates", "frontdoor", "503.html").read_text()
    )
    page = folder / "503.html"
    header = site.branding.header_color
    page.write_text(template.render(**site.branding.model_dump(), header_text=header and branding.text_color(header)))
    page.chmod(0o644)


def write(site: Site, folder: Path, root: str | None = None) -> Path:
    """Write ``httpd.conf``, ``campushub-vhost.conf`` (both 0600: they hold secrets) and ``tls/`` into ``folder``.

    The folder also keeps what is made once and reused: the local CA (``ca/``) and the
    passphrase mod_auth_openidc encrypts its sessions with.

    ``root`` is where Apache will see ``folder`` (in a container, its mount point); default: ``folder``.
    """
    folder.mkdir(mode=0o711, parents=True, exist_ok=True)
    folder.chmod(0o711)  # Apache's workers (www-data) reach errors/ only; every other file is private
    root = (root or str(folder.absolute())).rstrip("/")
    error_pages(site, folder / "errors")
    state.private_file(folder / "campushub-vhost.conf").write_text(vhost(site, folder, root))
    conf = state.private_file(folder / "httpd.conf")
    conf.write_text(httpd_conf(site, root))
    return conf

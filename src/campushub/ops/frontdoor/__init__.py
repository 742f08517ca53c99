"""The campus front door: Apache httpd configuration generated from the site file.

Apache terminates TLS, signs users in with the campus OpenID Connect provider
(mod_auth_openidc), removes any identity headers the client sent, sets them (with the ID
token and the proxy secret) from the authenticated session on the hub's paths only, and
proxies (websockets too) to the hub.
"""

from __future__ import annotations

import grp
import ipaddress
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import jinja2

from ...auth.remote_user import RemoteUserAuth
from ...hub import branding
from ...sitefile.errors import SiteError
from ...sitefile.fields import read_secret
from ...sitefile.sections import ERROR_PATH, SIGNED_OUT, FrontDoorSettings
from .. import state
from . import oidc, saml, tls

if TYPE_CHECKING:
    from ...sitefile.model import Site


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
    if site.front_door.saml and site.auth.groups_separator != ";":
        return [
            f"auth.groups_separator: {site.auth.groups_separator!r}, but the SAML front door joins a user's groups"
            " with ';' (as Shibboleth does): set it to ';'"
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
    if public and (public.scheme, public.netloc) != ("https", urlsplit(door.origin).netloc):
        found.append(
            f"hub.public_url: the front door serves the hub at {door.origin}/ (front_door.server_name and"
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
    "md",
]
MODULE_DIR = "/usr/lib/apache2/modules"


def quoted(value: str, field: str) -> str:
    """``value`` in double quotes for Apache's config; a value that cannot be quoted is refused, naming ``field``."""
    if any(c in value for c in '"\\') or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise SiteError([f"{field}: holds a quote, backslash or control character, which Apache's config cannot hold"])
    return f'"{value}"'


TEMPLATES = jinja2.Environment(
    loader=jinja2.FunctionLoader(lambda name: resources.files("campushub").joinpath("templates", name).read_text()),
    # Apache's config is not escaped: every value is validated, and quoted ones by `quoted`; the SAML SP's XML is
    autoescape=jinja2.select_autoescape(enabled_extensions=("xml",), default_for_string=False, default=False),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)
TEMPLATES.filters["quoted"] = quoted
#: the front door's own pages: HTML, escaped
PAGES = jinja2.Environment(loader=TEMPLATES.loader, autoescape=True, undefined=jinja2.StrictUndefined)


def vhost(site: Site, folder: Path, root: str) -> str:
    """The virtual hosts (HTTP redirect, HTTPS with SSO for the hub, HTTPS for users' servers at their own names):
    what a site's existing Apache includes."""
    door, auth = door_of(site), site.auth
    assert isinstance(auth, RemoteUserAuth) and auth.proxy_secret  # problems() refuses the site otherwise
    public = door.origin
    # the hub's proxy serves the same paths as the front door (a bind_url path is the public path too)
    upstream = urlsplit(door.upstream or site.hub.bind_url.replace("0.0.0.0", "127.0.0.1"))
    prefix = urlsplit(site.hub.bind_url).path.rstrip("/") + "/"
    if door.oidc:
        sso = oidc.sign_in(site, door, door.oidc, folder, public)
    else:
        assert door.saml is not None  # the model wants one of them
        sso = saml.sign_in(site, door, door.saml, root)
    return TEMPLATES.get_template("frontdoor/vhost.conf").render(
        door=door,
        sso=sso,
        auth=auth,
        secret=auth.proxy_secret,
        secret_value=read_secret(auth.proxy_secret, "auth.proxy_secret", min_length=16),
        # everything the hub believes of a request: the headers the session sets, and the secret
        identity_headers=(
            auth.user_header,
            auth.groups_header,
            auth.proxy_secret.header,
            *[h for h, _v in sso["headers"][2:]],
        ),
        public=public,
        upstream=f"{upstream.scheme}://{upstream.netloc}",
        hub_path=prefix + "hub/",
        user_path=prefix + "user/",
        user_origins=door.user_origins,
        tls=tls.lines(door, folder, root),
        error_path=ERROR_PATH,
        root=root,
    )


def httpd_conf(site: Site, root: str) -> str:
    """A complete Apache configuration that runs only the front door, its files under ``root``."""
    door = door_of(site)
    modules = [(f"{m}_module", f"mod_{m}.so") for m in MODULES]
    modules.insert(-1, ("auth_openidc_module", "mod_auth_openidc.so") if door.oidc else ("mod_shib", "mod_shib.so"))
    return TEMPLATES.get_template("frontdoor/httpd.conf").render(
        door=door, root=root, modules=modules, module_dir=MODULE_DIR
    )


def error_pages(site: Site, folder: Path):
    """The pages the front door serves itself, in the site's name and colours (readable by Apache): when the hub
    does not answer, and (SAML) after a logout that leaves the identity provider's session."""
    folder.mkdir(mode=0o755, exist_ok=True)
    folder.chmod(0o755)
    door = door_of(site)
    pages = ["503.html"] + ([SIGNED_OUT] if door.saml else [])
    colors = branding.colors(site.branding)
    for name in pages:
        page = folder / name
        page.write_text(PAGES.get_template(f"frontdoor/{name}").render(**site.branding.model_dump(), **colors))
        page.chmod(0o644)


def write(site: Site, folder: Path, root: str | None = None) -> Path:
    """Write ``httpd.conf``, ``campushub-vhost.conf`` (both 0600: they hold secrets), ``tls/``, the two logs
    (0640 to the adm group), ``run`` (which starts it) and, for SAML, the SP's ``shibboleth/`` into ``folder``.

    The folder also keeps what is made once and reused: the local CA (``ca/``), the passphrase
    mod_auth_openidc encrypts its sessions with, and the SAML SP's key pair.

    ``root`` is where Apache will see ``folder`` (in a container, its mount point); default: ``folder``.
    """
    folder.mkdir(mode=0o711, parents=True, exist_ok=True)
    folder.chmod(0o711)  # Apache's workers (www-data) reach errors/ only; every other file is private
    root = (root or str(folder.absolute())).rstrip("/")
    door = door_of(site)
    error_pages(site, folder / "errors")
    if door.saml:
        saml.write(site, door, door.saml, folder, root, TEMPLATES)
    state.write_private(folder / "campushub-vhost.conf", vhost(site, folder, root))
    conf = folder / "httpd.conf"
    state.write_private(conf, httpd_conf(site, root))
    run = folder / "run"
    run.write_text(TEMPLATES.get_template("frontdoor/run").render(root=root, saml=bool(door.saml)))
    run.chmod(0o755)
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

"""The site file's sections that campushub's features read: the front door, the pages' branding,
Prometheus's access to the hub's metrics and the sessions ledger (the features themselves are
:mod:`campushub.ops.frontdoor`, :mod:`campushub.hub.branding`, :mod:`campushub.hub.metrics` and
:mod:`campushub.ledger`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from .fields import HostName, HttpUrl, Model, Name, Port, SecretSource

#: where the front door serves its own pages (never proxied to the hub): the hub is down, signed out
ERROR_PATH = "/campushub-error/"
SIGNED_OUT = "signed-out.html"
#: the SAML SP's own paths, which Apache answers (mod_shib)
SAML_HANDLER = "/Shibboleth.sso"
#: the longest announcement (characters)
ANNOUNCEMENT_MAX = 500


class ProviderSettings(Model):
    """An OpenID Connect provider, and the claims of its ID tokens that name the user and their groups."""

    metadata_url: HttpUrl = Field(description="the provider's `.well-known/openid-configuration`")
    client_id: Name = Field(description="the client registered at the provider: the audience of its ID tokens")
    user_claim: Name = Field("preferred_username", description="the claim with the user name")
    groups_claim: Name = Field("groups", description="the claim with the user's groups")


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
    acme_dns01_command: Path | None = Field(
        None,
        description="with `source: acme` and `user_origins`: the program mod_md runs to publish the DNS-01"
        " challenge (`MDChallengeDns01`); ACME CAs issue the wildcard certificate per-user origins need only"
        " through DNS-01",
    )

    @model_validator(mode="after")
    def _complete(self):
        if self.source == "file" and not (self.cert and self.key):
            raise ValueError("source 'file' needs 'cert' and 'key'")
        if self.source == "acme" and not self.acme_email:
            raise ValueError("source 'acme' needs 'acme_email'")
        return self


class OidcSettings(ProviderSettings):
    """mod_auth_openidc: the campus's OpenID Connect provider (its user and groups claims become
    `auth.user_header` and `auth.groups_header`, the groups joined with `groups_separator`)."""

    client_secret: SecretSource = Field(description="its secret, from `env` or `file`")
    scopes: Name = Field("openid profile groups", description="what to ask the provider for")
    redirect_path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_-]+$")] = Field(
        "/oidc-callback",
        description="mod_auth_openidc's callback (register `https://SERVER_NAME/PATH` at the provider)",
    )
    logout_to: HttpUrl | None = Field(
        None, description="where the provider sends users after logout; default `https://SERVER_NAME/`"
    )


#: the eduPerson (and X.500) attributes the SAML front door can take a user's name and groups from: the id the SP
#: knows each by, and its SAML name (an OID, as InCommon's identity providers release them)
SAML_ATTRIBUTES = {
    "uid": "urn:oid:0.9.2342.19200300.100.1.1",
    "eppn": "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",
    "cn": "urn:oid:2.5.4.3",
    "mail": "urn:oid:0.9.2342.19200300.100.1.3",
    "isMemberOf": "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
    "entitlement": "urn:oid:1.3.6.1.4.1.5923.1.1.1.7",
    "affiliation": "urn:oid:1.3.6.1.4.1.5923.1.1.1.9",
}


#: a SAML entityID: a URL or a URN, nothing XML or a shell reads specially
EntityId = Annotated[str, Field(pattern=r"^(https?://|urn:)[^\s\"'<>&]+$", max_length=1024)]


class SamlSettings(Model):
    """mod_shib (Shibboleth SP 3): the campus's SAML identity provider, as InCommon-style federations run them."""

    idp_entity_id: EntityId = Field(description="the identity provider's entityID: where users sign in")
    idp_metadata_url: HttpUrl | None = Field(
        None,
        description="where the SP fetches the identity provider's (or the federation's) metadata, again as it"
        " expires; needs `idp_metadata_certificate`",
    )
    idp_metadata_certificate: Path | None = Field(
        None,
        description="the certificate that signs the metadata at `idp_metadata_url` (a federation publishes it):"
        " metadata fetched from the network without a valid signature is refused",
    )
    idp_metadata_file: Path | None = Field(
        None, description="the identity provider's metadata as a file, instead of `idp_metadata_url`"
    )
    entity_id: EntityId | None = Field(
        None,
        description="this front door's entityID, as registered at the identity provider; default"
        " `https://SERVER_NAME/shibboleth`",
    )
    user_attribute: Literal["uid", "eppn", "cn", "mail"] = Field(
        "uid",
        description="the attribute that becomes `auth.user_header`: `uid` when names are system accounts"
        " (`system_users`, Slurm); `eppn` (eduPersonPrincipalName, `name@campus.edu`) for container-only sites",
    )
    groups_attribute: Literal["isMemberOf", "entitlement", "affiliation"] = Field(
        "isMemberOf",
        description="the attribute that becomes `auth.groups_header`, its values joined with `;` (set"
        " `auth.groups_separator: ';'`)",
    )
    single_logout: bool = Field(
        False,
        description="the identity provider supports SAML single logout: `/hub/logout` then ends its session too;"
        " without it, the front door's logout page says to close the browser",
    )

    @model_validator(mode="after")
    def _one_metadata_source(self):
        if bool(self.idp_metadata_url) == bool(self.idp_metadata_file):
            raise ValueError("give the identity provider's metadata as idp_metadata_url or idp_metadata_file")
        if self.idp_metadata_url and not self.idp_metadata_certificate:
            raise ValueError("idp_metadata_url needs idp_metadata_certificate, to check the metadata's signature")
        return self


class FrontDoorSettings(Model):
    """Apache httpd in front of the hub: TLS, and the campus SSO setting the identity."""

    server_name: HostName = Field(
        "hub.localhost",
        description="the host name users type; the certificate's name. With `user_origins`, each user's server is"
        " at `NAME.server_name` (wildcard DNS). Browsers find `*.localhost` on this machine without DNS",
    )
    address: Name = Field("127.0.0.1", description="where Apache listens")
    http_port: Port = Field(80, description="HTTP, which only redirects to HTTPS")
    https_port: Port = Field(443, description="HTTPS")
    upstream: HttpUrl | None = Field(
        None,
        description="where Apache sends requests: the hub's proxy as the front"
        " door reaches it; default `hub.bind_url` (on loopback)",
    )
    certificate: Certificate = Field(Certificate(), description="the TLS certificate")
    oidc: OidcSettings | None = Field(None, description="the campus OpenID Connect provider (or `saml`)")
    saml: SamlSettings | None = Field(None, description="the campus SAML identity provider (or `oidc`)")
    user_origins: bool = Field(
        True,
        description="each user's server at a name of its own (`alice.server_name`; JupyterHub's `subdomain_host`),"
        " so that a page a user's server serves cannot act on the hub, or on another user's server, as whoever"
        " opens it. Needs wildcard DNS and a wildcard certificate. `false`: servers share the hub's origin (see"
        " docs/authentication.md for what that allows)",
    )

    @model_validator(mode="after")
    def _one_sign_in(self):
        if (self.oidc is None) == (self.saml is None):
            raise ValueError("give the campus sign-in as oidc (OpenID Connect) or saml (Shibboleth), one of them")
        return self

    @property
    def origin(self) -> str:
        """``https://server_name[:port]``: the hub's origin, as users' browsers see it."""
        return f"https://{self.server_name}" + ("" if self.https_port == 443 else f":{self.https_port}")

    def logout_url(self) -> str | None:
        """Where ``/hub/logout`` sends the browser to end the SAML session: through the identity provider's single
        logout, or (without it) the SP's own, to a page that says to close the browser. None for OpenID Connect,
        whose logout the site gives (``auth.logout_url``)."""
        if not self.saml:
            return None
        if self.saml.single_logout:
            return f"{self.origin}{SAML_HANDLER}/Logout?return={quote(self.origin + '/hub/home', safe='')}"
        back = quote(f"{self.origin}{ERROR_PATH}{SIGNED_OUT}", safe="")
        return f"{self.origin}{SAML_HANDLER}/Logout/Local?return={back}"


def _link(value: str) -> str:
    parts = urlsplit(value)
    if not ((parts.scheme in ("http", "https") and parts.netloc) or (parts.scheme == "mailto" and parts.path)):
        raise ValueError(f"{value!r} is not an http://, https:// or mailto: link")
    return value


Link = Annotated[str, AfterValidator(_link)]
Color = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")]


class BrandingSettings(Model):
    """What the hub's pages (and the front door's "hub is down" page) show."""

    site_name: Annotated[str, Field(min_length=1, max_length=80)] = Field(
        "JupyterHub", description="the site's name: page titles, the top bar, the front door's pages"
    )
    logo: Path | None = Field(
        None, description="a PNG, JPEG or SVG file shown top left (JupyterHub's `logo_file`); default: Jupyter's"
    )
    primary_color: Color = Field("#f37726", description="buttons, and the outline of the chosen profile, as `#rrggbb`")
    header_color: Color | None = Field(None, description="the top bar's background, as `#rrggbb`; default: grey")
    help_url: Link | None = Field(
        None, description="where users get help (a web page or `mailto:`): linked on every page, errors included"
    )
    request_access_url: HttpUrl | None = Field(
        None, description="where someone who may not use the hub asks for access: linked on the 403 page"
    )
    announcement: Annotated[str, Field(max_length=ANNOUNCEMENT_MAX)] = Field(
        "",
        description="a message at the top of the hub's pages, home and start included (plain text); admins can"
        " replace it without a restart through `PUT /hub/api/campushub/announcement`",
    )


class MetricsSettings(Model):
    """Prometheus: who may read the hub's `/hub/metrics`."""

    enabled: bool = Field(
        False,
        description="make a JupyterHub service (`campushub-metrics`) with only the `read:metrics` scope, whose token"
        " a Prometheus scrape sends (`authorization: {type: Bearer}`); without it only admins' tokens can read"
        " `/hub/metrics`",
    )
    token: SecretSource | None = Field(
        None,
        validate_default=True,
        description="that service's token, `{env: VAR}` or `{file: PATH}`, 16 characters or more: the same secret"
        " Prometheus sends; never written in the site file",
    )

    @field_validator("token")
    @classmethod
    def _token_when_enabled(cls, value: SecretSource | None, info: ValidationInfo) -> SecretSource | None:
        if value is None and info.data.get("enabled"):
            raise ValueError("required when metrics are enabled: {env: VAR} or {file: PATH}")
        return value


class LedgerSettings(Model):
    """The sessions ledger: one row per server session in the hub's database, for `campushub report`."""

    enabled: bool = Field(True, description="record every server session (who, what it had, where, when, how it ended)")
    keep_days: Annotated[int, Field(ge=0, le=36500)] = Field(
        0,
        description="prune sessions asked for more than this many days ago, at the hub's start and daily, after"
        " exporting them to a CSV file in `export_dir` (0: keep every session)",
    )
    export_dir: Path | None = Field(
        None, description="where pruned sessions are exported (private files); default `hub.state_dir/ledger-exports`"
    )

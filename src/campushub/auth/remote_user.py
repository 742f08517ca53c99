"""``auth.type: remote_user``: sign users in from what the campus single sign-on proxy passes.

The SSO proxy (the front door) passes the user's name and groups in headers, and, with OpenID
Connect, the provider's ID token. They are believed only when the request reached the hub's
proxy from an address in ``trusted_proxies``, with the proxy secret when one is set; with an
ID token, the name and groups come from the verified token. Login goes through JupyterHub's
own ``login_user``, so username normalisation, block lists, admin mapping, group sync and
``post_auth_hook`` all apply.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from typing import Annotated, Any, Literal

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.handlers.login import LogoutHandler as HubLogoutHandler
from pydantic import Field, IPvAnyNetwork
from tornado import web
from traitlets import List, Unicode

from ..backends import backend_of
from ..sitefile.errors import SiteError
from ..sitefile.fields import HeaderName, HttpUrl, Model, Name, SecretSource, is_local, read_secret
from ..sitefile.sections import ProviderSettings
from .base import Login
from .id_token import IdTokenVerifier, InvalidToken, Unavailable

#: what mod_headers sends for a variable that is not set (a claim the provider left out)
UNSET = "(null)"
#: sign-ins the hub works on at once; the others of a burst wait their turn off its event loop, so that the API
#: calls of users already in, admins and the culler are not queued behind a whole class (docs/benchmarks.md)
SIGN_INS_AT_ONCE = 4
_SIGN_INS = asyncio.Semaphore(SIGN_INS_AT_ONCE)  # bound to the hub's event loop when a sign-in first waits


class ProxySecret(SecretSource):
    """The secret the front door sends with every request for the hub."""

    header: HeaderName = Field("X-Campushub-Proxy-Secret", description="the header it comes in")


class IdTokenSettings(ProviderSettings):
    """An OpenID Connect ID token the front door sends on the hub's paths, verified by the hub.

    The hub checks its signature against the provider's published keys, its issuer, audience
    and expiry, and takes the user's name and groups from its claims instead of from headers.
    """

    header: HeaderName = Field("X-Campushub-Id-Token", description="the header the front door sends it in")


class RemoteUserAuth(Model):
    """Campus single sign-on through the front door."""

    type: Literal["remote_user"]
    user_header: HeaderName = Field("Cn", description="header with the user name")
    groups_header: HeaderName = Field("isMemberOf", description="header with the user's groups")
    groups_separator: Annotated[str, Field(min_length=1)] = Field(
        ";", description="separator between groups; each group is stripped of spaces"
    )
    required_groups: list[Name] = Field([], description="a user must be in at least one; empty lets every SSO user in")
    admin_groups: list[Name] = Field(
        [],
        description="members of any are hub admins (and stop being admins when they"
        " leave, unless in `hub.admin_users`)",
    )
    missing_user_redirect: HttpUrl | None = Field(
        None, description="http(s) URL for a request without a user name; none: a 403 page"
    )
    missing_group_redirect: HttpUrl | None = Field(
        None, description="http(s) URL for a user outside `required_groups`; none: a 403 page"
    )
    missing_account_redirect: HttpUrl | None = Field(
        None,
        description="where a user without a system account on this cluster requests one: linked from the"
        " spawn page and the refusal, for profiles that run as the user's own account; none: the page says to ask"
        " the center",
    )
    logout_url: HttpUrl | None = Field(
        None,
        description="the SSO's logout, where `/hub/logout` sends the browser after ending the hub's session"
        ' (and where a sign-in with an expired ID token is sent); none: the hub\'s "logged out" page (and the next'
        " request, still carrying the SSO's headers, logs in again)",
    )
    trusted_proxies: Annotated[list[IPvAnyNetwork], Field(validate_default=True)] = Field(
        ["127.0.0.1/32", "::1/128"],  # type: ignore[list-item]  # validated into networks (validate_default)
        description="CIDR networks the SSO proxy connects from; identity from anywhere else is refused (403)",
    )
    proxy_secret: ProxySecret | None = Field(
        None,
        description="`{env: VAR}` or `{file: PATH}` (and optionally `header`): a secret of 16+ characters the"
        " SSO proxy must send. Required with `local` or `slurm` profiles (users' code runs on the hub's host); a file"
        " must then be private (0600)",
    )
    id_token: IdTokenSettings | None = Field(
        None,
        description="verify the OpenID Connect ID token the front door sends, and take the user's name and"
        " groups from its claims. Set it for a front door of your own; with `front_door` it is derived from"
        " `front_door.oidc`",
    )
    refresh_seconds: Annotated[int, Field(ge=0)] = Field(
        60, description="how often the identity is re-checked against the session; 0 turns re-checking off"
    )


class LoginRefused(web.HTTPError):
    """A refused header login: a 403 page, or a redirect when the site configured one.

    ``kind`` is ``untrusted``, ``expired`` (an ID token older than the session), ``no_user`` or ``no_group``.
    """

    def __init__(self, kind: str, message: str, redirect: str = ""):
        super().__init__(403, message)
        self.kind = kind
        self.redirect = redirect


def _ip(text: str):
    address = ipaddress.ip_address(text.strip().strip("[]"))
    return getattr(address, "ipv4_mapped", None) or address


def client_address(request):
    """The address that connected to the hub's proxy, or None if it cannot be known.

    The hub's own peer is configurable-http-proxy, which the hub runs beside itself
    (so it connects from one of this host's addresses) and which appends the address
    it saw to X-Forwarded-For: that last entry is the one to judge. Earlier entries,
    and X-Real-Ip, are whatever the client chose to send. A request from elsewhere
    reached the hub's own port directly, and is judged by its own address.
    """
    try:
        direct = _ip(request.connection.context.address[0])
        if is_local(direct):
            forwarded = request.headers.get("X-Forwarded-For", "")
            if forwarded:
                return _ip(forwarded.split(",")[-1])
        return direct
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


class LoginHandler(BaseHandler):
    """``/hub/login``: no form; the SSO proxy has already authenticated the browser."""

    async def get(self):
        try:
            async with _SIGN_INS:
                user = await self.login_user()
        except LoginRefused as refusal:
            self.log.warning(
                "Header login refused (%s) from %s: %s", refusal.kind, client_address(self.request), refusal.log_message
            )
            if refusal.redirect:
                return self.redirect(refusal.redirect)
            raise
        if user is None:
            raise web.HTTPError(403, "Your account is not allowed to use this hub.")
        self.redirect(self.get_next_url(user))


class LogoutHandler(HubLogoutHandler):
    """``/hub/logout``: end the hub's session, then the SSO's when ``sso_logout_url`` is set.

    Without the SSO's logout, the next request would carry the same headers and log in again.
    """

    async def render_logout_page(self):
        if self.authenticator.sso_logout_url:
            return self.redirect(self.authenticator.sso_logout_url)
        await super().render_logout_page()


class CampusRemoteUserAuthenticator(Authenticator):
    """Authenticate from the SSO proxy's user and group headers."""

    user_header = Unicode(RemoteUserAuth.default_of("user_header"), config=True, help="Header holding the user name.")
    groups_header = Unicode(
        RemoteUserAuth.default_of("groups_header"), config=True, help="Header holding the user's groups."
    )
    groups_separator = Unicode(
        RemoteUserAuth.default_of("groups_separator"),
        config=True,
        help="Separator between groups.",
    )
    required_groups = List(Unicode(), config=True, help="A user must be in at least one of these; empty: no gate.")
    admin_groups = List(Unicode(), config=True, help="Members of any of these groups are hub admins.")
    missing_user_redirect = Unicode("", config=True, help="Where to send a request with no user header.")
    missing_group_redirect = Unicode("", config=True, help="Where to send a user outside the required groups.")
    trusted_proxies = List(
        Unicode(),
        RemoteUserAuth.default_of("trusted_proxies"),
        config=True,
        help="Networks (CIDR) the SSO proxy connects from; headers from elsewhere are refused.",
    )
    proxy_secret_header = Unicode(
        ProxySecret.default_of("header"), config=True, help="Header in which the SSO proxy sends the shared secret."
    )
    proxy_secret = Unicode("", config=True, help="Shared secret the SSO proxy must send; empty: not required.")
    sso_logout_url = Unicode("", config=True, help="The SSO's logout, where /hub/logout sends the browser next.")
    id_token_header = Unicode(
        "",
        config=True,
        help="Header with the front door's OpenID Connect ID token; when set, the user's"
        " name and groups come from the verified token, not from headers.",
    )
    id_token_metadata_url = Unicode("", config=True, help="The provider's .well-known/openid-configuration.")
    id_token_audience = Unicode("", config=True, help="The client id the ID token must be issued to.")
    id_token_user_claim = Unicode(
        ProviderSettings.default_of("user_claim"), config=True, help="The ID token's claim with the user name."
    )
    id_token_groups_claim = Unicode(
        ProviderSettings.default_of("groups_claim"), config=True, help="The ID token's claim with the user's groups."
    )

    _verifier = None

    def get_handlers(self, app):
        return [(r"/login", LoginHandler), (r"/logout", LogoutHandler)]

    @property
    def verifier(self) -> IdTokenVerifier:
        if self._verifier is None:
            self._verifier = IdTokenVerifier(self.id_token_metadata_url, self.id_token_audience)
        return self._verifier

    async def identify(self, request) -> dict:
        """The auth model for ``request``'s identity, or raise :class:`LoginRefused`."""
        peer = client_address(request)
        networks = [ipaddress.ip_network(n) for n in self.trusted_proxies]
        if peer is None or not any(peer in net for net in networks):
            raise LoginRefused(
                "untrusted", f"Identity headers from {peer} are not trusted: sign in through the campus single sign-on."
            )
        if self.proxy_secret:
            sent = request.headers.get(self.proxy_secret_header, "")
            if not hmac.compare_digest(sent.encode(), self.proxy_secret.encode()):
                raise LoginRefused("untrusted", "The request did not come through the campus single sign-on.")
        if self.id_token_header:
            name, groups = await self._from_id_token(request)
        else:
            name, groups = self._from_headers(request)
        if not name:
            raise LoginRefused("no_user", "The single sign-on did not say who you are.", self.missing_user_redirect)
        if self.required_groups and not set(groups) & set(self.required_groups):
            raise LoginRefused(
                "no_group", f"{name} is not in a group that may use this hub.", self.missing_group_redirect
            )
        model: dict[str, Any] = {"name": name, "groups": groups}
        if self.admin_groups:
            model["admin"] = bool(set(groups) & set(self.admin_groups)) or (
                self.normalize_username(name) in self.admin_users
            )
        return model

    def _from_headers(self, request) -> tuple[str, list[str]]:
        name = request.headers.get(self.user_header, "").strip()
        raw = request.headers.get(self.groups_header, "")
        groups = {g.strip() for g in raw.split(self.groups_separator)} - {"", UNSET}
        return ("" if name == UNSET else name), sorted(groups)

    async def _from_id_token(self, request) -> tuple[str, list[str]]:
        token = request.headers.get(self.id_token_header, "")
        if not token:
            raise LoginRefused("untrusted", "The request carried no sign-in token from the campus single sign-on.")
        try:
            claims = await self.verifier.claims(token)
        except InvalidToken as e:
            if e.expired:
                raise LoginRefused(
                    "expired",
                    "Your single sign-on session is older than its sign-in token: sign out and sign in again.",
                    self.sso_logout_url,
                ) from None
            raise LoginRefused("untrusted", f"The sign-in token was refused ({e}).") from None
        except Unavailable as e:
            self.log.error("Cannot verify ID tokens: %s", e)
            raise web.HTTPError(
                503, "The hub cannot reach the campus sign-in service to check who you are; try again in a minute."
            ) from None
        name = claims.get(self.id_token_user_claim)
        raw = claims.get(self.id_token_groups_claim)
        if isinstance(raw, str):
            raw = raw.split(self.groups_separator)
        groups = {g.strip() for g in raw if isinstance(g, str)} - {""} if isinstance(raw, list) else set()
        return (name.strip() if isinstance(name, str) else ""), sorted(groups)

    async def authenticate(self, handler, data=None):
        return await self.identify(handler.request)

    async def refresh_user(self, user, handler=None):
        """Re-read the headers of the user's own requests: another identity, or a lost required group, means log in
        again. A request about another user (an admin starting their server) says nothing about that user."""
        if handler is None or _about_another(handler, user):
            return True
        try:
            model = await self.identify(handler.request)
        except LoginRefused as refusal:
            # untrusted or header-less requests (API tokens, services), and tokens older than the
            # session, say nothing about the session
            return refusal.kind != "no_group"
        if self.normalize_username(model["name"]) != user.name:
            return False
        return model


def _about_another(handler, user) -> bool:
    """Whether the request's own user, once JupyterHub knows it, is someone else than ``user``.

    JupyterHub refreshes the user a request is about (``spawn_single_user`` always does), and sets the request's
    own user only after its cookie's refresh: until then the request is the user's own. Refusing another user's
    refresh on an admin's request would make JupyterHub fail (a 500, from its refresh_auth on a cookie request).
    """
    asker = getattr(handler, "_jupyterhub_user", None)
    return asker is not None and asker.name != user.name


class RemoteUser(Login):
    name = "remote_user"
    settings = RemoteUserAuth
    authenticator_class = "campushub-remote-user"

    def problems(self, site):
        """Combinations in which a user's own code could sign in as someone else."""
        problems = []
        for i, profile in enumerate(site.profiles):
            if backend_of(profile).as_hub_account(profile):
                problems.append(
                    f"profiles.{i}.system_users: with single sign-on every user's server must run as the user's own"
                    " account: servers run as the hub's account could read the hub's secrets and database and act"
                    " as anyone (set system_users: true, or use a container or slurm profile)"
                )
        on_host = users_code_on_hub_host(site)
        if on_host and site.auth.proxy_secret is None:
            problems.append(
                f"auth.proxy_secret: required, because profiles.{on_host[0]} runs users' code on the hub's host"
                " (or on a Slurm node that may be it): that code can reach the hub from a trusted address and"
                " send identity headers; only the front door may know the secret (see docs/authentication.md)"
            )
        return problems

    def warnings(self, site, environ):
        secret = site.auth.proxy_secret
        if secret is None:
            return []
        also = " (and `campushub frontdoor` needs it)" if site.front_door else ""
        if secret.env and not environ.get(secret.env):
            return [
                f"auth.proxy_secret.env: {secret.env} is not set here; the hub will refuse to start without it{also}"
            ]
        if secret.file and not secret.file.is_file():
            return [
                f"auth.proxy_secret.file: {secret.file} does not exist here; the hub will refuse to start without it"
                + also
            ]
        if secret.file and users_code_on_hub_host(site):
            try:
                read_secret(secret, "auth.proxy_secret", private=True)
            except SiteError as e:
                return e.problems
        return []

    def configure(self, c, site):
        settings = site.auth
        c.JupyterHub.authenticator_class = self.authenticator_class
        a = c.CampusRemoteUserAuthenticator
        for key in ("user_header", "groups_header", "groups_separator", "required_groups", "admin_groups"):
            setattr(a, key, getattr(settings, key))
        a.missing_user_redirect = settings.missing_user_redirect or ""
        a.missing_group_redirect = settings.missing_group_redirect or ""
        a.sso_logout_url = settings.logout_url or (site.front_door and site.front_door.logout_url()) or ""
        a.trusted_proxies = [str(net) for net in settings.trusted_proxies]
        if settings.proxy_secret:
            a.proxy_secret_header = settings.proxy_secret.header
            a.proxy_secret = read_secret(
                settings.proxy_secret, "auth.proxy_secret", min_length=16, private=bool(users_code_on_hub_host(site))
            )
        id_token = id_token_of(site)
        if id_token:
            a.id_token_header = id_token.header
            a.id_token_metadata_url = id_token.metadata_url
            a.id_token_audience = id_token.client_id
            a.id_token_user_claim = id_token.user_claim
            a.id_token_groups_claim = id_token.groups_claim
        a.auto_login = True
        a.manage_groups = True
        a.auth_refresh_age = settings.refresh_seconds
        a.refresh_pre_spawn = True


def users_code_on_hub_host(site) -> list[int]:
    """Indexes of the profiles whose users' code may run on the hub's own host."""
    return [i for i, p in enumerate(site.profiles) if backend_of(p).on_hub_host(site)]


def id_token_of(site) -> IdTokenSettings | None:
    """The ID token the hub verifies: ``auth.id_token``, else the one the generated OpenID Connect front door
    sends (a SAML front door sends none: the proxy secret guards its hop)."""
    if site.auth.id_token or not (site.front_door and site.front_door.oidc):
        return site.auth.id_token
    oidc = site.front_door.oidc
    return IdTokenSettings(
        metadata_url=oidc.metadata_url,
        client_id=oidc.client_id,
        user_claim=oidc.user_claim,
        groups_claim=oidc.groups_claim,
    )


LOGIN = RemoteUser()

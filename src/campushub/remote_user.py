"""Log users in from the identity headers that the campus single sign-on proxy sets.

The headers are believed only when the request reached the hub's proxy from an
address in ``trusted_proxies`` (and, when configured, carries the proxy secret).
Login goes through JupyterHub's own ``login_user``, so username normalisation,
block lists, admin mapping, group sync and ``post_auth_hook`` all apply.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import socket

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.handlers.login import LogoutHandler as HubLogoutHandler
from tornado import web
from traitlets import List, Unicode

from .id_token import IdTokenVerifier, InvalidToken, Unavailable

#: what mod_headers sends for a variable that is not set (a claim the provider left out)
UNSET = "(null)"


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


@functools.lru_cache(maxsize=256)
def is_local(address) -> bool:
    """Whether ``address`` belongs to this host (or container): only local addresses can be bound."""
    if address.is_loopback:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((str(address), 0))
        return True
    except OSError:
        return False


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
            user = await self.login_user()
        except LoginRefused as refusal:
            self.log.warning("Header login refused (%s) from %s: %s", refusal.kind,
                             client_address(self.request), refusal.log_message)
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


class RemoteUserAuthenticator(Authenticator):
    """Authenticate from the SSO proxy's user and group headers."""

    user_header = Unicode("Cn", config=True, help="Header holding the user name.")
    groups_header = Unicode("isMemberOf", config=True, help="Header holding the user's groups.")
    groups_separator = Unicode(";", config=True, help="Separator between groups in the groups header.")
    required_groups = List(Unicode(), config=True, help="A user must be in at least one of these; empty: no gate.")
    admin_groups = List(Unicode(), config=True, help="Members of any of these groups are hub admins.")
    missing_user_redirect = Unicode("", config=True, help="Where to send a request with no user header.")
    missing_group_redirect = Unicode("", config=True, help="Where to send a user outside the required groups.")
    trusted_proxies = List(Unicode(), ["127.0.0.1/32", "::1/128"], config=True,
                           help="Networks (CIDR) the SSO proxy connects from; headers from elsewhere are refused.")
    proxy_secret_header = Unicode("X-Campushub-Proxy-Secret", config=True,
                                  help="Header in which the SSO proxy sends the shared secret.")
    proxy_secret = Unicode("", config=True, help="Shared secret the SSO proxy must send; empty: not required.")
    sso_logout_url = Unicode("", config=True, help="The SSO's logout, where /hub/logout sends the browser next.")
    id_token_header = Unicode("", config=True,
                              help="Header with the front door's OpenID Connect ID token; when set, the user's"
                                   " name and groups come from the verified token, not from headers.")
    id_token_metadata_url = Unicode("", config=True, help="The provider's .well-known/openid-configuration.")
    id_token_audience = Unicode("", config=True, help="The client id the ID token must be issued to.")
    id_token_user_claim = Unicode("preferred_username", config=True, help="The ID token's claim with the user name.")
    id_token_groups_claim = Unicode("groups", config=True, help="The ID token's claim with the user's groups.")

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
            raise LoginRefused("untrusted", f"Identity headers from {peer} are not trusted: "
                               "sign in through the campus single sign-on.")
        if self.proxy_secret:
            sent = request.headers.get(self.proxy_secret_header, "")
            if not hmac.compare_digest(sent.encode(), self.proxy_secret.encode()):
                raise LoginRefused("untrusted", "The request did not come through the campus single sign-on.")
        if self.id_token_header:
            name, groups = await self._from_id_token(request)
        else:
            name, groups = self._from_headers(request)
        if not name:
            raise LoginRefused("no_user", "The single sign-on did not say who you are.",
                               self.missing_user_redirect)
        if self.required_groups and not set(groups) & set(self.required_groups):
            raise LoginRefused("no_group", f"{name} is not in a group that may use this hub.",
                               self.missing_group_redirect)
        model = {"name": name, "groups": groups}
        if self.admin_groups:
            model["admin"] = bool(set(groups) & set(self.admin_groups)) or (
                self.normalize_username(name) in self.admin_users)
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
                raise LoginRefused("expired", "Your single sign-on session is older than its sign-in token:"
                                   " sign out and sign in again.", self.sso_logout_url) from None
            raise LoginRefused("untrusted", f"The sign-in token was refused ({e}).") from None
        except Unavailable as e:
            self.log.error("Cannot verify ID tokens: %s", e)
            raise web.HTTPError(503, "The hub cannot reach the campus sign-in service to check who you are;"
                                " try again in a minute.") from None
        name = claims.get(self.id_token_user_claim)
        raw = claims.get(self.id_token_groups_claim)
        if isinstance(raw, str):
            raw = raw.split(self.groups_separator)
        groups = {g.strip() for g in raw if isinstance(g, str)} - {""} if isinstance(raw, list) else set()
        return (name.strip() if isinstance(name, str) else ""), sorted(groups)

    async def authenticate(self, handler, data=None):
        return await self.identify(handler.request)

    async def refresh_user(self, user, handler=None):
        """Re-read the headers: another identity, or a lost required group, means log in again."""
        if handler is None:
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

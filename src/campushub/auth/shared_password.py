"""``auth.type: shared_password``: JupyterHub's SharedPasswordAuthenticator, the embedded default.

One shared identity: whoever has the password can sign in as any user. Fine for one person or
a group that trusts each other on one machine; refused where it would reach further.
"""

from __future__ import annotations

import secrets
import sys
from typing import Literal

from ..backends import backend_of
from ..ops import state
from ..sitefile.fields import Model, is_loopback
from .base import Login


class SharedPasswordAuth(Model):
    """Any user name with one generated password."""

    type: Literal["shared_password"]


class SharedPassword(Login):
    name = "shared_password"
    settings = SharedPasswordAuth
    authenticator_class = "shared-password"

    def problems(self, site):
        problems = []
        if not is_loopback(site.hub.bind_url):
            problems.append(
                f"hub.bind_url: {site.hub.bind_url} is not loopback, and with auth.type shared_password anyone who"
                " learns the one password can sign in as any user; keep it on 127.0.0.1, or use remote_user"
            )
        for i, profile in enumerate(site.profiles):
            if backend_of(profile).needs_account(profile):
                field = "system_users" if "system_users" in type(profile).model_fields else "backend"
                problems.append(
                    f"profiles.{i}.{field}: with auth.type shared_password anyone with the password can sign in"
                    " under any name and would run code as that system account; use auth.type remote_user"
                )
        return problems

    def warnings(self, site, environ):
        if is_loopback(site.hub.hub_ip):
            return []
        return [
            f"hub.hub_ip: {site.hub.hub_ip} is not loopback: the hub's own port also serves its login page,"
            " so let only users' containers reach it (a firewall), or the shared password is open to the network"
        ]

    def prepare(self, site):
        state_dir = site.hub.state_dir
        # the passwords are never printed: the hub's output ends up in journald and compose logs
        if state.secret(state_dir / "shared_password", make=lambda: secrets.token_urlsafe(12))[1]:
            announce(
                f"made a shared password for this hub: read it with `cat {state_dir / 'shared_password'}`."
                " Everyone who has it can sign in as any user and reach their files: this login is for one"
                " person or a group that trusts each other (docs/authentication.md)"
            )
        admin = state_dir / "admin_password"
        if site.hub.admin_users and state.secret(admin, make=lambda: secrets.token_urlsafe(32))[1]:
            announce(f"admins ({', '.join(site.hub.admin_users)}) sign in with the password in {admin}")

    def configure(self, c, site):
        c.JupyterHub.authenticator_class = self.authenticator_class
        state_dir = site.hub.state_dir
        c.SharedPasswordAuthenticator.user_password = state.stored(state_dir / "shared_password")
        if site.hub.admin_users:
            c.SharedPasswordAuthenticator.admin_password = state.stored(state_dir / "admin_password")


def announce(message: str):
    print(f"campushub: {message}", file=sys.stderr, flush=True)


LOGIN = SharedPassword()

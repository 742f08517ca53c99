"""Turn a validated site file into JupyterHub's traitlets config.

This is the only place that writes to ``c``: one small function per section,
applied in order by :func:`configure`.
"""

from __future__ import annotations

import secrets
import shutil
import sys
from pathlib import Path

from . import state
from .backends import has_persistent_servers, needs_batchspawner, spawner_for
from .settings import RemoteUserAuth, Site, SiteError, config_path, load_site, runs_code_on_hub_host

CULLER_SERVICE = "jupyterhub-idle-culler-service"
CULLER_ROLE = "jupyterhub-idle-culler-role"
#: exactly the seed deployment's scopes; deleting users (culler.users) also needs admin:users
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def hub(c, site: Site):
    settings = site.hub
    state_dir = state.prepare(settings.state_dir)
    c.JupyterHub.bind_url = settings.bind_url
    if settings.public_url:
        c.JupyterHub.public_url = settings.public_url  # https here makes every hub cookie Secure
    c.JupyterHub.hub_ip = settings.hub_ip
    c.JupyterHub.hub_port = settings.hub_port
    if settings.hub_connect_ip:
        c.JupyterHub.hub_connect_ip = settings.hub_connect_ip
    c.JupyterHub.cookie_secret_file = str(state_dir / "jupyterhub_cookie_secret")
    c.JupyterHub.db_url = settings.db_url or f"sqlite:///{state.private_file(state_dir / 'jupyterhub.sqlite')}"
    c.Authenticator.admin_users = set(settings.admin_users)


def proxy(c, site: Site):
    state_dir = site.hub.state_dir
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{site.hub.proxy_api_port}"
    c.ConfigurableHTTPProxy.auth_token = state.secret(state_dir / "proxy_auth_token")[0]
    c.ConfigurableHTTPProxy.pid_file = str(state_dir / "proxy.pid")
    c.ConfigurableHTTPProxy.command = [proxy_command()]


def proxy_command() -> str:
    """configurable-http-proxy beside this Python (a venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "configurable-http-proxy"
    found = str(beside) if beside.exists() else shutil.which("configurable-http-proxy")
    if not found:
        raise SiteError(["configurable-http-proxy: not found beside Python or on PATH"
                         " (install it with `npm install -g configurable-http-proxy`; scripts/up does this)"])
    return found


#: user names campushub accepts (after JupyterHub lower-cases them): they become account names,
#: folder names and arguments of batch commands, so nothing that a shell or a path reads specially
USERNAME_PATTERN = r"^[a-z0-9_][a-z0-9._@-]{0,63}\Z"


def auth(c, site: Site):
    settings = site.auth
    c.Authenticator.allow_all = True  # the SSO's required groups, or the shared password, are the gate
    c.Authenticator.username_pattern = USERNAME_PATTERN
    if isinstance(settings, RemoteUserAuth):
        remote_user(c, site)
    else:
        shared_password(c, site)


def remote_user(c, site: Site):
    settings = site.auth
    c.JupyterHub.authenticator_class = "campushub.remote_user.RemoteUserAuthenticator"
    a = c.RemoteUserAuthenticator
    for key in ("user_header", "groups_header", "groups_separator", "required_groups", "admin_groups"):
        setattr(a, key, getattr(settings, key))
    a.missing_user_redirect = settings.missing_user_redirect or ""
    a.missing_group_redirect = settings.missing_group_redirect or ""
    a.sso_logout_url = settings.logout_url or ""
    a.trusted_proxies = [str(net) for net in settings.trusted_proxies]
    if settings.proxy_secret:
        a.proxy_secret_header = settings.proxy_secret.header
        a.proxy_secret = settings.proxy_secret.read(
            "auth.proxy_secret", min_length=16, private=any(runs_code_on_hub_host(p) for p in site.profiles))
    id_token = site.id_token
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


def shared_password(c, site: Site):
    c.JupyterHub.authenticator_class = "shared-password"
    state_dir = site.hub.state_dir
    # the passwords are never printed: the hub's output ends up in journald and compose logs
    password, created = state.secret(state_dir / "shared_password", make=lambda: secrets.token_urlsafe(12))
    c.SharedPasswordAuthenticator.user_password = password
    if created:
        announce(f"made a shared password for this hub: read it with `cat {state_dir / 'shared_password'}`."
                 " Everyone who has it can sign in as any user and reach their files: this login is for one"
                 " person or a group that trusts each other (docs/authentication.md)")
    if site.hub.admin_users:
        admin, created = state.secret(state_dir / "admin_password", make=lambda: secrets.token_urlsafe(32))
        c.SharedPasswordAuthenticator.admin_password = admin
        if created:
            announce(f"admins ({', '.join(site.hub.admin_users)}) sign in with the password in"
                     f" {state_dir / 'admin_password'}")


def announce(message: str):
    print(f"campushub: {message}", file=sys.stderr, flush=True)


def profiles(c, site: Site):
    if needs_batchspawner(site):
        from .slurm import install_port_callback  # /hub/api/batchspawner, where jobs report their port

        install_port_callback()
    c.JupyterHub.spawner_class = "campushub.profiles.CampusProfilesSpawner"
    s = c.CampusProfilesSpawner
    s.profiles = [(p.name, p.slug, *spawner_for(site, i)) for i, p in enumerate(site.profiles)]
    s.default_profile = site.default_profile.slug
    s.profile_groups = {p.slug: p.groups for p in site.profiles if p.groups}
    c.JupyterHub.cleanup_servers = not has_persistent_servers(site)
    # JupyterHub waits on the wrapping spawner's timeouts, not on the profile's
    s.start_timeout = site.spawner.start_timeout
    s.http_timeout = site.spawner.http_timeout
    s.poll_interval = site.spawner.poll_interval


def culler(c, site: Site):
    settings = site.culler
    c.JupyterHub.last_activity_interval = settings.activity_interval
    if not settings.enabled:
        return
    command = [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={settings.timeout}",
               f"--cull-every={settings.every}", f"--max-age={settings.max_age}"]
    scopes = list(CULLER_SCOPES)
    if settings.users:
        command.append("--cull-users")
        scopes.append("admin:users")
    c.JupyterHub.services = [{"name": CULLER_SERVICE, "command": command}]
    c.JupyterHub.load_roles = [{"name": CULLER_ROLE, "scopes": scopes, "services": [CULLER_SERVICE]}]


SECTIONS = (hub, proxy, auth, profiles, culler)


def configure(c, site: Site):
    """Apply every section of ``site`` to the JupyterHub config object ``c``."""
    for section in SECTIONS:
        section(c, site)


def configure_from_env(c):
    """Entry point for ``jupyterhub_config.py``: the site file from $CAMPUSHUB_CONFIG or ./campushub.yaml."""
    path = config_path()
    try:
        configure(c, load_site(path))
    except SiteError as e:
        raise SystemExit(e.report(prefix=f"{path}: ")) from None

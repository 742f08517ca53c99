"""Turn a validated site file into JupyterHub's traitlets config.

This is the only place that writes to ``c``: one small function per section, applied in order
by :func:`configure`. The login and the backends add theirs through their slices.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ..auth import login_of
from ..auth.remote_user import RemoteUserAuth, id_token_of
from ..backends import accounts, backend_of, spawner_for, used
from ..ledger import page as usage_page
from ..ledger import store, totals
from ..ops import database, state
from ..sitefile.errors import Problems, StartError
from ..sitefile.fields import byte_count, read_secret
from ..sitefile.model import Site
from ..sitefile.read import config_path, load_site
from . import api, branding, collector, indexes, metrics, selectin, start_api

CULLER_SERVICE = start_api.CULLER_SERVICE
CULLER_ROLE = "jupyterhub-idle-culler-role"
#: the users the culler asks for a page: JupyterHub's most (``api_page_max_limit``), so that a hub's running servers
#: come in one answer, not in pages of the default 50, each of which waits its turn on the hub's event loop
CULLER_PAGE_SIZE = 200
#: exactly the seed deployment's scopes; deleting users (culler.users) also needs admin:users
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
#: user names campushub accepts (after JupyterHub lower-cases them): they become account names,
#: folder names and arguments of batch commands, so nothing that a shell or a path reads specially
USERNAME_PATTERN = r"^[a-z0-9_][a-z0-9._@-]{0,63}\Z"
PROFILES_SPAWNER = "campushub-profiles"
#: the proxy's API token, in the state directory
PROXY_TOKEN = "proxy_auth_token"


def hub(c, site: Site):
    settings = site.hub
    state_dir = settings.state_dir
    c.JupyterHub.bind_url = settings.bind_url
    if settings.public_url:
        c.JupyterHub.public_url = settings.public_url  # https here makes every hub cookie Secure
    c.JupyterHub.hub_ip = settings.hub_ip
    c.JupyterHub.hub_port = settings.hub_port
    if settings.hub_connect_ip:
        c.JupyterHub.hub_connect_ip = settings.hub_connect_ip
    c.JupyterHub.cookie_secret_file = str(state_dir / "jupyterhub_cookie_secret")
    c.JupyterHub.db_url = database.url_text(site)
    c.Authenticator.admin_users = set(settings.admin_users)


def proxy(c, site: Site):
    state_dir = site.hub.state_dir
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{site.hub.proxy_api_port}"
    c.ConfigurableHTTPProxy.auth_token = state.stored(state_dir / PROXY_TOKEN)
    c.ConfigurableHTTPProxy.pid_file = str(state_dir / "proxy.pid")
    c.ConfigurableHTTPProxy.command = [proxy_command()]


def proxy_command() -> str:
    """configurable-http-proxy beside this Python (a venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "configurable-http-proxy"
    found = str(beside) if beside.exists() else shutil.which("configurable-http-proxy")
    if not found:
        raise StartError(
            [
                "configurable-http-proxy: not found beside Python or on PATH"
                " (install it with `npm install -g configurable-http-proxy`; scripts/up does this)"
            ]
        )
    return found


def front_door(c, site: Site):
    """Behind the front door: the hub at the door's name and, with per-user origins, each user's server at a name
    of its own (JupyterHub's ``subdomain_host``), with ``__Host-`` cookies that no user's server can toss."""
    door = site.front_door
    if not door:
        return
    origin = door.origin
    if not site.hub.public_url:
        c.JupyterHub.public_url = origin + urlsplit(site.hub.bind_url).path  # https: every hub cookie is Secure
    if door.user_origins:
        c.JupyterHub.subdomain_host = origin
        c.JupyterHub.cookie_host_prefix_enabled = True


def logs(c, site: Site):
    """The hub's request log without the front door's secret, ID token and identity headers (JupyterHub hides
    only ``Authorization`` and ``Cookie`` when it logs a failed request's headers)."""
    auth = site.auth
    if not isinstance(auth, RemoteUserAuth):
        return
    hidden = [auth.user_header, auth.groups_header]
    hidden += [auth.proxy_secret.header] if auth.proxy_secret else []
    hidden += [token.header] if (token := id_token_of(site)) else []
    settings = c.JupyterHub.tornado_settings if "tornado_settings" in c.JupyterHub else {}
    c.JupyterHub.tornado_settings = {**settings, "log_function": api.scrubbed_log(hidden)}


def auth(c, site: Site):
    c.Authenticator.allow_all = True  # the SSO's required groups, or the shared password, are the gate
    c.Authenticator.username_pattern = USERNAME_PATTERN
    login_of(site).configure(c, site)


def profiles(c, site: Site):
    c.JupyterHub.spawner_class = PROFILES_SPAWNER
    s = c.CampusProfilesSpawner
    s.profiles = [(p.name, p.slug, *spawner_for(site, i)) for i, p in enumerate(site.profiles)]
    s.default_profile = site.default_profile.slug
    s.profile_groups = {p.slug: p.groups for p in site.profiles if p.groups}
    s.profile_cards = {p.slug: card(site, p) for p in site.profiles}
    s.profile_choices = {
        p.slug: {"backend": p.backend, "choices": p.choices.model_dump(exclude_none=True)}
        for p in site.profiles
        if p.choices is not None
    }
    s.account_profiles = [p.slug for p in site.profiles if backend_of(p).needs_account(p)]
    s.admitted_profiles = [p.slug for p in site.profiles if backend_of(p).takes_turns]
    s.profile_backends = {p.slug: p.backend for p in site.profiles}
    s.missing_account_url = getattr(site.auth, "missing_account_redirect", None) or ""
    s.request_access_url = site.branding.request_access_url or ""
    s.create_accounts = site.accounts.create
    s.account_command = site.accounts.command
    c.OwnAccount.min_uid = site.accounts.min_uid or accounts.uid_min()
    c.OwnAccount.denied_accounts = site.accounts.deny
    c.JupyterHub.cleanup_servers = not any(b.persistent for b in used(site))
    # JupyterHub waits on the wrapping spawner's timeouts, not on the profile's
    s.start_timeout = site.spawner.start_timeout
    s.http_timeout = site.spawner.http_timeout
    s.poll_interval = site.spawner.poll_interval
    s.reserve_memory = byte_count(site.spawner.reserve_memory)
    c.JupyterHub.concurrent_spawn_limit = site.spawner.concurrent_spawn_limit


def card(site: Site, profile) -> dict[str, str]:
    """What the start page says about ``profile``: its description, resources, where it runs, what it keeps, when
    it stops."""
    backend = backend_of(profile)
    culler = site.culler
    stops = [f"after {duration_words(culler.timeout)} without activity"] if culler.enabled else []
    if culler.enabled and culler.max_age:
        stops.append(f"{duration_words(culler.max_age)} after it started")
    stops += backend.stops(profile)
    stops_text = "; ".join(stops) if stops else "only when you stop it"
    return {"description": profile.description, **backend.card(site, profile), "stops": stops_text}


def duration_words(seconds: int) -> str:
    """3600 -> "1 hour", 90 -> "90 seconds": the largest unit that keeps the number whole."""
    unit, count = next(
        (u, seconds // n)
        for u, n in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
        if seconds % n == 0
    )
    return f"{count} {unit}" + ("" if count == 1 else "s")


def pages(c, site: Site):
    """The pages users see: campushub's templates over JupyterHub's, the branding, the announcement and its API."""
    settings = site.branding
    c.JupyterHub.template_paths = [branding.template_path()]
    announcement = branding.Announcement(site.hub.state_dir, settings.announcement)
    password = str(site.hub.state_dir / "shared_password") if site.auth.type == "shared_password" else ""
    c.JupyterHub.template_vars = {
        "campushub": branding.PageVars(settings, announcement, password),
        "campushub_usage": site.ledger.enabled,  # the admins' link to the usage page
    }
    tornado = c.JupyterHub.tornado_settings if "tornado_settings" in c.JupyterHub else {}
    c.JupyterHub.tornado_settings = {**tornado, "campushub_announcement": announcement}
    if settings.logo:
        c.JupyterHub.logo_file = str(settings.logo)


def ledger(c, site: Site):
    """The sessions ledger: recorded by the profiles spawner, shown to admins at ``/hub/campushub/usage``."""
    c.CampusProfilesSpawner.ledger = site.ledger.enabled
    if site.ledger.enabled:
        handlers = c.JupyterHub.extra_handlers if "extra_handlers" in c.JupyterHub else []
        c.JupyterHub.extra_handlers = [*handlers, *usage_page.HANDLERS]


def culler(c, site: Site):
    settings = site.culler
    c.JupyterHub.last_activity_interval = settings.activity_interval
    if not settings.enabled:
        return
    command = [
        sys.executable,
        "-m",
        "campushub.hub.culler",  # jupyterhub_idle_culler, ending at once when the hub stops it
        f"--timeout={settings.timeout}",
        f"--cull-every={settings.every}",
        f"--max-age={settings.max_age}",
        f"--api-page-size={CULLER_PAGE_SIZE}",
    ]
    scopes = list(CULLER_SCOPES)
    if settings.users:
        command.append("--cull-users")
        scopes.append("admin:users")
    c.JupyterHub.services = [{"name": CULLER_SERVICE, "command": command}]
    c.JupyterHub.load_roles = [{"name": CULLER_ROLE, "scopes": scopes, "services": [CULLER_SERVICE]}]


def prometheus(c, site: Site):
    """``metrics``: a service with only the ``read:metrics`` scope, whose token Prometheus sends."""
    settings = site.metrics
    if not settings.enabled or settings.token is None:  # the model refuses enabled without a token
        return
    hub = c.JupyterHub
    hub.authenticate_prometheus = True
    token = read_secret(settings.token, "metrics.token", min_length=16)
    # after the culler's: add to its service and role
    hub.services = [*(hub.services if "services" in hub else []), {"name": metrics.SERVICE, "api_token": token}]
    role = {"name": metrics.ROLE, "scopes": metrics.SCOPES, "services": [metrics.SERVICE]}
    hub.load_roles = [*(hub.load_roles if "load_roles" in hub else []), role]


def extra_config(c, site: Site):
    """``hub.extra_config_dir``: the site's own ``*.py`` files, in name order, after everything above."""
    folder = site.hub.extra_config_dir
    if not folder:
        return
    if not folder.is_dir():
        raise StartError([f"hub.extra_config_dir: {folder} is not a folder"])
    for path in sorted(folder.glob("*.py")):
        exec(compile(path.read_text(), str(path), "exec"), {"c": c, "__file__": str(path)})  # noqa: S102


SECTIONS = (hub, proxy, front_door, logs, auth, profiles, pages, ledger, culler, prometheus, extra_config)


def configure(c, site: Site, extra: bool = True):
    """Apply every section of ``site`` to the JupyterHub config object ``c``.

    ``extra=False`` leaves out the site's own config files (``campushub up`` checks the rest
    before it starts the hub, which then runs them once).
    """
    for section in SECTIONS:
        if extra or section is not extra_config:
            section(c, site)


def named_classes(site: Site) -> list[tuple[str, str, str]]:
    """(site-file field, entry point group, class name) of every class the config names."""
    found = [
        ("auth.type", "jupyterhub.authenticators", login_of(site).authenticator_class),
        ("profiles", "jupyterhub.spawners", PROFILES_SPAWNER),
    ]
    return found + [
        (f"profiles.{i}.backend", "jupyterhub.spawners", backend_of(p).spawner_class(p))
        for i, p in enumerate(site.profiles)
    ]


def class_problems(site: Site) -> list[str]:
    """Classes the config names that cannot be loaded (a missing package, a typo), found before any start."""
    from jupyterhub.traitlets import EntryPointType
    from traitlets import TraitError

    found = []
    for where, group, name in named_classes(site):
        try:
            EntryPointType(entry_point_group=group).validate(None, name)
        except TraitError as e:
            found.append(f"{where}: cannot load {name}: {str(e).splitlines()[0]}")
    return found


def install(site: Site):
    """What the hub's own process does before its config is read, and ``campushub up``'s check of the config
    (:func:`configure` alone) never does: make the state directory and the secrets kept there (the proxy's token, a
    login's passwords) and the SQLite file, private; index JupyterHub's tables where it does not
    (:mod:`campushub.hub.indexes`); make or check the sessions ledger (closing what a stopped hub
    left open, pruning old rows daily); serve campushub's API handlers; declare its metrics for every profile; warm
    the backends up; refuse request bodies over :data:`campushub.hub.api.MAX_BODY_BYTES`; make the hub's garbage
    collections fewer and shorter (:mod:`campushub.hub.collector`) and its lookups of users it holds one query
    (:mod:`campushub.hub.selectin`)."""
    state_dir = state.prepare(site.hub.state_dir)
    state.secret(state_dir / PROXY_TOKEN)
    login_of(site).prepare(site)
    database.prepare(site)
    for line in [*indexes.prepare(site), *store.prepare(site)]:
        print(f"campushub: {line}", file=sys.stderr, flush=True)
    if site.ledger.enabled:
        totals.register(database.url(site))
        store.prune_daily(site)
    start_api.install()  # start requests judged before JupyterHub keeps them
    api.register(branding.API_PATH, branding.AnnouncementHandler)
    metrics.declare({p.slug: p.backend for p in site.profiles})
    for backend in used(site):
        backend.install(site)
    api.limit_bodies()
    collector.tune()
    selectin.skip_loaded()


def configure_from_env(c):
    """Entry point for ``jupyterhub_config.py``: the site file from $CAMPUSHUB_CONFIG or ./campushub.yaml, read
    once."""
    path = config_path()
    try:
        site = load_site(path)
        install(site)
        configure(c, site)
    except Problems as e:
        for problem in e.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        raise SystemExit(2) from None

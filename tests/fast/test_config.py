"""The config campushub writes for JupyterHub, from site files, in seconds and without services.

One small test per section (as TLJH's configurer tests), and one that changes every field of
the site file in turn and checks that the config (or the front door's Apache config) changes:
a new field without an effect, or without a line here, fails.
"""

from __future__ import annotations

import copy
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel
from traitlets.config import Config

from campushub.auth import LOGINS
from campushub.backends import BACKENDS
from campushub.backends.base import ProfileBase
from campushub.hub import configurer
from campushub.ledger import store
from campushub.ops import frontdoor, state
from campushub.sitefile.model import Site
from campushub.sitefile.read import ENV_OVERRIDES, load_site
from harness import EMBEDDED, GROUP, PROXY_SECRET, SECRET_ENV, base_site

CLIENT_ENV = "CAMPUSHUB_TEST_CLIENT_SECRET"
OIDC = {
    "metadata_url": "https://idp.example.edu/.well-known/openid-configuration",
    "client_id": "campushub",
    "client_secret": {"env": CLIENT_ENV},
}


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    """The secrets the sites read, and none of the seed's variables that would override them.

    Also: the local backend refuses to map servers run as the hub's own account when the hub
    is root (CI runs as root); that refusal is tested for real in tests/services/test_up.py, so
    here the hub's account is made to look unprivileged to see the mapping itself.
    """
    monkeypatch.setenv(SECRET_ENV, PROXY_SECRET)
    monkeypatch.setenv(CLIENT_ENV, "client-secret-0123456789")
    monkeypatch.setenv("OTHER_SECRET", "another-secret-0123456789")
    for variable in ENV_OVERRIDES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr("campushub.backends.local.os.geteuid", lambda: 1000)


@pytest.fixture
def observe(tmp_path):
    """``observe(site)``: the JupyterHub config, and the front door's files, that ``site`` makes."""
    count = iter(range(10_000))

    def run(site: dict) -> dict:
        folder = tmp_path / str(next(count))
        folder.mkdir()
        (folder / "site.yaml").write_text(yaml.safe_dump(site))
        loaded = load_site(folder / "site.yaml")
        loaded.hub.state_dir = tmp_path / "state"  # the same paths everywhere, unless the site moves them
        if site.get("hub", {}).get("state_dir"):
            loaded.hub.state_dir = tmp_path / site["hub"]["state_dir"]
        c = Config()
        configurer.configure(c, loaded)
        seen = {"config": repr(sorted(_plain(c).items())), "ledger": store.retention(loaded)}
        if loaded.front_door:
            out = tmp_path / "door"
            out.mkdir(exist_ok=True)
            (out / "oidc_passphrase").write_text("fixed-passphrase\n")
            frontdoor.write(loaded, out, "/etc/campushub/frontdoor")
            seen["door"] = {p.name: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
        return seen

    return run


def _plain(config) -> dict:
    return {k: _plain(v) if isinstance(v, Config) else repr(v) for k, v in config.items()}


# --------------------------------------------------------------- one test per section


def test_hub_section(observe, tmp_path):
    c = config_of(
        base_site(
            hub={
                "bind_url": "http://127.0.0.1:900",
                "public_url": "https://hub.example.edu/",
                "hub_ip": "0.0.0.0",
                "hub_port": 901,
                "admin_users": ["ada"],
            }
        ),
        tmp_path,
    )
    assert c.JupyterHub.bind_url == "http://127.0.0.1:900"
    assert c.JupyterHub.public_url == "https://hub.example.edu/"
    assert (c.JupyterHub.hub_ip, c.JupyterHub.hub_port) == ("0.0.0.0", 901)
    assert c.Authenticator.admin_users == {"ada"}
    assert c.JupyterHub.db_url.startswith("sqlite:///") and c.JupyterHub.db_url.endswith("/jupyterhub.sqlite")


def test_remote_user_section_and_id_token_from_the_front_door(tmp_path):
    site = base_site(front_door={"oidc": OIDC})
    c = config_of(site, tmp_path)
    a = c.CampusRemoteUserAuthenticator
    assert c.JupyterHub.authenticator_class == "campushub-remote-user"
    assert (a.user_header, a.groups_header, a.required_groups) == ("Cn", "isMemberOf", [GROUP])
    assert a.proxy_secret == PROXY_SECRET and a.trusted_proxies == ["127.0.0.1/32", "::1/128"]
    assert (a.id_token_metadata_url, a.id_token_audience) == (OIDC["metadata_url"], "campushub")
    assert c.Authenticator.username_pattern == configurer.USERNAME_PATTERN


def test_shared_password_section(tmp_path):
    c = config_of(EMBEDDED, tmp_path, hub_process=True)
    assert c.JupyterHub.authenticator_class == "shared-password"
    password = tmp_path / "state" / "shared_password"
    assert c.SharedPasswordAuthenticator.user_password == password.read_text().strip()
    assert password.stat().st_mode & 0o777 == 0o600


def test_the_check_of_the_config_makes_and_registers_nothing(tmp_path):
    """``campushub up`` configures once to find problems before it starts the hub: that pass writes no state and
    no secret, and changes nothing in the process; the hub's own process (``install``) does."""
    from jupyterhub import apihandlers
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from campushub.hub import metrics, selectin

    def skipping() -> bool:
        return event.contains(Session, "do_orm_execute", selectin._answer_loaded)

    handlers, profiles, skipped = list(apihandlers.default_handlers), dict(metrics.PROFILES), skipping()
    site = base_site(
        profiles=[{"slug": "s", "name": "S", "backend": "slurm"}],
        metrics={"enabled": True, "token": {"env": "OTHER_SECRET"}},
    )
    c = config_of(site, tmp_path)
    assert not (tmp_path / "state").exists()
    assert c.ConfigurableHTTPProxy.auth_token == state.NOT_MADE_YET
    assert apihandlers.default_handlers == handlers and profiles == metrics.PROFILES and skipping() == skipped
    c = config_of(site, tmp_path, hub_process=True)
    assert skipping()  # the hub's lookups of users it holds: one query (campushub.hub.selectin)
    token = (tmp_path / "state" / configurer.PROXY_TOKEN).read_text().strip()
    assert c.ConfigurableHTTPProxy.auth_token == token and len(token) == 64
    assert (tmp_path / "state" / "jupyterhub.sqlite").stat().st_mode & 0o777 == 0o600
    assert metrics.PROFILES == {"s": "slurm"}


def test_profiles_section_merges_shared_settings_and_passes_timeouts(tmp_path):
    site = base_site(
        spawner={"start_timeout": 301, "http_timeout": 302, "environment": {"A": "site", "B": "site"}},
        profiles=[
            {"slug": "me", "name": "Me", "backend": "local", "system_users": True, "environment": {"B": "profile"}}
        ],
    )
    c = config_of(site, tmp_path)
    s = c.CampusProfilesSpawner
    assert c.JupyterHub.spawner_class == "campushub-profiles"
    assert (s.start_timeout, s.http_timeout) == (301, 302)
    ((name, slug, spawner, settings),) = s.profiles
    assert (name, slug, spawner) == ("Me", "me", "campushub.backends.local.spawner.CampusLocalSpawner")
    assert settings["fast_start"] is True and settings["cmd"][0].endswith("/campushub-singleuser")
    assert settings["share_identical_pages"] is False  # on only where the site asks (the side channel it opens)
    assert settings["environment"] == {
        "JUPYTERHUB_ACTIVITY_INTERVAL": "300",
        "CAMPUSHUB_WARM_KERNELS": "1",  # a server started without a kernel parent forks one (fast_start)
        "A": "site",
        "B": "profile",
    }
    assert c.JupyterHub.cleanup_servers is True


def test_slurm_profiles_keep_servers_and_replace_the_port_callback(tmp_path):
    from jupyterhub import apihandlers

    from campushub.backends.slurm.spawner import CALLBACK_PATH, PortCallbackHandler

    c = config_of(
        base_site(profiles=[{"slug": "s", "name": "S", "backend": "slurm", "cpu": 1.5, "memory": "1G"}]),
        tmp_path,
        hub_process=True,
    )
    ((_name, _slug, spawner, settings),) = c.CampusProfilesSpawner.profiles
    assert spawner == "campushub.backends.slurm.spawner.CampusSlurmSpawner"
    assert (settings["req_nprocs"], settings["req_memory"]) == ("2", "1024M")
    assert (settings["cpu_limit"], settings["mem_limit"]) == (2, "1G")  # what the resource meter shows
    assert c.JupyterHub.cleanup_servers is False
    routes = [h[1:] for h in apihandlers.default_handlers if h[0] == CALLBACK_PATH]
    # the hub's own ports (guarded: below 1024) are never a job's
    assert routes == [(PortCallbackHandler, {"reserved": [880, 881, 882]})], routes


def test_jobs_report_their_own_port_only_where_the_nodes_campushub_can(tmp_path):
    """The nodes' environment decides: campushub-singleuser that has job_port reports itself; an older one, or
    jupyterhub-singleuser alone, goes through batchspawner-singleuser (a job would otherwise never report)."""
    from campushub.backends.slurm import BIN, reports_own_port
    from campushub.server.job_port import REPORT_PORT

    def job_settings(python_bin):
        site = base_site(profiles=[{"slug": "s", "name": "S", "backend": "slurm"}])
        site["slurm"] = {"python_bin": str(python_bin)} if python_bin else {}
        ((_name, _slug, _spawner, settings),) = config_of(site, tmp_path).CampusProfilesSpawner.profiles
        return settings["cmd"][0], settings["batchspawner_singleuser_cmd"], settings["environment"].get(REPORT_PORT)

    assert job_settings(None) == (f"{BIN}/campushub-singleuser", "", "1")
    older = tmp_path / "older" / "bin"  # a campushub from before job_port: its python cannot import it
    older.mkdir(parents=True)
    for name, code in (("campushub-singleuser", 0), ("python", 1)):
        (older / name).write_text(f"#!/bin/sh\nexit {code}\n")
        (older / name).chmod(0o755)
    assert job_settings(older) == (f"{older}/campushub-singleuser", f"{older}/batchspawner-singleuser", None)
    (older / "python").write_text("#!/bin/sh\nexit 0\n")  # upgraded: it can
    reports_own_port.cache_clear()
    assert job_settings(older) == (f"{older}/campushub-singleuser", "", "1")
    bare = tmp_path / "bare" / "bin"  # no campushub on the nodes at all
    bare.mkdir(parents=True)
    assert job_settings(bare) == (f"{bare}/jupyterhub-singleuser", f"{bare}/batchspawner-singleuser", None)


def test_culler_role_has_exactly_the_seed_scopes(tmp_path):
    c = config_of(base_site(culler={"timeout": 3600}), tmp_path)
    assert c.JupyterHub.load_roles == [
        {
            "name": configurer.CULLER_ROLE,
            "services": [configurer.CULLER_SERVICE],
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        }
    ]
    assert "--timeout=3600" in c.JupyterHub.services[0]["command"]
    assert "--api-page-size=200" in c.JupyterHub.services[0]["command"]  # one page for up to 200 running servers
    assert c.JupyterHub.last_activity_interval == 300


def test_culling_users_adds_only_the_scope_it_needs(tmp_path):
    c = config_of(base_site(culler={"users": True, "every": 60}), tmp_path)
    assert c.JupyterHub.load_roles[0]["scopes"] == [*configurer.CULLER_SCOPES, "admin:users"]
    assert "--cull-users" in c.JupyterHub.services[0]["command"]
    assert c.JupyterHub.last_activity_interval == 60


def test_metrics_service_has_only_read_metrics_and_the_declared_token(tmp_path):
    from campushub.hub import metrics

    site = base_site(culler={"timeout": 3600}, metrics={"enabled": True, "token": {"env": "OTHER_SECRET"}})
    c = config_of(site, tmp_path, hub_process=True)
    assert c.JupyterHub.authenticate_prometheus is True
    # the culler's service and role stay; the metrics service has its token and one scope
    assert [s["name"] for s in c.JupyterHub.services] == [configurer.CULLER_SERVICE, metrics.SERVICE]
    assert c.JupyterHub.services[1] == {"name": metrics.SERVICE, "api_token": "another-secret-0123456789"}
    assert c.JupyterHub.load_roles[1] == {
        "name": metrics.ROLE,
        "scopes": ["read:metrics"],
        "services": [metrics.SERVICE],
    }
    # without the culler, the metrics service is the only one
    c = config_of({**site, "culler": {"enabled": False}}, tmp_path)
    assert [s["name"] for s in c.JupyterHub.services] == [metrics.SERVICE]
    assert [r["name"] for r in c.JupyterHub.load_roles] == [metrics.ROLE]
    # the spawner labels its series with each profile's backend, and they exist before the first start
    assert c.CampusProfilesSpawner.profile_backends == {"local": "local"}
    assert metrics.PROFILES == {"local": "local"}


def test_metrics_disabled_adds_no_service_and_a_short_token_stops_the_start(tmp_path, monkeypatch):
    from campushub.sitefile.errors import SiteError

    c = config_of(base_site(metrics={"token": {"env": "OTHER_SECRET"}}), tmp_path)
    assert "services" not in c.JupyterHub and "authenticate_prometheus" not in c.JupyterHub
    monkeypatch.setenv("OTHER_SECRET", "short")
    with pytest.raises(SiteError) as e:
        config_of(base_site(metrics={"enabled": True, "token": {"env": "OTHER_SECRET"}}), tmp_path)
    assert e.value.problems == ["metrics.token.env: the secret is shorter than 16 characters"]


def test_extra_config_files_run_last_in_name_order(tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "20-later.py").write_text("c.JupyterHub.hub_port = 9200\n")
    (extra / "10-first.py").write_text("c.JupyterHub.hub_port = 9100\nc.JupyterHub.tornado_settings = {'x': 1}\n")
    (extra / "notes.txt").write_text("c.JupyterHub.hub_port = 1\n")
    c = config_of(base_site(hub={"extra_config_dir": str(extra)}), tmp_path)
    assert c.JupyterHub.hub_port == 9200 and c.JupyterHub.tornado_settings == {"x": 1}


def test_every_class_the_config_names_loads(tmp_path):
    """Entry points and dotted names, for every login and backend: a typo fails here, not at start."""
    from jupyterhub.traitlets import EntryPointType

    sites = [
        EMBEDDED,
        base_site(),
        base_site(
            profiles=[
                {"slug": b.name, "name": b.name, "backend": b.name, "image": "x"}
                if b.name == "container"
                else {"slug": b.name, "name": b.name, "backend": b.name, "system_users": True}
                if b.name == "local"
                else {"slug": b.name, "name": b.name, "backend": b.name}
                for b in BACKENDS.values()
            ]
        ),
    ]
    for site in sites:
        loaded = load_site(write(site, tmp_path))
        assert configurer.class_problems(loaded) == []
        c = config_of(site, tmp_path)
        for name, group in (
            (c.JupyterHub.authenticator_class, "jupyterhub.authenticators"),
            (c.JupyterHub.spawner_class, "jupyterhub.spawners"),
        ):
            EntryPointType(entry_point_group=group).validate(None, name)
        for _name, _slug, spawner, _settings in c.CampusProfilesSpawner.profiles:
            EntryPointType(entry_point_group="jupyterhub.spawners").validate(None, spawner)


def test_a_class_that_cannot_load_is_named_by_check(tmp_path, monkeypatch):
    monkeypatch.setattr(BACKENDS["slurm"], "spawner_class", lambda profile: "campushub.backends.slurm.NoSuch")
    loaded = load_site(write(base_site(profiles=[{"slug": "s", "name": "S", "backend": "slurm"}]), tmp_path))
    problems = configurer.class_problems(loaded)
    assert len(problems) == 1 and problems[0].startswith(
        "profiles.0.backend: cannot load campushub.backends.slurm.NoSuch: "
    ), problems


def write(site: dict, tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site))
    return path


def config_of(site: dict, tmp_path: Path, hub_process: bool = False) -> Config:
    """The config ``site`` makes; with ``hub_process``, after what only the hub's own process does first."""
    loaded = load_site(write(site, tmp_path))
    if hub_process:
        configurer.install(loaded)
    c = Config()
    configurer.configure(c, loaded)
    return c


# --------------------------------------------------------------- every field has an effect


def leaf_paths() -> set[str]:
    """Every settable key of the site file: ``section.key``, ``auth[type].key``, ``profiles[backend].key``."""
    paths = set()
    for name, field in Site.model_fields.items():
        if name == "auth":
            for login in LOGINS.values():
                paths |= _leaves(login.settings, f"auth[{login.name}]")
        elif name == "profiles":
            paths |= _leaves(ProfileBase, "profiles")
            for backend in BACKENDS.values():
                paths |= {
                    p
                    for p in _leaves(backend.profile, f"profiles[{backend.name}]")
                    if p.split(".")[1] not in ProfileBase.model_fields
                }
        else:
            paths |= _leaves(_model(field.annotation), name)
    return paths


def _model(annotation):
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _leaves(model: type[BaseModel], prefix: str) -> set[str]:
    paths = set()
    for name, field in model.model_fields.items():
        if name in ("type", "backend"):
            continue
        inner = _model(field.annotation)
        paths |= _leaves(inner, f"{prefix}.{name}") if inner else {f"{prefix}.{name}"}
    return paths


def put(site: dict, path: str, value):
    """Set ``path`` (dots; ``profiles.0`` for the first profile) in ``site``; ``None`` removes the key."""
    *parents, last = path.split(".")
    node = site
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value


#: the certificate's files are named, as other files, by placeholders that each test resolves (``_files``)
DOOR_CERTIFICATE = {"source": "file", "cert": "SIGNER", "key": "SIGNER_KEY"}
DOOR = base_site(front_door={"oidc": OIDC, "certificate": DOOR_CERTIFICATE})
SAML = {"idp_entity_id": "https://idp.example.edu/idp/shibboleth", "idp_metadata_file": "IDP_METADATA"}
SAML_DOOR = base_site(front_door={"saml": SAML, "certificate": DOOR_CERTIFICATE})
#: the SAML door that fetches the IdP's metadata (a change must name keys after "CHANGE": before it, a key only sets
#: the starting point, and a key can be in a dict only once)
SAML_BY_URL = base_site(
    front_door={
        "saml": {
            "idp_entity_id": SAML["idp_entity_id"],
            "idp_metadata_url": "https://md.example.org/entities/idp",
            "idp_metadata_certificate": "SIGNER",
        },
        "certificate": DOOR_CERTIFICATE,
    }
)
NUMBER = {"min": 1, "max": 4, "default": 2, "step": 1}
SIZE = {"min": "1G", "max": "8G", "default": "2G", "step": "1G"}
CHOOSING = {
    "local": base_site(
        profiles=[
            {
                "slug": "l",
                "name": "L",
                "backend": "local",
                "system_users": True,
                "choices": {"cpu": NUMBER, "memory": SIZE},
            }
        ]
    ),
    "container": base_site(
        profiles=[
            {
                "slug": "c",
                "name": "C",
                "backend": "container",
                "choices": {
                    "image": {"options": ["localhost/lab:1", "localhost/lab:2"], "default": "localhost/lab:1"},
                    "cpu": NUMBER,
                    "memory": SIZE,
                },
            }
        ]
    ),
    "slurm": base_site(
        profiles=[
            {
                "slug": "s",
                "name": "S",
                "backend": "slurm",
                "choices": {
                    "runtime": {"min": "00:15:00", "max": "08:00:00", "default": "01:00:00", "step": "00:15:00"},
                    "cpu": {"min": 1, "max": 4, "default": 2},
                    "memory": SIZE,
                    "gpus": {"min": 0, "max": 2, "default": 1},
                    "partition": {"options": ["campus", "gpu"], "default": "campus"},
                    "account": {"options": ["crc", "teach"], "default": "crc"},
                    "qos": {"options": "user"},
                },
            }
        ]
    ),
}
#: a different, still valid, value for each key of each kind of choice
CHOICE_CHANGES = {
    "cpu": {"min": 2, "max": 3, "default": 3, "step": 0.5},
    "memory": {"min": "2G", "max": "16G", "default": "4G", "step": "512M"},
    "runtime": {"min": "00:30:00", "max": "12:00:00", "default": "02:00:00", "step": "00:05:00"},
    "gpus": {"min": 1, "max": 1, "default": 2},
    "image": {"options": ["localhost/lab:3"], "default": "localhost/lab:2"},
    "partition": {"options": ["campus"], "default": "gpu"},
    "account": {"options": "user", "default": "teach"},
    "qos": {"options": ["normal"], "default": None},
}
LOCAL = base_site()
EMBEDDED_LOCAL = copy.deepcopy(EMBEDDED)
CONTAINER = base_site(profiles=[{"slug": "c", "name": "C", "backend": "container", "image": "localhost/lab:1"}])
SLURM = base_site(profiles=[{"slug": "s", "name": "S", "backend": "slurm"}])
TWO = base_site(
    profiles=[
        {"slug": "a", "name": "A", "backend": "local", "system_users": True},
        {"slug": "b", "name": "B", "backend": "local", "system_users": True},
    ]
)
ID_TOKEN = base_site()
ID_TOKEN["auth"]["id_token"] = {"metadata_url": "https://idp.example.edu/.well-known/x", "client_id": "hub"}

#: for every field: the site to start from, and the change (path: new value); the change must show
CHANGES = {
    "hub.bind_url": (LOCAL, {"hub.bind_url": "http://127.0.0.1:900"}),
    "hub.public_url": (LOCAL, {"hub.public_url": "https://hub.example.edu/"}),
    "hub.hub_ip": (LOCAL, {"hub.hub_ip": "0.0.0.0"}),
    "hub.hub_port": (LOCAL, {"hub.hub_port": 901}),
    "hub.hub_connect_ip": (LOCAL, {"hub.hub_connect_ip": "10.0.0.2"}),
    "hub.proxy_api_port": (LOCAL, {"hub.proxy_api_port": 902}),
    "hub.state_dir": (LOCAL, {"hub.state_dir": "elsewhere"}),
    "hub.db_url": (LOCAL, {"hub.db_url": "postgresql://hub@db/hub"}),
    "hub.db_password.env": (
        LOCAL,
        {"hub.db_url": "postgresql://hub@db/hub", "CHANGE": None, "hub.db_password": {"env": "OTHER_SECRET"}},
    ),
    "hub.db_password.file": (
        LOCAL,
        {"hub.db_url": "postgresql://hub@db/hub", "CHANGE": None, "hub.db_password": {"file": "SECRET_FILE"}},
    ),
    "hub.admin_users": (LOCAL, {"hub.admin_users": ["ada"]}),
    "hub.extra_config_dir": (LOCAL, {"hub.extra_config_dir": "EXTRA"}),
    "auth[remote_user].user_header": (LOCAL, {"auth.user_header": "X-User"}),
    "auth[remote_user].groups_header": (LOCAL, {"auth.groups_header": "X-Groups"}),
    "auth[remote_user].groups_separator": (LOCAL, {"auth.groups_separator": ","}),
    "auth[remote_user].required_groups": (LOCAL, {"auth.required_groups": ["other"]}),
    "auth[remote_user].admin_groups": (LOCAL, {"auth.admin_groups": ["other-admins"]}),
    "auth[remote_user].missing_user_redirect": (LOCAL, {"auth.missing_user_redirect": "https://x.edu/u"}),
    "auth[remote_user].missing_group_redirect": (LOCAL, {"auth.missing_group_redirect": "https://x.edu/g"}),
    "auth[remote_user].logout_url": (LOCAL, {"auth.logout_url": "https://x.edu/logout"}),
    "auth[remote_user].missing_account_redirect": (LOCAL, {"auth.missing_account_redirect": "https://x.edu/a"}),
    "accounts.create": (LOCAL, {"accounts.create": True}),
    "accounts.command": (LOCAL, {"accounts.command": ["adduser", "--disabled-password"]}),
    "accounts.min_uid": (LOCAL, {"accounts.min_uid": 5000}),
    "accounts.deny": (LOCAL, {"accounts.deny": ["root", "guest"]}),
    "auth[remote_user].trusted_proxies": (LOCAL, {"auth.trusted_proxies": ["10.0.0.3/32"]}),
    "auth[remote_user].proxy_secret.env": (LOCAL, {"auth.proxy_secret.env": "OTHER_SECRET"}),
    "auth[remote_user].proxy_secret.file": (LOCAL, {"auth.proxy_secret": {"file": "SECRET_FILE"}}),
    "auth[remote_user].proxy_secret.header": (LOCAL, {"auth.proxy_secret.header": "X-Door"}),
    "auth[remote_user].id_token.metadata_url": (ID_TOKEN, {"auth.id_token.metadata_url": "https://b.edu/x"}),
    "auth[remote_user].id_token.client_id": (ID_TOKEN, {"auth.id_token.client_id": "other"}),
    "auth[remote_user].id_token.header": (ID_TOKEN, {"auth.id_token.header": "X-Token"}),
    "auth[remote_user].id_token.user_claim": (ID_TOKEN, {"auth.id_token.user_claim": "sub"}),
    "auth[remote_user].id_token.groups_claim": (ID_TOKEN, {"auth.id_token.groups_claim": "roles"}),
    "auth[remote_user].refresh_seconds": (LOCAL, {"auth.refresh_seconds": 5}),
    "spawner.default_url": (LOCAL, {"spawner.default_url": "/tree"}),
    "spawner.notebook_dir": (LOCAL, {"spawner.notebook_dir": "~/work"}),
    "spawner.start_timeout": (LOCAL, {"spawner.start_timeout": 5}),
    "spawner.http_timeout": (LOCAL, {"spawner.http_timeout": 5}),
    "spawner.poll_interval": (LOCAL, {"spawner.poll_interval": 5}),
    "spawner.environment": (LOCAL, {"spawner.environment": {"A": "1"}}),
    "spawner.concurrent_spawn_limit": (LOCAL, {"spawner.concurrent_spawn_limit": 50}),
    "spawner.reserve_memory": (LOCAL, {"spawner.reserve_memory": "4G"}),
    "front_door.server_name": (DOOR, {"front_door.certificate": {}, "CHANGE": None, "front_door.server_name": "x.edu"}),
    "front_door.user_origins": (DOOR, {"front_door.user_origins": False}),
    "front_door.address": (DOOR, {"front_door.address": "0.0.0.0"}),
    "front_door.http_port": (DOOR, {"front_door.http_port": 8080}),
    "front_door.https_port": (DOOR, {"front_door.https_port": 8443}),
    "front_door.upstream": (DOOR, {"front_door.upstream": "http://10.89.78.2:8000"}),
    "front_door.certificate.source": (
        DOOR,
        {"front_door.certificate": {"source": "acme", "acme_email": "a@b.c", "acme_dns01_command": "/bin/true"}},
    ),
    "front_door.certificate.cert": (DOOR, {"front_door.certificate.cert": "OTHER_CERT"}),
    "front_door.certificate.key": (DOOR, {"front_door.certificate.key": "OTHER_KEY"}),
    "front_door.certificate.acme_email": (
        DOOR,
        {
            "front_door.certificate": {"source": "acme", "acme_email": "a@b.c", "acme_dns01_command": "/bin/true"},
            "CHANGE": None,
            "front_door.certificate.acme_email": "x@y.z",
        },
    ),
    "front_door.certificate.acme_dns01_command": (
        DOOR,
        {
            "front_door.certificate": {"source": "acme", "acme_email": "a@b.c", "acme_dns01_command": "/bin/true"},
            "CHANGE": None,
            "front_door.certificate.acme_dns01_command": "/usr/local/bin/dns01",
        },
    ),
    "front_door.certificate.acme_staging": (
        DOOR,
        {
            "front_door.certificate": {"source": "acme", "acme_email": "a@b.c", "acme_dns01_command": "/bin/true"},
            "CHANGE": None,
            "front_door.certificate.acme_staging": False,
        },
    ),
    "front_door.oidc.metadata_url": (DOOR, {"front_door.oidc.metadata_url": "https://b.edu/.well-known/x"}),
    "front_door.oidc.client_id": (DOOR, {"front_door.oidc.client_id": "other"}),
    "front_door.oidc.client_secret.env": (DOOR, {"front_door.oidc.client_secret.env": "OTHER_SECRET"}),
    "front_door.oidc.client_secret.file": (DOOR, {"front_door.oidc.client_secret": {"file": "SECRET_FILE"}}),
    "front_door.oidc.scopes": (DOOR, {"front_door.oidc.scopes": "openid"}),
    "front_door.oidc.user_claim": (DOOR, {"front_door.oidc.user_claim": "sub"}),
    "front_door.oidc.groups_claim": (DOOR, {"front_door.oidc.groups_claim": "roles"}),
    "front_door.oidc.redirect_path": (DOOR, {"front_door.oidc.redirect_path": "/callback"}),
    "front_door.oidc.logout_to": (DOOR, {"front_door.oidc.logout_to": "https://x.edu/bye"}),
    "front_door.saml.idp_entity_id": (SAML_DOOR, {"front_door.saml.idp_entity_id": "https://other.edu/idp"}),
    "front_door.saml.idp_metadata_file": (SAML_DOOR, {"front_door.saml.idp_metadata_file": "OTHER_METADATA"}),
    "front_door.saml.idp_metadata_url": (
        SAML_BY_URL,
        {"front_door.saml.idp_metadata_url": "https://md.example.org/entities/other"},
    ),
    "front_door.saml.idp_metadata_certificate": (
        SAML_BY_URL,
        {"front_door.saml.idp_metadata_certificate": "OTHER_CERT"},
    ),
    "front_door.saml.entity_id": (SAML_DOOR, {"front_door.saml.entity_id": "https://hub.example.edu/sp"}),
    "front_door.saml.user_attribute": (SAML_DOOR, {"front_door.saml.user_attribute": "eppn"}),
    "front_door.saml.groups_attribute": (SAML_DOOR, {"front_door.saml.groups_attribute": "entitlement"}),
    "front_door.saml.single_logout": (SAML_DOOR, {"front_door.saml.single_logout": True}),
    "profiles.slug": (LOCAL, {"profiles.0.slug": "other"}),
    "profiles.name": (LOCAL, {"profiles.0.name": "Other"}),
    "profiles.description": (LOCAL, {"profiles.0.description": "For teaching"}),
    "profiles.cpu": (LOCAL, {"profiles.0.cpu": 2}),
    "profiles.memory": (LOCAL, {"profiles.0.memory": "2G"}),
    "profiles.environment": (LOCAL, {"profiles.0.environment": {"A": "1"}}),
    "profiles.groups": (TWO, {"profiles.1.groups": ["staff"]}),
    "profiles.default": (TWO, {"profiles.1.default": True}),
    "profiles.fast_start": (CONTAINER, {"profiles.0.fast_start": False}),
    "profiles[local].system_users": (EMBEDDED_LOCAL, {"profiles.0.system_users": True, "auth": base_site()["auth"]}),
    "profiles[local].share_identical_pages": (LOCAL, {"profiles.0.share_identical_pages": True}),
    "profiles[container].image": (CONTAINER, {"profiles.0.image": "localhost/lab:2"}),
    "profiles[container].network": (CONTAINER, {"profiles.0.network": "campushub"}),
    "profiles[container].notebook_dir": (CONTAINER, {"profiles.0.notebook_dir": "/data"}),
    "profiles[container].volumes": (CONTAINER, {"profiles.0.volumes": {"shared": "/shared"}}),
    "profiles[container].gpus": (CONTAINER, {"profiles.0.gpus": 1}),
    "profiles[slurm].partition": (SLURM, {"profiles.0.partition": "gpu"}),
    "profiles[slurm].runtime": (SLURM, {"profiles.0.runtime": "01:00:00"}),
    "profiles[slurm].gres": (SLURM, {"profiles.0.gres": "gpu:1"}),
    "profiles[slurm].cluster": (SLURM, {"profiles.0.cluster": "teach"}),
    "profiles[slurm].account": (SLURM, {"profiles.0.account": "crc"}),
    "profiles[slurm].qos": (SLURM, {"profiles.0.qos": "short"}),
    "profiles[slurm].options": (SLURM, {"profiles.0.options": ["--constraint=a100"]}),
    "profiles[slurm].prologue": (SLURM, {"profiles.0.prologue": "module load cuda"}),
    "profiles[slurm].epilogue": (SLURM, {"profiles.0.epilogue": "echo done"}),
    "culler.enabled": (LOCAL, {"culler.enabled": True}),
    "culler.timeout": ({**LOCAL, "culler": {}}, {"culler.timeout": 60}),
    "culler.every": ({**LOCAL, "culler": {}}, {"culler.every": 60}),
    "culler.max_age": ({**LOCAL, "culler": {}}, {"culler.max_age": 60}),
    "culler.users": ({**LOCAL, "culler": {}}, {"culler.users": True}),
    "container.socket": (CONTAINER, {"container.socket": "unix:///run/podman/podman.sock"}),
    "container.hub_connect_url": (CONTAINER, {"container.hub_connect_url": "http://10.88.0.1:8081"}),
    "container.image": (
        {
            **CONTAINER,
            "profiles": [{"slug": "c", "name": "C", "backend": "container"}],
            "container": {"image": "localhost/lab:1"},
        },
        {"container.image": "localhost/lab:2"},
    ),
    "container.network": (CONTAINER, {"container.network": "campushub"}),
    "container.notebook_dir": (CONTAINER, {"container.notebook_dir": "/data"}),
    "container.volume": (CONTAINER, {"container.volume": "home-{username}"}),
    "container.uid_base": (CONTAINER, {"container.uid_base": 3_000_000}),
    "branding.site_name": (LOCAL, {"branding.site_name": "Pitt CRC JupyterHub"}),
    "branding.logo": (LOCAL, {"branding.logo": "LOGO"}),
    "branding.primary_color": (LOCAL, {"branding.primary_color": "#003594"}),
    "branding.header_color": (LOCAL, {"branding.header_color": "#ffb81c"}),
    "branding.help_url": (LOCAL, {"branding.help_url": "mailto:crc@example.edu"}),
    "branding.request_access_url": (LOCAL, {"branding.request_access_url": "https://x.edu/access"}),
    "branding.announcement": (LOCAL, {"branding.announcement": "Maintenance on Friday"}),
    "slurm.conf": (SLURM, {"slurm.conf": "/etc/slurm/other.conf"}),
    "slurm.submit_as": (SLURM, {"slurm.submit_as": "sbatch_uid"}),
    "slurm.hub_connect_url": (SLURM, {"slurm.hub_connect_url": "http://hub.example.edu:8081"}),
    "slurm.hub_host_runs_jobs": (
        SLURM,
        {"slurm.hub_host_runs_jobs": False, "hub.hub_ip": "10.0.0.2", "slurm.hub_connect_url": "http://10.0.0.2:8081"},
    ),
    "slurm.python_bin": (SLURM, {"slurm.python_bin": "/opt/jupyter/bin"}),
    "slurm.warn_minutes": (SLURM, {"slurm.warn_minutes": [5]}),
    "slurm.save_seconds": (SLURM, {"slurm.save_seconds": 0}),
    "ledger.enabled": (LOCAL, {"ledger.enabled": False}),
    "ledger.keep_days": (LOCAL, {"ledger.keep_days": 365}),
    "ledger.export_dir": (LOCAL, {"ledger.export_dir": "exports"}),
    "metrics.enabled": ({**LOCAL, "metrics": {"token": {"env": "OTHER_SECRET"}}}, {"metrics.enabled": True}),
    "metrics.token.env": (
        {**LOCAL, "metrics": {"enabled": True, "token": {"env": "OTHER_SECRET"}}},
        {"metrics.token.env": SECRET_ENV},
    ),
    "metrics.token.file": (
        {**LOCAL, "metrics": {"enabled": True, "token": {"env": "OTHER_SECRET"}}},
        {"metrics.token": {"file": "SECRET_FILE"}},
    ),
}


def _choice_changes():
    """An entry of CHANGES for every key of every choice of every backend."""
    for backend, site in CHOOSING.items():
        for name, spec in site["profiles"][0]["choices"].items():
            kind = _model(BACKENDS[backend].choices.model_fields[name].annotation)
            for key, value in CHOICE_CHANGES[name].items():
                if key not in kind.model_fields:
                    continue
                change = {f"profiles.0.choices.{name}.{key}": value}
                if key == "options" and spec.get("default") and (value == "user" or spec["default"] not in value):
                    change[f"profiles.0.choices.{name}.default"] = None  # the old default is no longer listed
                if key == "default" and value is None:  # qos: options "user" has no default to change
                    change = {f"profiles.0.choices.{name}.default": "normal"}
                yield f"profiles[{backend}].choices.{name}.{key}", (site, change)


CHANGES.update(_choice_changes())


def test_every_field_of_the_site_file_is_listed_here():
    assert set(CHANGES) == leaf_paths()


@pytest.mark.parametrize("path", sorted(CHANGES))
def test_every_field_changes_what_campushub_writes(path, observe, tmp_path):
    files = _files(tmp_path)
    base, change = _resolve(copy.deepcopy(CHANGES[path][0]), files), dict(CHANGES[path][1])
    if "CHANGE" in change:  # the keys before it belong to the starting point, the rest is the change
        keys = list(change)
        for key in keys[: keys.index("CHANGE")]:
            put(base, key, _resolve(change.pop(key), files))
        change.pop("CHANGE")
    changed = copy.deepcopy(base)
    for key, value in change.items():
        put(changed, key, _resolve(value, files))
    assert observe(changed) != observe(base), f"changing {path} changed nothing"


def _files(tmp_path: Path) -> dict[str, str]:
    """Files the table names: a secret file (0600), certificates, an extra config folder."""
    from campushub.ops.frontdoor.tls import local_ca

    secret = tmp_path / "secret"
    secret.write_text("file-secret-0123456789\n")
    secret.chmod(0o600)
    _ca_pem, cert, key = local_ca(tmp_path / "ca-one", "hub.localhost", wildcard=True)
    _, other_cert, other_key = local_ca(tmp_path / "ca-two", "hub.localhost", wildcard=True)
    extra = tmp_path / "extra"
    extra.mkdir(exist_ok=True)
    (extra / "site.py").write_text("c.JupyterHub.shutdown_on_logout = True\n")
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n")
    metadata, other_metadata = tmp_path / "idp.xml", tmp_path / "other-idp.xml"
    metadata.write_text('<EntityDescriptor entityID="https://idp.example.edu/idp/shibboleth"/>\n')
    other_metadata.write_text('<EntityDescriptor entityID="https://other.edu/idp"/>\n')
    return {
        "IDP_METADATA": str(metadata),
        "OTHER_METADATA": str(other_metadata),
        "SIGNER": str(cert),
        "SIGNER_KEY": str(key),
        "SECRET_FILE": str(secret),
        "OTHER_CERT": str(other_cert),
        "OTHER_KEY": str(other_key),
        "EXTRA": str(extra),
        "LOGO": str(logo),
    }


def _resolve(value, files):
    if isinstance(value, str):
        return files.get(value, value)
    if isinstance(value, dict):
        return {k: _resolve(v, files) for k, v in value.items()}
    return value

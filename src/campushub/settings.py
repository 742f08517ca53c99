"""The site file: its schema, how it is read, and the checks that span fields.

Every problem is reported as ``dotted.field.path: reason``; nothing here touches
JupyterHub config (that is :mod:`campushub.configurer`'s job).
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from jupyterhub.traitlets import ByteSpecification
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationError,
    model_validator,
)
from traitlets import TraitError

DEFAULT_PATH = "campushub.yaml"

#: The seed deployment's environment variables and the site-file field each one sets.
#: They override the file, as they did in the seed's ``jupyterhub_config.py``.
ENV_OVERRIDES = {
    "HUB_IP": ("hub", "hub_ip"),
    "DOCKER_JUPYTER_CONTAINER": ("container", "image"),
    "DOCKER_NETWORK_NAME": ("container", "network"),
    "DOCKER_NOTEBOOK_DIR": ("container", "notebook_dir"),
}


class SiteError(Exception):
    """The site file cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems

    def report(self, prefix: str = "") -> int:
        """Print one line per problem to stderr; return the exit code for bad input (2)."""
        for problem in self.problems:
            print(f"{prefix}{problem}", file=sys.stderr)
        return 2


def raise_problems(problems: list[str]):
    if problems:
        raise SiteError(problems)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value


def _byte_size(value: str | int) -> str | int:
    try:
        ByteSpecification().validate(None, value)
    except TraitError:
        raise ValueError(
            f"{value!r} is not a size JupyterHub understands (use a number of bytes or K, M, G, T: '4G')"
        ) from None
    return value


def _header_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", value):
        raise ValueError(f"{value!r} is not a valid HTTP header name")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
ByteSize = Annotated[str | int, AfterValidator(_byte_size)]
HeaderName = Annotated[str, AfterValidator(_header_name)]
Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(min_length=1)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HubSettings(Model):
    bind_url: HttpUrl = "http://127.0.0.1:8000"
    public_url: HttpUrl | None = None
    hub_ip: Name = "127.0.0.1"
    hub_port: Port = 8081
    hub_connect_ip: Name | None = None
    proxy_api_port: Port = 8001
    state_dir: Path = Path("state")
    db_url: Name | None = None
    admin_users: list[Name] = []


class SecretSource(Model):
    """A secret read from an environment variable or a file, never written in the site file."""

    env: Name | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' (a variable name) or 'file' (a path)")
        return self

    def read(self, path: str, min_length: int = 1, private: bool = False) -> str:
        """The secret's value; ``path`` (its place in the site file) names it in errors.

        ``private``: refuse a file that other accounts on this host can read.
        """
        where = f"{path}.env" if self.env else f"{path}.file"
        try:
            value = (os.environ[self.env] if self.env else self.file.read_text()).strip()
            mode = self.file.stat().st_mode & 0o777 if self.file else 0
        except KeyError:
            raise SiteError([f"{where}: environment variable {self.env} is not set"]) from None
        except OSError as e:
            raise SiteError([f"{where}: cannot read {self.file}: {e.strerror}"]) from None
        if private and mode & 0o077:
            raise SiteError([f"{where}: {self.file} is readable by other accounts (mode {mode:o}) and users' code"
                             f" runs on this host; make it private: chmod 600 {self.file}"])
        if len(value) < min_length:
            raise SiteError([f"{where}: the secret is shorter than {min_length} characters"])
        return value


class ProxySecret(SecretSource):
    header: HeaderName = "X-Campushub-Proxy-Secret"


class SharedPasswordAuth(Model):
    type: Literal["shared_password"]


class IdTokenSettings(Model):
    """An OpenID Connect ID token the front door sends on the hub's paths, verified by the hub.

    The hub checks its signature against the provider's published keys, its issuer, audience
    and expiry, and takes the user's name and groups from its claims instead of from headers.
    """

    metadata_url: HttpUrl
    client_id: Name
    header: HeaderName = "X-Campushub-Id-Token"
    user_claim: Name = "preferred_username"
    groups_claim: Name = "groups"


class RemoteUserAuth(Model):
    type: Literal["remote_user"]
    user_header: HeaderName = "Cn"
    groups_header: HeaderName = "isMemberOf"
    groups_separator: Annotated[str, Field(min_length=1)] = ";"
    required_groups: list[Name] = []
    admin_groups: list[Name] = []
    missing_user_redirect: HttpUrl | None = None
    missing_group_redirect: HttpUrl | None = None
    logout_url: HttpUrl | None = None
    trusted_proxies: Annotated[list[IPvAnyNetwork], Field(validate_default=True)] = ["127.0.0.1/32", "::1/128"]
    proxy_secret: ProxySecret | None = None
    id_token: IdTokenSettings | None = None
    refresh_seconds: Annotated[int, Field(ge=0)] = 60


Auth = Annotated[SharedPasswordAuth | RemoteUserAuth, Field(discriminator="type")]


class SpawnerSettings(Model):
    default_url: Name = "/lab"
    notebook_dir: Name | None = None
    start_timeout: Annotated[int, Field(gt=0)] = 120
    http_timeout: Annotated[int, Field(gt=0)] = 120
    poll_interval: Annotated[int, Field(gt=0)] = 30
    environment: dict[str, str] = {}


class ContainerDefaults(Model):
    """Defaults for every ``container`` profile; the seed's DOCKER_* variables set these."""

    socket: Annotated[str, Field(pattern=r"^(unix|tcp|ssh)://.+")] | None = None
    hub_connect_url: HttpUrl | None = None
    image: Name | None = None
    network: Name | None = None
    notebook_dir: Name = "/home/jovyan/work"
    volume: Annotated[str, Field(pattern=r"^[A-Za-z0-9{][A-Za-z0-9_.{}-]*$")] = "jupyterhub-user-{username}"


class ProfileBase(Model):
    slug: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=63)]
    name: Name
    cpu: Annotated[float, Field(gt=0)] | None = None
    memory: ByteSize | None = None
    environment: dict[str, str] = {}
    groups: list[Name] = []
    default: bool = False


class LocalProfile(ProfileBase):
    backend: Literal["local"]
    system_users: bool = False


class ContainerProfile(ProfileBase):
    backend: Literal["container"]
    image: Name | None = None
    network: Name | None = None
    notebook_dir: Name | None = None
    volumes: dict[Name, Name] = {}
    gpus: Annotated[int, Field(ge=0)] = 0


class SlurmDefaults(Model):
    """How the hub talks to Slurm; shared by every ``slurm`` profile."""

    conf: Path | None = None
    submit_as: Literal["sudo", "sbatch_uid"] = "sudo"
    hub_connect_url: HttpUrl | None = None
    python_bin: Path | None = None


class SlurmProfile(ProfileBase):
    backend: Literal["slurm"]
    partition: Name | None = None
    runtime: Annotated[str, Field(pattern=r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$")] | None = None
    gres: Name | None = None
    cluster: Name | None = None
    account: Name | None = None
    qos: Name | None = None
    options: list[Name] = []
    prologue: str = ""
    epilogue: str = ""


Profile = Annotated[LocalProfile | ContainerProfile | SlurmProfile, Field(discriminator="backend")]


class Certificate(Model):
    """Where the front door's TLS certificate comes from."""

    source: Literal["local_ca", "file", "acme"] = "local_ca"
    cert: Path | None = None
    key: Path | None = None
    acme_email: Name | None = None
    acme_staging: bool = True

    @model_validator(mode="after")
    def _complete(self):
        if self.source == "file" and not (self.cert and self.key):
            raise ValueError("source 'file' needs 'cert' and 'key'")
        if self.source == "acme" and not self.acme_email:
            raise ValueError("source 'acme' needs 'acme_email'")
        return self


class OidcSettings(Model):
    """mod_auth_openidc: the campus's OpenID Connect provider."""

    metadata_url: HttpUrl
    client_id: Name
    client_secret: SecretSource
    scopes: Name = "openid profile groups"
    user_claim: Name = "preferred_username"
    groups_claim: Name = "groups"
    redirect_path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_-]+$")] = "/oidc-callback"
    logout_to: HttpUrl | None = None


class FrontDoorSettings(Model):
    """Apache httpd in front of the hub: TLS, and the campus SSO setting the identity headers."""

    server_name: Name = "localhost"
    address: Name = "127.0.0.1"
    http_port: Port = 80
    https_port: Port = 443
    upstream: HttpUrl | None = None
    certificate: Certificate = Certificate()
    oidc: OidcSettings


class CullerSettings(Model):
    enabled: bool = True
    timeout: Annotated[int, Field(gt=0)] = 3600
    every: Annotated[int, Field(gt=0)] = 600
    max_age: Annotated[int, Field(ge=0)] = 0
    users: bool = False

    @property
    def activity_interval(self) -> int:
        """How often (s) servers and the proxy report activity: often enough for ``every``."""
        return min(300, self.every)


class Site(Model):
    hub: HubSettings = HubSettings()
    auth: Auth = SharedPasswordAuth(type="shared_password")
    spawner: SpawnerSettings = SpawnerSettings()
    container: ContainerDefaults = ContainerDefaults()
    slurm: SlurmDefaults = SlurmDefaults()
    front_door: FrontDoorSettings | None = None
    profiles: Annotated[list[Profile], Field(min_length=1)]
    culler: CullerSettings = CullerSettings()

    @property
    def id_token(self) -> IdTokenSettings | None:
        """The ID token the hub verifies: ``auth.id_token``, else the one the generated front door sends."""
        if not isinstance(self.auth, RemoteUserAuth):
            return None
        if self.auth.id_token or not self.front_door:
            return self.auth.id_token
        oidc = self.front_door.oidc
        return IdTokenSettings(metadata_url=oidc.metadata_url, client_id=oidc.client_id,
                               user_claim=oidc.user_claim, groups_claim=oidc.groups_claim)

    @property
    def default_profile(self):
        """The profile marked ``default``, or else the first one."""
        return next((p for p in self.profiles if p.default), self.profiles[0])


# ---------------------------------------------------------------- reading


def config_path(given: str | os.PathLike | None = None) -> Path:
    """The site file to use: the one given, else $CAMPUSHUB_CONFIG, else ./campushub.yaml."""
    return Path(given or os.environ.get("CAMPUSHUB_CONFIG") or DEFAULT_PATH)


def load_site(path: str | os.PathLike, environ=os.environ) -> Site:
    """Read, override from the environment, validate and cross-check a site file.

    Relative paths in the file are taken relative to the file's folder.
    Raises :class:`SiteError` listing every problem found.
    """
    path = Path(path)
    raw = _read_yaml(path)
    _apply_env_overrides(raw, environ)
    try:
        site = Site.model_validate(raw)
    except ValidationError as e:
        raise SiteError([_describe(err) for err in e.errors()]) from None
    raise_problems(cross_check(site))
    site.hub.state_dir = (path.parent / site.hub.state_dir).absolute()
    if site.slurm.conf:
        site.slurm.conf = (path.parent / site.slurm.conf).absolute()
    for source in _secret_sources(site):
        if source.file:
            source.file = (path.parent / source.file).absolute()
    return site


def _secret_sources(site: Site) -> list[SecretSource]:
    sources = [getattr(site.auth, "proxy_secret", None)]
    if site.front_door:
        sources.append(site.front_door.oidc.client_secret)
    return [s for s in sources if s]


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SiteError([f"{path}: no such site file (write one with `campushub init`)"]) from None
    except OSError as e:
        raise SiteError([f"{path}: cannot read: {e.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SiteError([f"{path}: not valid YAML: {e}".replace("\n", " ")]) from None
    if not isinstance(raw, dict):
        raise SiteError([f"{path}: the site file must be a mapping of sections (hub, auth, profiles, ...)"])
    return raw


def _apply_env_overrides(raw: dict, environ) -> None:
    """Put the seed's environment variables, where set, into ``raw``."""
    for var, (section, key) in ENV_OVERRIDES.items():
        if environ.get(var) and isinstance(raw.setdefault(section, {}), dict):
            raw[section][key] = environ[var]


#: each tagged union's tag field and the values it takes
_UNION_TAGS = {
    "type": ("shared_password", "remote_user"),
    "backend": ("local", "container", "slurm"),
}


def _describe(err: dict) -> str:
    """One line for one pydantic error: ``dotted.path: reason``."""
    tags = {tag for values in _UNION_TAGS.values() for tag in values}
    # pydantic puts a union's tag (``remote_user``, ``local``...) in the path; the file has no such level
    loc = [
        part
        for i, part in enumerate(err["loc"])
        if not (part in tags and i > 0 and (err["loc"][i - 1] == "auth" or isinstance(err["loc"][i - 1], int)))
    ]
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        msg = "unknown key (see docs/site-file.md for the keys this section takes)"
    elif kind in ("union_tag_not_found", "union_tag_invalid"):
        field = err["ctx"]["discriminator"].strip("'")
        loc.append(field)
        choices = ", ".join(_UNION_TAGS[field])
        msg = f"required: one of {choices}" if kind == "union_tag_not_found" else f"must be one of {choices}"
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif kind.startswith("ip_"):
        msg = f"{err['input']!r} is not a network in CIDR form (such as 192.0.2.0/24, host bits zero)"
    return f"{'.'.join(str(p) for p in loc) or '(top level)'}: {msg}"


def cross_check(site: Site) -> list[str]:
    """Problems that no single field shows: duplicates, defaults, missing images."""
    problems = []
    seen = {}
    for i, profile in enumerate(site.profiles):
        if profile.slug in seen:
            problems.append(f"profiles.{i}.slug: {profile.slug!r} is already used by profiles.{seen[profile.slug]}")
        seen.setdefault(profile.slug, i)
        if isinstance(profile, ContainerProfile) and not (profile.image or site.container.image):
            problems.append(
                f"profiles.{i}.image: no image: set it here, in container.image, or with DOCKER_JUPYTER_CONTAINER"
            )
    if site.front_door:
        if not isinstance(site.auth, RemoteUserAuth):
            problems.append("front_door: needs auth.type remote_user (the front door logs users in through the SSO)")
        elif not site.auth.proxy_secret:
            problems.append("front_door: set auth.proxy_secret: the front door sends it, so the hub can tell"
                            " the front door from anything else that reaches its proxy")
    problems += trust_problems(site)
    defaults = [i for i, p in enumerate(site.profiles) if p.default]
    for i in defaults[1:]:
        problems.append(f"profiles.{i}.default: only one profile can be the default (profiles.{defaults[0]} already is)")
    if site.default_profile.groups:
        i = site.profiles.index(site.default_profile)
        problems.append(
            f"profiles.{i}.groups: the default profile must be open to everyone, or a user outside its groups has none"
        )
    return problems


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def runs_code_on_hub_host(profile) -> bool:
    """Whether users' code may run on the hub's own host: a local process, or a Slurm job
    (the hub's host may be a node of the cluster). Containers have their own network."""
    return isinstance(profile, (LocalProfile, SlurmProfile))


def trust_problems(site: Site) -> list[str]:
    """Combinations in which a user's own code could sign in as someone else."""
    auth = site.auth
    problems = []
    if isinstance(auth, SharedPasswordAuth):
        if not is_loopback_url(site.hub.bind_url):
            problems.append(
                f"hub.bind_url: {site.hub.bind_url} is not loopback, and with auth.type shared_password anyone who"
                " learns the one password can sign in as any user; keep it on 127.0.0.1, or use remote_user"
            )
        for i, profile in enumerate(site.profiles):
            if getattr(profile, "system_users", False) or isinstance(profile, SlurmProfile):
                field = "system_users" if isinstance(profile, LocalProfile) else "backend"
                problems.append(
                    f"profiles.{i}.{field}: with auth.type shared_password anyone with the password can sign in"
                    " under any name and would run code as that system account; use auth.type remote_user"
                )
        return problems
    for i, profile in enumerate(site.profiles):
        if isinstance(profile, LocalProfile) and not profile.system_users:
            problems.append(
                f"profiles.{i}.system_users: with single sign-on every user's server must run as the user's own"
                " account: servers run as the hub's account could read the hub's secrets and database and act"
                " as anyone (set system_users: true, or use a container or slurm profile)"
            )
    on_host = [i for i, p in enumerate(site.profiles) if runs_code_on_hub_host(p)]
    if on_host and auth.proxy_secret is None:
        problems.append(
            f"auth.proxy_secret: required, because profiles.{on_host[0]} runs users' code on the hub's host"
            " (or on a Slurm node that may be it): that code can reach the hub from a trusted address and"
            " send identity headers; only the front door may know the secret (see docs/authentication.md)"
        )
    return problems


def warnings_for(site: Site, environ=os.environ) -> list[str]:
    """Things that will work but not as an admin might assume."""
    notes = []
    for i, profile in enumerate(site.profiles):
        if not isinstance(profile, LocalProfile):
            continue
        for field in ("cpu", "memory"):
            if getattr(profile, field) is not None:
                notes.append(
                    f"profiles.{i}.{field}: the local backend cannot enforce this limit;"
                    " it is only passed to the server as an environment variable"
                )
    auth = site.auth
    if isinstance(auth, SharedPasswordAuth) and not is_loopback_url(f"http://{site.hub.hub_ip}/"):
        notes.append(
            f"hub.hub_ip: {site.hub.hub_ip} is not loopback: the hub's own port also serves its login page,"
            " so let only users' containers reach it (a firewall), or the shared password is open to the network"
        )
    if isinstance(auth, RemoteUserAuth):
        secret = auth.proxy_secret
        if secret and secret.env and not environ.get(secret.env):
            notes.append(f"auth.proxy_secret.env: {secret.env} is not set here; the hub will refuse to start without it")
        if secret and secret.file and not secret.file.is_file():
            notes.append(f"auth.proxy_secret.file: {secret.file} does not exist here; the hub will refuse to start without it")
        elif secret and secret.file and any(runs_code_on_hub_host(p) for p in site.profiles):
            try:
                secret.read("auth.proxy_secret", private=True)
            except SiteError as e:
                notes += e.problems
    return notes

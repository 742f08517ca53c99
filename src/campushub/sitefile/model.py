"""The site file's model: its common sections, and the login and backend slices' unions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, ValidationInfo, create_model, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ..auth import Auth
from ..auth.shared_password import SharedPasswordAuth
from ..backends import BACKENDS, Profile, backend_of, profile_union
from ..backends.accounts import SERVICE_ACCOUNTS
from ..backends.base import Backend
from .fields import ByteSize, HttpUrl, Model, Name, Port, SecretSource
from .sections import BrandingSettings, FrontDoorSettings, LedgerSettings, MetricsSettings


class HubSettings(Model):
    """JupyterHub itself: where it listens, where it keeps its state."""

    bind_url: HttpUrl = Field(
        "http://127.0.0.1:8000",
        description="the address of the hub's proxy (JupyterHub's `bind_url`); loopback unless you open it."
        " Where users' code runs on the hub's host behind single sign-on, `http://127.0.0.1:880`, and the site"
        " file may only name ports below 1024, which no user's process can take (so for the two ports below)",
    )
    public_url: HttpUrl | None = Field(
        None,
        description="the address users see, behind the HTTPS front door"
        " (JupyterHub's `public_url`; default with `front_door`: `https://SERVER_NAME[:HTTPS_PORT]/`);"
        " `https://...` makes every hub cookie `Secure`",
    )
    hub_ip: Name = Field("127.0.0.1", description="address (or host name) the hub's own API listens on")
    hub_port: Port = Field(8081, description="port of the hub's API (`881` where the ports are guarded, as above)")
    hub_connect_ip: Name | None = Field(
        None, description="the hub's address as seen from users' servers, when it differs from `hub_ip`"
    )
    proxy_api_port: Port = Field(
        8001, description="loopback port of configurable-http-proxy's API (`882` where the ports are guarded)"
    )
    state_dir: Path = Field(
        Path("state"), description="database and secrets; made 0700, files 0600, kept across restarts"
    )
    db_url: Name | None = Field(
        None,
        description="any SQLAlchemy URL JupyterHub accepts, without a password: PostgreSQL as"
        " `postgresql://USER@HOST:PORT/DATABASE` (the `postgres` extra installs its driver); default: SQLite in"
        " `state_dir`",
    )
    db_password: SecretSource | None = Field(
        None,
        description="the database's password, `{env: VAR}` or `{file: PATH}`: put into `db_url` when the hub"
        " starts, never written in the site file",
    )
    admin_users: list[Name] = Field([], description="user names that are hub admins")
    extra_config_dir: Path | None = Field(
        None,
        description="a folder of `*.py` files run, in name order, after campushub's config, with `c` (the"
        " JupyterHub config) in scope: the escape hatch for what the site file does not cover. Outside campushub's"
        " checks",
    )

    @field_validator("db_url")
    @classmethod
    def _no_password_in_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parsed = make_url(value)
        except ArgumentError:
            raise ValueError(f"{value!r} is not a database URL (such as postgresql://hub@db.example.edu/hub)") from None
        if parsed.password:
            raise ValueError("has a password in it: give it as db_password ({env: VAR} or {file: PATH}) instead")
        return value

    @field_validator("db_password")
    @classmethod
    def _password_needs_url(cls, value: SecretSource | None, info: ValidationInfo) -> SecretSource | None:
        if value is not None and not info.data.get("db_url"):
            raise ValueError("set db_url too: the default SQLite database has no password")
        return value


class SpawnerSettings(Model):
    """Shared by every profile (a profile's own values win)."""

    default_url: Name = Field("/lab", description="where users land in their server")
    notebook_dir: Name | None = Field(
        None, description="the server's root folder (`local` profiles; containers use `container.notebook_dir`)"
    )
    start_timeout: Annotated[int, Field(gt=0)] = Field(120, description="seconds a server may take to start")
    http_timeout: Annotated[int, Field(gt=0)] = Field(
        120,
        description="seconds a started server may take to"
        " answer; busy 2-core hosts need more than JupyterHub's default",
    )
    poll_interval: Annotated[int, Field(gt=0)] = Field(
        30,
        description="how often (s) the hub checks that each server still runs (a cancelled Slurm job is noticed then)",
    )
    environment: dict[str, str] = Field({}, description="variables for every server")
    concurrent_spawn_limit: Annotated[int, Field(ge=0)] = Field(
        500,
        description="starts under way at once, waiting for a turn included, beyond which a start is refused with"
        " 429 (JupyterHub's `concurrent_spawn_limit`; campushub's turns already pace starts on the hub's machine;"
        " 0: no limit)",
    )
    reserve_memory: ByteSize = Field(
        "1G",
        description="memory the hub's machine keeps for itself: a `local` or `container` start that finds less"
        " available (MemAvailable) when its turn comes is refused in words, rather than start a server that the"
        " kernel's OOM killer ends with others (0: no check)",
    )


class CullerSettings(Model):
    """jupyterhub-idle-culler, run by the hub as a service with its own role."""

    enabled: bool = Field(True, description="run the culler")
    timeout: Annotated[int, Field(gt=0)] = Field(3600, description="stop servers idle this many seconds")
    every: Annotated[int, Field(gt=0)] = Field(
        600, description="check this often (s). Servers and the proxy report activity every `min(every, 300)` s"
    )
    max_age: Annotated[int, Field(ge=0)] = Field(0, description="stop servers older than this, idle or not (0: never)")
    users: bool = Field(False, description="also delete users whose servers were culled")

    @property
    def activity_interval(self) -> int:
        """How often (s) servers and the proxy report activity: often enough for ``every``."""
        return min(300, self.every)


class AccountSettings(Model):
    """Users' own system accounts, for profiles whose servers run as them (``system_users``, Slurm)."""

    create: bool = Field(
        False,
        description="make a missing account when its user first starts such a profile"
        " (off: most centers make accounts elsewhere, and the user is told to request one). Only"
        " for names a system account can have (`a-z0-9_-`, 32 at most); the hub must run as root",
    )
    command: Annotated[list[Name], Field(min_length=1)] = Field(
        ["useradd", "--create-home"],
        description="the command that makes an account, the user name added as its"
        " last argument (run directly, never by a shell)",
    )
    min_uid: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="the lowest uid a server or job may run as: an SSO name that is an account below it (a system"
        " account such as `postgres` or `daemon`) gets no server; default: `UID_MIN` of `/etc/login.defs` (1000)",
    )
    deny: list[Name] = Field(
        SERVICE_ACCOUNTS,
        description="names that never get a server as their own account, whatever their uid (`root` and the"
        " hub's own account are always refused); `accounts.create` never makes them",
    )


#: the hub's ports where users' code runs on its host behind single sign-on: ports only root can take
GUARDED = {"bind_url": "http://127.0.0.1:880", "hub_port": 881, "proxy_api_port": 882}


class SiteBase(Model):
    hub: HubSettings = Field(HubSettings(), description="JupyterHub itself")
    auth: Auth = Field(SharedPasswordAuth(type="shared_password"), description="how users sign in")
    spawner: SpawnerSettings = Field(SpawnerSettings(), description="shared by every profile")
    front_door: FrontDoorSettings | None = Field(None, description="Apache in front of the hub: TLS and single sign-on")
    profiles: Annotated[list[Profile], Field(min_length=1)] = Field(description="what users can start")
    culler: CullerSettings = Field(CullerSettings(), description="stopping idle servers")
    accounts: AccountSettings = Field(AccountSettings(), description="users' own system accounts")
    branding: BrandingSettings = Field(BrandingSettings(), description="the pages users see")
    metrics: MetricsSettings = Field(MetricsSettings(), description="Prometheus's access to the hub's metrics")
    ledger: LedgerSettings = Field(LedgerSettings(), description="the sessions ledger, for `campushub report`")

    def guarded(self) -> list[int]:
        """Indexes of the profiles that make the hub's ports worth taking: users' code on the hub's host behind
        single sign-on (:mod:`campushub.ops.ports`)."""
        if self.auth.type != "remote_user":
            return []
        return [i for i, p in enumerate(self.profiles) if backend_of(p).on_hub_host(self)]

    @model_validator(mode="after")
    def _guarded_ports(self):
        """A guarded site listens below 1024, where only root can, on every port its file does not name."""
        if self.guarded():
            for field, value in GUARDED.items():
                if field not in self.hub.model_fields_set:
                    setattr(self.hub, field, value)
        return self

    @property
    def default_profile(self):
        """The profile marked ``default``, or else the first one."""
        return next((p for p in self.profiles if p.default), self.profiles[0])

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            """The backends' own sections (``slurm``, ``container``), which :data:`Site` adds."""


def site_model(backends: dict[str, Backend]) -> type[SiteBase]:
    """The whole site file for these backends: the sections above, their profiles, and one section per backend
    that has shared settings."""
    sections: dict[str, Any] = {
        b.name: (b.defaults, Field(b.defaults(), description=(b.defaults.__doc__ or b.name).splitlines()[0]))
        for b in backends.values()
        if b.defaults
    }
    profiles: Any = Annotated[list[profile_union(backends)], Field(min_length=1)]  # type: ignore[misc]
    sections["profiles"] = (profiles, Field(description=SiteBase.model_fields["profiles"].description))
    return create_model(
        "Site", __base__=SiteBase, __doc__="A campushub deployment, as one site file describes it.", **sections
    )


if TYPE_CHECKING:
    Site = SiteBase
else:
    Site = site_model(BACKENDS)

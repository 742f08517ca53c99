"""Reading the site file: YAML, the seed's environment variables, validation, and the problems found.

Every problem is reported as ``dotted.field.path: reason``; nothing here touches JupyterHub
config (that is :mod:`campushub.hub.configurer`'s job), and the rules themselves live with the
sections and slices they are about.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ..auth import LOGINS, login_of
from ..backends import BACKENDS, backend_of
from ..hub import branding, metrics
from ..ops import frontdoor, ports
from .errors import SiteError, raise_problems
from .keys import did_you_mean
from .model import Site

DEFAULT_PATH = "campushub.yaml"

#: The seed deployment's environment variables and the site-file field each one sets.
#: They override the file, as they did in the seed's ``jupyterhub_config.py``.
ENV_OVERRIDES = {
    "HUB_IP": ("hub", "hub_ip"),
    "DOCKER_JUPYTER_CONTAINER": ("container", "image"),
    "DOCKER_NETWORK_NAME": ("container", "network"),
    "DOCKER_NOTEBOOK_DIR": ("container", "notebook_dir"),
}


#: each tagged union's tag field and the values it takes, from the slices
def union_tags() -> dict[str, tuple[str, ...]]:
    """The tags of the site file's unions: ``auth.type`` and ``profiles.N.backend``."""
    return {"type": tuple(LOGINS), "backend": tuple(BACKENDS)}


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
    _resolve_paths(site, path.parent)
    raise_problems(problems(site))
    return site


def _resolve_paths(site: Site, folder: Path):
    site.hub.state_dir = (folder / site.hub.state_dir).absolute()
    if site.hub.extra_config_dir:
        site.hub.extra_config_dir = (folder / site.hub.extra_config_dir).absolute()
    if site.branding.logo:
        site.branding.logo = (folder / site.branding.logo).absolute()
    if site.ledger.export_dir:
        site.ledger.export_dir = (folder / site.ledger.export_dir).absolute()
    for backend in BACKENDS.values():
        backend.resolve_paths(site, folder)
    sources = [
        getattr(site.auth, "proxy_secret", None),
        site.front_door and site.front_door.oidc and site.front_door.oidc.client_secret,
        site.hub.db_password,
        site.metrics.token,
    ]
    for source in filter(None, sources):
        if source.file:
            source.file = (folder / source.file).absolute()


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


def _describe(err: ErrorDetails) -> str:
    """One line for one pydantic error: ``dotted.path: reason``."""
    union = union_tags()
    tags = {tag for values in union.values() for tag in values}
    # pydantic puts a union's tag (``remote_user``, ``local``...) in the path; the file has no such level
    loc = [
        part
        for i, part in enumerate(err["loc"])
        if not (part in tags and i > 0 and (err["loc"][i - 1] == "auth" or isinstance(err["loc"][i - 1], int)))
    ]
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        close = did_you_mean(Site, err["loc"], union)
        msg = f"unknown key{f'; did you mean {close}?' if close else ''} (see docs/site-file.md for the keys it takes)"
    elif kind in ("union_tag_not_found", "union_tag_invalid"):
        field = err["ctx"]["discriminator"].strip("'")
        loc.append(field)
        choices = ", ".join(union[field])
        msg = f"required: one of {choices}" if kind == "union_tag_not_found" else f"must be one of {choices}"
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif kind.startswith("ip_"):
        msg = f"{err['input']!r} is not a network in CIDR form (such as 192.0.2.0/24, host bits zero)"
    return f"{'.'.join(str(p) for p in loc) or '(top level)'}: {msg}"


def problems(site: Site) -> list[str]:
    """Problems that no single field shows: the profiles together, the login, the backends, the front door."""
    found = []
    seen: dict[str, int] = {}
    for i, profile in enumerate(site.profiles):
        if profile.slug in seen:
            found.append(f"profiles.{i}.slug: {profile.slug!r} is already used by profiles.{seen[profile.slug]}")
        seen.setdefault(profile.slug, i)
        found += backend_of(profile).problems(site, i, profile)
    found += frontdoor.problems(site) + ports.unguarded(site)
    found += branding.problems(site.branding)
    found += login_of(site).problems(site)
    defaults = [i for i, p in enumerate(site.profiles) if p.default]
    for i in defaults[1:]:
        found.append(f"profiles.{i}.default: only one profile can be the default (profiles.{defaults[0]} already is)")
    if site.default_profile.groups:
        i = site.profiles.index(site.default_profile)
        found.append(
            f"profiles.{i}.groups: the default profile must be open to everyone, or a user outside its groups has none"
        )
    return found


def warnings_for(site: Site, environ=os.environ) -> list[str]:
    """Things that will work but not as an admin might assume."""
    notes = []
    for i, profile in enumerate(site.profiles):
        notes += backend_of(profile).warnings(site, i, profile)
    notes += metrics.warnings(site.metrics, environ) + frontdoor.warnings(site)
    return notes + login_of(site).warnings(site, environ) + _client_secret(site, environ)


def _client_secret(site: Site, environ) -> list[str]:
    """The front door's OpenID Connect client secret, which `campushub frontdoor` reads, missing here."""
    source = site.front_door and site.front_door.oidc and site.front_door.oidc.client_secret
    if source and source.env and not environ.get(source.env):
        return [f"front_door.oidc.client_secret.env: {source.env} is not set here; `campushub frontdoor` needs it"]
    if source and source.file and not source.file.is_file():
        return [
            f"front_door.oidc.client_secret.file: {source.file} does not exist here; `campushub frontdoor` needs it"
        ]
    return []


def preflight(site: Site) -> list[str]:
    """Problems only the services can show (container engines): asked by ``check`` and ``up``."""
    found = []
    for backend in BACKENDS.values():
        profiles = [(i, p) for i, p in enumerate(site.profiles) if backend_of(p) is backend]
        if profiles:
            found += backend.preflight(site, profiles)
    return found

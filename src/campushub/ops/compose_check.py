"""``campushub check --compose``: the compose deployment checked from the host before ``up``.

The hub's container would say the same things in ``podman logs`` after ``up``, one restart at a
time; this says them where the admin is, naming the ``.env`` key behind each.
"""

from __future__ import annotations

import ipaddress
import os
import re

from ..backends import backend_of
from ..backends.container import engine as engines
from ..sitefile import origins
from ..sitefile.errors import SiteError
from .compose import SITE_TARGET, Deployment


def check(deployment: Deployment, compose_engine: str | None = None) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the deployment, as its hub will see it; ``compose_engine`` (podman or docker)
    is the engine compose runs the hub on."""
    from ..hub.configurer import class_problems
    from ..sitefile.read import load_site

    warnings = []
    if not deployment.env_file.is_file():
        warnings.append(f"{deployment.env_file}: not there, so compose uses every default (cp .env.example .env)")
    path, problems = site_file(deployment)
    if problems:
        return problems, warnings
    environ = deployment.hub_environment()
    try:
        site = load_site(path, environ)
    except SiteError as e:
        return [f"{path}: {problem}" for problem in e.problems], warnings
    problems = class_problems(site) + secrets(deployment, site, environ) + hub_address(deployment, site)
    found, reached = engine(deployment, site, environ, compose_engine)
    if reached and not compose_engine:  # run by hand: say which engine answered, which compose may not run on
        warnings.append(
            f"the hub will use {reached}; if compose runs it on another engine (podman-compose: Podman), set"
            f" CONTAINER_SOCKET in {deployment.env_file} to that engine's socket ({engines.SOCKETS}). scripts/compose"
            " checks this itself"
        )
    return problems + found, warnings


def site_file(deployment: Deployment):
    """(the site file on the host, problems): it must be a file, named so that every compose mounts it."""
    mount = deployment.mount(SITE_TARGET)
    if mount is None:
        return None, [f"services.hub.volumes: nothing is mounted at {SITE_TARGET}, where the hub reads its site file"]
    path, raw = mount
    where = ", ".join(map(deployment.where, deployment.keys_in(raw))) or "services.hub.volumes"
    value = deployment.interpolate(raw)
    if not value.startswith(("./", "../", "/")):
        return path, [
            f"{where}: {value!r} must start with ./ or / (docker-compose 1.29 takes a bare name for a volume)"
        ]
    if path.is_dir():
        return path, [
            f"{where}: {path} is a directory, not the site file: the engine made it when an `up` found no file"
            f" there. Remove it (rmdir {path}) and write the site file (cp examples/compose.yaml {path})"
        ]
    if not path.is_file():
        return path, [
            f"{where}: {path} does not exist (cp examples/compose.yaml {path}, then edit it); the engine would"
            " mount an empty directory in its place"
        ]
    return path, []


def secrets(deployment: Deployment, site, environ: dict) -> list[str]:
    """The secrets the hub reads from its environment (the proxy secret, the database's password): compose
    must pass them, and .env must hold them."""
    found = []
    for field, secret, hint in (
        (
            "auth.proxy_secret",
            getattr(site.auth, "proxy_secret", None),
            "with the front door, compose.frontdoor.yaml passes CAMPUSHUB_PROXY_SECRET",
        ),
        ("hub.db_password", site.hub.db_password, "with PostgreSQL, compose.postgres.yaml passes it"),
    ):
        if secret and secret.env:
            found += _secret(deployment, environ, f"{field}.env", secret.env, hint)
    return found


def _secret(deployment: Deployment, environ: dict, field: str, name: str, hint: str) -> list[str]:
    if name not in environ:
        files = ", ".join(map(str, deployment.files))
        return [f"{field}: {name} is not in the hub's environment, which the compose files ({files}) set; {hint}"]
    raw = str(deployment.config["services"]["hub"]["environment"][name])
    where = ", ".join(map(deployment.where, deployment.keys_in(raw))) or "the compose file"
    if not environ[name]:
        return [f"{field}: {name} is empty: set {where} (make one: openssl rand -hex 32)"]
    if len(environ[name]) < 16:
        return [f"{field}: the secret in {where} is shorter than 16 characters (openssl rand -hex 32)"]
    return []


def hub_address(deployment: Deployment, site) -> list[str]:
    """The hub's fixed address on the users' network must be the site's hub_connect_ip."""
    address, raw = deployment.hub_addresses().get(site.container.network, (None, ""))
    if address and site.hub.hub_connect_ip != address:
        where = ", ".join(map(deployment.where, deployment.keys_in(raw))) or "the compose file"
        return [
            f"hub.hub_connect_ip: {site.hub.hub_connect_ip}, but compose gives the hub {address} on network"
            f" {site.container.network!r} ({where}): users' containers would call the hub where it is not"
        ]
    return []


def engine(deployment: Deployment, site, environ: dict, compose_engine: str | None) -> tuple[list[str], str]:
    """The engine behind CONTAINER_SOCKET: the one compose runs on; its images, the networks compose makes,
    users' profiles. Also which engine answered, and where (or "")."""
    mount = deployment.mount(origins.MOUNTED_SOCKET)
    if mount is None:
        return [f"services.hub.volumes: nothing is mounted at {origins.MOUNTED_SOCKET}, the hub's engine socket"], ""
    found = []
    if site.container.socket not in (None, f"unix://{origins.MOUNTED_SOCKET}"):
        found.append(
            f"container.socket: {site.container.socket}, but in the compose deployment the hub reaches the engine"
            f" at {origins.MOUNTED_SOCKET}, where compose mounts CONTAINER_SOCKET: leave container.socket out"
        )
    path, raw = mount
    chosen = ", ".join(map(deployment.where, deployment.keys_in(raw))) or "the compose file"
    client, engine, where, problems = engines.connect(site, environ, (f"unix://{path}", chosen))
    if not client:
        return found + problems, ""
    mismatch = other_engine(engine, compose_engine, path, chosen)
    if mismatch:
        return [*found, mismatch], ""
    networks = deployment.networks()
    profiles = [(i, p) for i, p in enumerate(site.profiles) if backend_of(p).name == "container"]
    found += engines.check_profiles(client, engine, where, site, profiles, environ, networks)
    found += service_images(deployment, client, engine, where)
    for name, wanted in networks.items():
        found += network(deployment, site, client, name, wanted)
    return list(dict.fromkeys(found)), f"{engine} at {where}"


def other_engine(engine, compose_engine: str | None, path, chosen: str) -> str | None:
    """CONTAINER_SOCKET that is not the engine compose runs the hub on (or not as rootless as this account)."""
    if not compose_engine:
        return None
    rootless = compose_engine == "podman" and os.geteuid() != 0
    if engine.name.lower().startswith(compose_engine) and engine.rootless == rootless:
        return None
    runs = f"{'rootless ' if rootless else ''}{compose_engine.capitalize()}"
    return (
        f"container.socket: {path} ({chosen}) is the socket of {engine}, but compose runs the hub on {runs}: the hub"
        f" would start users' containers there, away from the network compose makes. Set CONTAINER_SOCKET to"
        f" {runs}'s socket ({engines.SOCKETS})"
    )


def service_images(deployment: Deployment, client, engine, where: str) -> list[str]:
    """The images of the services `up` starts: missing, compose would build them from a registry's base."""
    import docker

    found = []
    for name in deployment.config.get("services", {}):
        service = deployment.service(name)
        if name == "lab" or not service.get("image"):  # lab is build-only: `up -d hub` never starts it
            continue
        try:
            client.inspect_image(service["image"])
        except docker.errors.ImageNotFound:
            found.append(
                f"services.{name}.image: {service['image']} is not in {engine} at {where}: build it:"
                f" IMAGES={name} scripts/images (else `up` builds it from BASE_IMAGE, which needs a registry)"
            )
    return found


def network(deployment: Deployment, site, client, name: str, wanted: dict) -> list[str]:
    """A network compose makes: as the engine has it (compose keeps an existing one as it is), else as it
    will be; then where users' containers get addresses."""
    import docker

    labels = wanted.get("labels") or {}
    if isinstance(labels, list):
        labels = dict(item.split("=", 1) for item in labels)
    subnets = [c["subnet"] for c in (wanted.get("ipam") or {}).get("config") or [] if c.get("subnet")]
    try:
        details = client.inspect_network(name)
    except docker.errors.NotFound:
        details = {
            "Labels": labels,
            "IPAM": {"Config": [{"Subnet": s, "Gateway": str(next(ipaddress.ip_network(s).hosts()))} for s in subnets]},
        }
    else:
        has = [c.get("Subnet") for c in (details.get("IPAM") or {}).get("Config") or []]
        differs = [key for key, value in labels.items() if (details.get("Labels") or {}).get(key) != value]
        raw = raw_network(deployment, name)
        if sorted(has) != sorted(subnets):
            what, keys = f"subnet {', '.join(has)}", deployment.keys_in(str(raw.get("ipam")))
        elif differs:
            label = (details.get("Labels") or {}).get(differs[0])
            what, keys = f"label {differs[0]}={label}", deployment.keys_in(str(raw.get("labels")))
        if sorted(has) != sorted(subnets) or differs:
            return [
                f"networks.{name}: the engine has network {name!r} with {what}, not as the compose files ask"
                f" ({', '.join(map(deployment.where, keys)) or 'compose.yaml'}); compose keeps an existing network"
                f" as it is: remove it (podman network rm {name}, or docker's) when no container uses it, and"
                " compose makes it anew"
            ]
        found = held_address(deployment, name, details)
        if found:
            return found
    if site.container.network != name:
        return []
    return engines.addresses(site, "container.network", name, details)


def held_address(deployment: Deployment, name: str, details: dict) -> list[str]:
    """The hub's fixed address on ``name`` taken by another container: compose cannot start the hub."""
    address, raw = deployment.hub_addresses().get(name, (None, ""))
    for container in (details.get("Containers") or {}).values():
        held = container.get("IPv4Address", "").split("/")[0]
        ours = re.fullmatch(rf"{re.escape(deployment.project)}[_-]hub[_-]\d+", container.get("Name", ""))
        if address and held == address and not ours:
            where = ", ".join(map(deployment.where, deployment.keys_in(raw))) or "the compose file"
            return [
                f"services.hub.networks: the hub's address {address} ({where}) on network {name!r} is held by"
                f" container {container.get('Name')!r}: compose cannot start the hub there; stop that container"
            ]
    return []


def raw_network(deployment: Deployment, name: str) -> dict:
    """A network as the compose files write it (with its variables), by its name in the engine."""
    for key, net in (deployment.config.get("networks") or {}).items():
        if deployment.interpolate((net or {}).get("name", key)) == name:
            return net or {}
    return {}

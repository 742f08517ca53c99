"""What only the container engine can tell: does it answer, which one it is, has it the images and networks.

Every problem names the setting, where it came from (:mod:`campushub.sitefile.origins`), the value, the
engine that answered (Docker or Podman, and its version) and the fix.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from ...sitefile import origins
from ...sitefile.fields import byte_count

#: a network's label: the addresses users' containers are given on it (CampusDockerSpawner), so that
#: none can take an address outside it, such as the hub's
USER_ADDRESSES = "campushub.user-addresses"
#: the label of the containers campushub makes, and what each is for (``user-server``, ``volume-owner``)
PURPOSE_LABEL = "campushub.purpose"
#: a server container's user and server name (``doctor`` finds the ones no server of the hub owns)
USER_LABEL, SERVER_LABEL = "campushub.user", "campushub.server"
#: the volume label that names the uid a user's volume belongs to
UID_LABEL = "campushub.uid"
#: the images scripts/images builds, by the name it takes in IMAGES=
BUILT_HERE = {f"localhost/campushub-{name}:latest": name for name in ("hub", "lab-slim", "frontdoor")}
#: where each engine's socket usually is
SOCKETS = (
    "rootful Podman /run/podman/podman.sock, rootless Podman /run/user/UID/podman/podman.sock,"
    " Docker /var/run/docker.sock"
)


@dataclass
class Engine:
    """The engine that answered: its name and version, and what it can enforce."""

    name: str
    rootless: bool
    cgroup: str
    cpus: int | None
    memory: int | None
    #: Docker's userns-remap: every container's uids are mapped into one range of the host's
    userns: bool = False

    def __str__(self):
        return self.name + (" (rootless)" if self.rootless else "")

    @property
    def ignores_limits(self) -> bool:
        """Rootless Podman on cgroup v1 cannot set CPU or memory limits, and starts containers without them."""
        return self.rootless and self.cgroup == "1"


def identify(client) -> Engine:
    """Ask the engine's ``/version`` (and, for Podman, ``/libpod/info``) which engine it is."""
    version = client.version()
    info = client.info()
    podman = any(c.get("Name") == "Podman Engine" for c in version.get("Components") or [])
    rootless = False
    if podman:
        libpod = client.get(f"{client.base_url}/v{version['Version']}/libpod/info", timeout=10)
        rootless = libpod.ok and libpod.json()["host"]["security"]["rootless"]
    return Engine(
        f"{'Podman' if podman else 'Docker'} {version.get('Version', '?')}",
        rootless,
        str(info.get("CgroupVersion", "")),
        info.get("NCPU"),
        info.get("MemTotal"),
        any("userns" in option for option in info.get("SecurityOptions") or []),
    )


def connect(site, environ, socket: tuple[str, str] | None = None):
    """(client, engine, where, problems): ``socket`` is (URL, who chose it) when not the hub's own."""
    import docker
    from docker.utils import kwargs_from_env

    kwargs = {**kwargs_from_env(environment=environ), "version": "auto", "timeout": 10}
    if socket:
        url, chosen = socket
    else:
        url = site.container.socket or kwargs.get("base_url") or f"unix://{origins.MOUNTED_SOCKET}"
        chosen = origins.socket_origin(site.container.socket, environ)
    kwargs["base_url"] = url
    where = f"{url} ({chosen})"
    path = Path(url.removeprefix("unix://")) if url.startswith("unix://") else None
    if path and path.is_dir():
        return None, None, where, [directory_problem(path, where, environ)]
    try:
        client = docker.APIClient(**kwargs)
        engine = identify(client)
    except Exception as e:  # noqa: BLE001 (the SDK raises several kinds for a missing socket or a dead engine)
        reason = "no such file" if path and not path.exists() else type(e).__name__
        fix = (
            f"or set CONTAINER_SOCKET in .env to the engine's socket ({SOCKETS}); compose mounts an empty"
            " directory in place of a missing socket"
            if origins.in_compose(environ)
            else "or set container.socket / DOCKER_HOST"
        )
        return (
            None,
            None,
            where,
            [
                f"container.socket: no container engine answers at {where}: {reason}; start one"
                f" (scripts/engine start podman) {fix}"
            ],
        )
    return client, engine, where, []


def directory_problem(path: Path, where: str, environ) -> str:
    """An engine socket that is a directory: a mount of a path that did not exist made it."""
    if origins.in_compose(environ):
        host = environ[origins.COMPOSE_SOCKET]
        return (
            f"container.socket: {path} is a directory, not an engine's socket ({where}): CONTAINER_SOCKET names"
            f" no socket on the host, so the engine made an empty directory there to mount. Set CONTAINER_SOCKET"
            f" in .env to the engine's socket ({SOCKETS}), remove the directory (rmdir {host}) and start again"
        )
    return (
        f"container.socket: {path} is a directory, not an engine's socket ({where}); name the engine's"
        f" socket ({SOCKETS})"
    )


def preflight(site, profiles, environ=os.environ, socket=None) -> list[str]:
    """Problems with the engine for ``profiles`` ((index, profile) pairs)."""
    try:
        import docker  # noqa: F401
    except ImportError:
        return ["profiles: container profiles need DockerSpawner: pip install 'campushub[container]'"]
    client, engine, where, found = connect(site, environ, socket)
    if client:
        found += check_profiles(client, engine, where, site, profiles, environ)
    return found


def check_profiles(client, engine: Engine, where: str, site, profiles, environ, compose_networks=()) -> list[str]:
    """What the engine that answered lacks for ``profiles``: images, networks, limits, safe addresses
    (``compose_networks``: those compose makes, which ``check --compose`` looks at itself)."""
    import docker

    found = []
    for i, profile in profiles:
        found += beyond_host(i, profile, engine)
        found += unenforced(i, profile, engine)
        for image, field in images_of(site, i, profile):
            try:
                client.inspect_image(image)
            except docker.errors.ImageNotFound:
                found.append(
                    f"{field}: {image} ({origins.setting(field, environ)}) is not in {engine} at {where};"
                    f" campushub never pulls images: {build_hint(image, engine, environ)}"
                )
        network, field = network_of(site, i, profile)
        if network in compose_networks:
            continue
        try:
            details = client.inspect_network(network)
        except docker.errors.NotFound:
            if network != "bridge":
                found.append(missing_network(network, field, engine, where, environ))
            continue
        found += addresses(site, field, network, details)
    return list(dict.fromkeys(found + own_uids(site, engine)))


def own_uids(site, engine: Engine) -> list[str]:
    """An engine that maps containers' uids into a range of its own cannot run them as ``uid_base`` + N."""
    if site.container.uid_base is None or not (engine.rootless or engine.userns):
        return []
    how = "rootless, it maps" if engine.rootless else "with userns-remap it maps"
    return [
        f"container.uid_base: {engine} cannot run users' containers as uids of their own ({how} only its range of"
        " subordinate uids into containers, where no host account has a uid); set uid_base: null"
    ]


def build_hint(image: str, engine: Engine, environ) -> str:
    """How to get ``image`` into the engine: the scripts/images command for ours, else load it."""
    copy = " (ROOTLESS_ACCOUNT=ACCOUNT copies them to rootless Podman)" if engine.rootless else ""
    if image in BUILT_HERE:
        return f"build it: IMAGES={BUILT_HERE[image]} scripts/images{copy}"
    if image == "localhost/campushub-lab:latest":
        set_it = "LAB_IMAGE in .env" if origins.in_compose(environ) else "the image"
        return (
            f"scripts/images builds localhost/campushub-lab-slim:latest (set {set_it} to it){copy}; this one,"
            " the Jupyter Docker Stacks image, builds with `scripts/compose build lab` (needs a registry)"
        )
    return "load it (podman load, docker load) or build it"


def missing_network(network: str, field: str, engine: Engine, where: str, environ) -> str:
    """No such network: in compose, most likely the hub talks to another engine than compose ran on."""
    text = f"{field}: there is no network {network!r} ({origins.setting(field, environ)}) in {engine} at {where}"
    if not origins.in_compose(environ):
        return text + f"; make it (podman network create {network}) or name another"
    other = "Docker (/var/run/docker.sock)" if engine.name.startswith("Podman") else "Podman (/run/podman/podman.sock)"
    return (
        text + f". compose made it in the engine compose runs on: if that is {other}, set CONTAINER_SOCKET in .env to"
        " that engine's socket"
    )


def beyond_host(index: int, profile, engine: Engine) -> list[str]:
    """Choices whose maximum the engine's host cannot give one container."""
    choices, found = profile.choices, []
    if choices and choices.cpu and engine.cpus and choices.cpu.max > engine.cpus:
        found.append(
            f"profiles.{index}.choices.cpu.max: {choices.cpu.max:g} CPUs, but {engine}'s host has {engine.cpus}"
        )
    if choices and choices.memory and engine.memory and byte_count(choices.memory.max) > engine.memory:
        found.append(
            f"profiles.{index}.choices.memory.max: {choices.memory.max}, but {engine}'s host has"
            f" {engine.memory / 2**30:.1f} GiB"
        )
    return found


def unenforced(index: int, profile, engine: Engine) -> list[str]:
    """Limits the engine would silently ignore."""
    if not engine.ignores_limits:
        return []
    limited = [name for name in ("cpu", "memory") if getattr(profile, name) is not None]
    limited += [f"choices.{name}" for name in ("cpu", "memory") if getattr(profile.choices, name, None)]
    return [
        f"profiles.{index}.{name}: {engine} cannot enforce CPU or memory limits on this host's cgroup v1 (it"
        " starts containers without them): leave cpu and memory out to run without limits, or use rootful"
        " Podman, Docker or a cgroup v2 host"
        for name in limited
    ]


def images_of(site, index: int, profile) -> list[tuple[str, str]]:
    """(image, site-file field that set it) for every image the profile may run: its own, the default, the choices."""
    if profile.choices and profile.choices.image:
        return [(image, f"profiles.{index}.choices.image.options") for image in profile.choices.image.options]
    if profile.image:
        return [(profile.image, f"profiles.{index}.image")]
    return [(site.container.image, "container.image")]


def network_of(site, index: int, profile) -> tuple[str, str]:
    """(network, site-file field that set it) of a profile's containers."""
    if profile.network:
        return profile.network, f"profiles.{index}.network"
    return site.container.network or "bridge", "container.network"


def user_pool(details: dict) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The addresses users' containers get on a network labelled with :data:`USER_ADDRESSES`."""
    label = (details.get("Labels") or {}).get(USER_ADDRESSES)
    return ipaddress.ip_network(label, strict=False) if label else None


def addresses(site, field: str, network: str, details: dict) -> list[str]:
    """The hub's address or a trusted proxy where users' containers on ``network`` could get addresses."""
    try:
        pool = user_pool(details)
    except ValueError:
        label = details["Labels"][USER_ADDRESSES]
        return [f"{field}: network {network!r} has the label {USER_ADDRESSES}={label}, which is not a network"]
    hub = ip_or_none(site.hub.hub_connect_ip)
    found = []
    for gateway, handed_out in pools(details):
        addresses = pool or handed_out
        if hub and hub.version == addresses.version and hub in addresses:
            why = (
                f"in {USER_ADDRESSES}={pool}, the addresses users' containers are given"
                if pool
                else f"in {addresses}, where the engine gives users' containers any free address (when the hub is"
                f" away, a user's container can take it, and then other users' servers send it their tokens)."
                f" Label the network so users' containers get addresses from a range without it: compose.yaml"
                f" does (an older network keeps no label: remove it with the engine's `network rm {network}` when"
                f" no container uses it, and compose makes it again)"
            )
            found.append(f"hub.hub_connect_ip: {hub} is {why}")
        found += trusted_in(site, field, network, addresses, gateway)
    return found


def pools(details: dict):
    """(gateway, addresses the engine hands out) for each of a network's IPAM pools."""
    for pool in (details.get("IPAM") or {}).get("Config") or []:
        try:
            gateway = ipaddress.ip_address(pool["Gateway"]) if pool.get("Gateway") else None
            yield gateway, ipaddress.ip_network(pool.get("IPRange") or pool["Subnet"], strict=False)
        except (KeyError, ValueError):
            continue


def ip_or_none(value: str | None):
    """``value`` as an IP address, or None (unset, or a host name)."""
    try:
        return ipaddress.ip_address(value or "")
    except ValueError:
        return None


def trusted_in(site, field: str, network: str, addresses, gateway) -> list[str]:
    """A trusted proxy address that users' containers on ``network`` could be given."""
    found = []
    for i, net in enumerate(getattr(site.auth, "trusted_proxies", [])):
        only_gateway = net.num_addresses == 1 and net.network_address == gateway
        if net.version == addresses.version and net.overlaps(addresses) and not only_gateway:
            found.append(
                f"auth.trusted_proxies.{i}: {net} overlaps {addresses}, where users' containers on network"
                f" {network!r} ({field}) get their addresses: a user's container could be the trusted proxy."
                " Put the front door on a network of its own (compose.frontdoor.yaml does)"
            )
    return found


def doctor(site, known) -> list[str]:
    """For ``doctor``: an engine that does not answer; else the containers of the hub's users' servers that no server
    in the hub's database owns, left by a hub that died, or started by hand: by campushub's labels, and, for
    containers without them (an older campushub's, one started by hand), by DockerSpawner's own names."""
    import docker
    from dockerspawner import DockerSpawner

    socket = site.container.socket or os.environ.get("DOCKER_HOST") or f"unix://{origins.MOUNTED_SOCKET}"
    try:
        client = docker.DockerClient(base_url=socket, timeout=10)
        client.ping()
    except Exception as e:  # noqa: BLE001 (the SDK raises many kinds; any means no engine)
        return [f"container.socket: the engine at {socket} does not answer ({type(e).__name__}); start it"]
    if known is None:
        return []
    engine = "podman" if "podman" in str(client.version().get("Components", [])).lower() else "docker"
    by_name = {f"{DockerSpawner.prefix.default_value}-{DockerSpawner._escape(user)}": user for user in known.users}
    findings = []
    for container in sorted(client.containers.list(all=True), key=lambda c: c.name):
        if container.labels.get(PURPOSE_LABEL) == "user-server":
            user, name = container.labels.get(USER_LABEL, ""), container.labels.get(SERVER_LABEL, "")
        elif container.name in by_name and PURPOSE_LABEL not in container.labels:
            user, name = by_name[container.name], ""
        else:
            continue
        if user not in known.users or (user, name) in known.servers:
            continue
        findings.append(
            f"containers: {container.name} ({container.status}) is {user}'s server container, but the hub runs no such"
            f" server; remove it (their volume stays): {engine} rm -f {container.name}"
        )
    return findings

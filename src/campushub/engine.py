"""Ask the container engine whether the site's container profiles can run."""

from __future__ import annotations

import ipaddress

from .settings import ContainerProfile, Site


def problems(site: Site) -> list[str]:
    """Unreachable engine, missing images or networks, as ``field.path: reason`` lines."""
    profiles = [(i, p) for i, p in enumerate(site.profiles) if isinstance(p, ContainerProfile)]
    if not profiles:
        return []
    try:
        import docker
        from docker.utils import kwargs_from_env
    except ImportError:
        return ["profiles: container profiles need DockerSpawner: pip install 'campushub[container]'"]
    kwargs = {**kwargs_from_env(), "version": "auto", "timeout": 10}
    if site.container.socket:
        kwargs["base_url"] = site.container.socket
    where = kwargs.get("base_url", "unix:///var/run/docker.sock")
    try:
        client = docker.APIClient(**kwargs)
        client.ping()
    except Exception as e:  # the SDK raises several kinds for a missing socket or a dead engine
        return [f"container.socket: no container engine answers at {where} ({type(e).__name__});"
                " start one (scripts/engine start podman) or set container.socket / DOCKER_HOST"]
    found = []
    for i, profile in profiles:
        image = profile.image or site.container.image
        try:
            client.inspect_image(image)
        except docker.errors.ImageNotFound:
            found.append(f"profiles.{i}.image: {image} is not in the engine at {where};"
                         " build it (scripts/images) or load it: campushub never pulls images")
        network = profile.network or site.container.network or "bridge"
        try:
            details = client.inspect_network(network)
        except docker.errors.NotFound:
            if network != "bridge":
                found.append(f"profiles.{i}.network: there is no network {network!r} in the engine at {where}")
            continue
        found += trusted_in_pool(site, f"profiles.{i}.network", network, details)
    return list(dict.fromkeys(found))


def trusted_in_pool(site: Site, where: str, network: str, details: dict) -> list[str]:
    """A trusted proxy address that users' containers on ``network`` could be given."""
    trusted = getattr(site.auth, "trusted_proxies", [])
    found = []
    for pool in (details.get("IPAM") or {}).get("Config") or []:
        try:
            addresses = ipaddress.ip_network(pool.get("IPRange") or pool["Subnet"], strict=False)
            gateway = ipaddress.ip_address(pool["Gateway"]) if pool.get("Gateway") else None
        except (KeyError, ValueError):
            continue
        for i, net in enumerate(trusted):
            only_gateway = net.num_addresses == 1 and net.network_address == gateway
            if net.version == addresses.version and net.overlaps(addresses) and not only_gateway:
                found.append(
                    f"auth.trusted_proxies.{i}: {net} overlaps {addresses}, where users' containers on network"
                    f" {network!r} ({where}) get their addresses: a user's container could be the trusted proxy."
                    " Put the front door on a network of its own (compose.frontdoor.yaml does)"
                )
    return found

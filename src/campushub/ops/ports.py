"""The ports the hub listens on, checked before anything starts: a port some other program holds
would make JupyterHub wait on it (or its proxy fail) instead of saying so.

Where users' code runs on the hub's host behind single sign-on, the ports are guarded: any account may
take a free port above 1023, and a user's leftover process that takes the proxy's port while the hub
restarts receives what the front door sends (users' identities, ID tokens, the proxy secret), one that
takes the proxy's API port its token. Such sites listen below 1024, where only root can, by default
(:data:`GUARDED`), and a port above 1023 given in the site file is refused.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from urllib.parse import urlsplit

from ..sitefile.model import GUARDED, Site
from . import processes

UNPRIVILEGED_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


def unguarded(site: Site) -> list[str]:
    """A guarded site's ports that any account could take."""
    profiles = site.guarded()
    if not profiles:
        return []
    return [
        f"{field}: port {port} can be taken by any account while the hub is down or restarting, and users' code runs"
        f" on this host behind single sign-on (profiles.{profiles[0]}): a user's leftover process there would receive"
        f" {TAKEN[field]}. Use a port below 1024, which only root can take (default {GUARDED[field[4:]]})"
        for field, _host, port in listeners(site)
        if port >= 1024
    ]


#: what a process that took each port would receive
TAKEN = {
    "hub.bind_url": "what the front door sends (users' identities, their ID tokens, the proxy secret)",
    "hub.hub_port": "what the proxy passes to the hub (users' identities, their ID tokens, the proxy secret)",
    "hub.proxy_api_port": "the hub's token for its proxy, with which it could route any user's requests to itself",
}


def listeners(site: Site) -> list[tuple[str, str, int]]:
    """(site-file field, address, port) of every socket the hub and its proxy listen on."""
    bind = urlsplit(site.hub.bind_url)
    return [
        ("hub.bind_url", bind.hostname or "0.0.0.0", bind.port or (443 if bind.scheme == "https" else 80)),
        ("hub.hub_port", site.hub.hub_ip, site.hub.hub_port),
        ("hub.proxy_api_port", "127.0.0.1", site.hub.proxy_api_port),
    ]


def problems(site: Site) -> list[str]:
    """One line per port that is taken (naming the field, the port and who holds it) or used twice, and, for a
    guarded site, a host where any account may take ports below 1024."""
    found = _unprivileged_start(site)
    seen: dict[int, str] = {}
    for field, host, port in listeners(site):
        if port in seen:
            found.append(f"{field}: port {port} is also {seen[port]}'s; each needs a port of its own")
            continue
        seen[port] = field
        trouble = _bind_trouble(host, port)
        if trouble:
            found.append(f"{field}: {trouble}")
    return found


def _bind_trouble(host: str, port: int) -> str | None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"cannot resolve {host!r}: {e.strerror}"
    family, _type, _proto, _name, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the hub and the proxy do
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                holder = processes.holder_of(port)
                by = f" by {holder}" if holder else ""
                return f"port {port} on {host} is in use{by}; stop that program or choose another port"
            if e.errno == errno.EADDRNOTAVAIL:
                return f"{host} is not an address of this machine"
            if e.errno == errno.EACCES:
                return (
                    f"port {port} is below 1024, where only root may listen: run the hub as root (a site whose users'"
                    " code runs on its host behind single sign-on must), or choose a port above 1023"
                )
            return f"cannot listen on {host}:{port}: {e.strerror}"
    return None


def _unprivileged_start(site: Site) -> list[str]:
    """A guarded site's ports are safe only where unprivileged accounts cannot listen below 1024 (a container
    engine may set ``net.ipv4.ip_unprivileged_port_start`` to 0 inside its containers)."""
    if not site.guarded():
        return []
    try:
        start = int(UNPRIVILEGED_START.read_text())
    except (OSError, ValueError):
        return []
    taken = [(field, port) for field, _host, port in listeners(site) if port >= start]
    return [
        f"{field}: any account on this host may listen on port {port} (net.ipv4.ip_unprivileged_port_start is"
        f" {start}): set it to 1024 (sysctl -w net.ipv4.ip_unprivileged_port_start=1024), or the hub's ports can be"
        " taken while it restarts"
        for field, port in taken
    ]

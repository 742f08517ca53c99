"""The ports the hub listens on, checked before anything starts: a port some other program holds
would make JupyterHub wait on it (or its proxy fail) instead of saying so."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from .site import Site


def listeners(site: Site) -> list[tuple[str, str, int]]:
    """(site-file field, address, port) of every socket the hub and its proxy listen on."""
    bind = urlsplit(site.hub.bind_url)
    return [
        ("hub.bind_url", bind.hostname or "0.0.0.0", bind.port or (443 if bind.scheme == "https" else 80)),
        ("hub.hub_port", site.hub.hub_ip, site.hub.hub_port),
        ("hub.proxy_api_port", "127.0.0.1", site.hub.proxy_api_port),
    ]


def problems(site: Site) -> list[str]:
    """One line per port that is taken (naming the field, the port and who holds it) or used twice."""
    found = []
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
                holder = holder_of(port)
                by = f" by {holder}" if holder else ""
                return f"port {port} on {host} is in use{by}; stop that program or choose another port"
            if e.errno == errno.EADDRNOTAVAIL:
                return f"{host} is not an address of this machine"
            if e.errno == errno.EACCES:
                return f"port {port} needs root (ports below 1024); choose one above 1023"
            return f"cannot listen on {host}:{port}: {e.strerror}"
    return None


def holder_of(port: int) -> str | None:
    """``pid N (command)`` of the process listening on TCP ``port``, when this account can see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                command = " ".join(
                    Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split()
                )
                return f"pid {pid} ({command[:80]})"
        except OSError:
            continue
    return None

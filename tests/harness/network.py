"""Ports, source addresses and the tests' domain names."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

from requests.adapters import HTTPAdapter


def free_port(privileged: bool = False) -> int:
    """A free loopback port; ``privileged``: one below 1024 (which only root may take), as guarded hubs use."""
    return free_ports(1, privileged)[0]


def free_ports(count: int, privileged: bool = False) -> list[int]:
    """``count`` different free loopback ports (below 1024 when ``privileged``)."""
    candidates = random.sample(range(600, 1024), 424) if privileged else [0] * (count * 4)
    found = []
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in found:
            found.append(port)
        if len(found) == count:
            return found
    raise AssertionError(f"not {count} free ports" + (" below 1024" if privileged else ""))


class SourceAddress(HTTPAdapter):
    """Connect from a chosen loopback address (127.0.0.2 plays an untrusted host)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


#: the front door's name in tests (RFC 2606 keeps .test off the internet); users' servers are at NAME.hub.test
TEST_DOMAIN = "hub.test"
#: how Chromium finds the front door and every user's server under it
RESOLVE_TEST_DOMAIN = f"--host-resolver-rules=MAP {TEST_DOMAIN} 127.0.0.1, MAP *.{TEST_DOMAIN} 127.0.0.1"


def resolve_test_domain():
    """Make this process resolve ``hub.test`` and ``*.hub.test`` to loopback, as :data:`RESOLVE_TEST_DOMAIN` makes
    Chromium: a fake resolver, because no DNS server here serves the tests' names and ``/etc/hosts`` takes no
    wildcards. Only the tests' own clients use it; Apache and the hub never resolve these names."""
    if getattr(socket.getaddrinfo, "test_domain", False):
        return
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and (name == TEST_DOMAIN or name.endswith("." + TEST_DOMAIN)):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    getaddrinfo.test_domain = True
    socket.getaddrinfo = getaddrinfo


def proxies_on(port: int) -> list[int]:
    """PIDs of the configurable-http-proxy processes whose API port is ``port``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"configurable-http-proxy" in part for part in command) and str(port).encode() in command:
            found.append(int(pid))
    return found

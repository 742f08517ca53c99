"""Ports, source addresses and the tests' domain names."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

from requests.adapters import HTTPAdapter

#: ports browsers refuse to open (the Fetch standard's "bad ports": Chromium answers ERR_UNSAFE_PORT), which a hub
#: the browser tests visit must not get
BROWSER_REFUSES = frozenset(
    {
        *(1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104),
        *(109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515),
        *(526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049),
        *(3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080),
    }
)


def free_port(privileged: bool = False) -> int:
    """A free loopback port; ``privileged``: one below 1024 (which only root may take), as guarded hubs use."""
    return free_ports(1, privileged)[0]


def free_ports(count: int, privileged: bool = False) -> list[int]:
    """``count`` different free loopback ports (below 1024 when ``privileged``), none that browsers refuse."""
    candidates = random.sample(range(600, 1024), 424) if privileged else [0] * (count * 4)
    found = []
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in found and port not in BROWSER_REFUSES:
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

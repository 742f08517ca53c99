"""The spawner of ``container`` profiles: DockerSpawner that picks its containers' addresses.

Users' containers take their addresses from their network's ``campushub.user-addresses``
range.

Left to itself, the engine gives a container any free address of the network's subnet: a
user's container started while the hub is away can take the hub's fixed address, and other
users' servers then send it their tokens. An ``ip_range`` for the engine's own choice cannot
keep fixed addresses out on both engines: Docker lets a fixed address sit outside it, but
Podman 4.3 (CNI) refuses any fixed address outside a network's ``ip_range``. So the hub picks
each container's address itself, from the range the network's label names, which the hub's
own address (and anything else fixed) stays out of.
"""

from __future__ import annotations

import ipaddress
from typing import ClassVar

from dockerspawner import DockerSpawner

from .engine import USER_ADDRESSES, pools, user_pool


class CampusDockerSpawner(DockerSpawner):
    """DockerSpawner that gives each container a free address from its network's user-address range."""

    #: addresses given to containers not started yet (so not on the network yet), across all of the hub's spawners
    promised: ClassVar[set[str]] = set()
    address: str | None = None

    async def create_object(self):
        details = await self.docker("inspect_network", self.network_name)
        pool = user_pool(details)
        if pool is None:
            return await super().create_object()
        taken = self.promised | {gateway.compressed for gateway, _ in pools(details) if gateway}
        for container in (details.get("Containers") or {}).values():
            taken |= {container.get(key, "").split("/")[0] for key in ("IPv4Address", "IPv6Address")}
        self.address = next((a.compressed for a in pool.hosts() if a.compressed not in taken), None)
        if self.address is None:
            raise RuntimeError(
                f"no free address left in {USER_ADDRESSES}={pool} of network {self.network_name!r}:"
                " that many servers run already"
            )
        self.promised.add(self.address)
        key = "IPv4Address" if isinstance(pool, ipaddress.IPv4Network) else "IPv6Address"
        configured = self.extra_create_kwargs
        self.extra_create_kwargs = {
            **configured,
            "networking_config": {"EndpointsConfig": {self.network_name: {"IPAMConfig": {key: self.address}}}},
        }
        try:
            return await super().create_object()
        except BaseException:
            self.promised.discard(self.address)
            raise
        finally:
            self.extra_create_kwargs = configured

    async def start_object(self):
        try:
            await super().start_object()
        finally:  # started (on the network now) or failed: no longer a promise
            self.promised.discard(self.address)

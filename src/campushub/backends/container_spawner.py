"""The spawner of ``container`` profiles: DockerSpawner that picks addresses and reads how a container ended.

Addresses. Users' containers take their addresses from their network's ``campushub.user-addresses``
range.

Left to itself, the engine gives a container any free address of the network's subnet: a
user's container started while the hub is away can take the hub's fixed address, and other
users' servers then send it their tokens. An ``ip_range`` for the engine's own choice cannot
keep fixed addresses out on both engines: Docker lets a fixed address sit outside it, but
Podman 4.3 (CNI) refuses any fixed address outside a network's ``ip_range``. So the hub picks
each container's address itself, from the range the network's label names, which the hub's
own address (and anything else fixed) stays out of.

Ends. A container that stops by itself (out of memory, its server crashed) is removed when the
hub notices; before that, the hub reads its exit code, the engine's OOM flag and its log's last
lines for the user's home page.
"""

from __future__ import annotations

import ipaddress
from typing import ClassVar

from dockerspawner import DockerSpawner

from ..choices import size_text
from .engine import USER_ADDRESSES, pools, user_pool


class CampusDockerSpawner(DockerSpawner):
    """DockerSpawner that gives each container a free address from its network's user-address range,
    and says how a container ended."""

    #: addresses given to containers not started yet (so not on the network yet), across all of the hub's spawners
    promised: ClassVar[set[str]] = set()
    address: str | None = None
    #: how the container ended, read before it was removed
    ended: dict = {}

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

    async def start(self):
        self.ended = {}
        return await super().start()

    async def poll(self):
        """The container's status; one that ended by itself is read (:meth:`end_reason`), then removed.

        JupyterHub stops (so DockerSpawner removes) only servers that still run.
        """
        status = await super().poll()
        if status is not None and self.remove:
            found = await self.get_object()
            if found and found.get("State", {}).get("Status") == "exited":
                self.ended = await self._how_it_ended(found)
                await self.remove_object()
        return status

    async def end_reason(self, failed_start: bool = False) -> dict:
        """How the container ended (exit code, killed for memory), with its log's last lines; {} if it runs."""
        if not self.ended:
            found = await self.get_object()
            self.ended = await self._how_it_ended(found) if found else {}
        return self.ended

    async def _how_it_ended(self, found: dict) -> dict:
        state = found.get("State") or {}
        if not state or state.get("Running"):
            return {}
        code = state.get("ExitCode")
        limit = f" (its limit is {size_text(self.mem_limit)})" if self.mem_limit else ""
        if state.get("OOMKilled"):  # Docker: any process of the container; Podman 4.3 here: never set
            words = f"Your server ran out of memory{limit} and was stopped."
            advice = "Choose a profile (or a choice) with more memory, or load less data at once."
        elif code == 137:  # killed with SIGKILL, tini's 128 + 9
            words = f"Your server was killed (exit code 137, SIGKILL): in a container, most often for memory{limit}."
            advice = "If it was loading large data, choose a profile (or a choice) with more memory."
        else:
            words = f"Your server's container ended by itself (exit code {code})."
            advice = "The last lines of its log below say why."
        log = await self.docker("logs", found["Id"], stdout=True, stderr=True, tail=15)
        return {
            "kind": "Container",
            "state": "OOMKilled" if state.get("OOMKilled") else "exited",
            "exit_code": str(code),
            "words": words,
            "advice": advice,
            "log": log.decode(errors="replace") if isinstance(log, bytes) else str(log),
        }

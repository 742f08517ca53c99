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

Uids. Each user's container runs as a uid of its own, ``container.uid_base`` + the user's number in the
hub's database, in group 100 (``users``, which Jupyter's images give their home folders): no host
account and no other user's container has it, so none can read its processes' environment (the
server's token) as the image's shared uid 1000 allowed. The user's volume is made with a label naming
its uid; one without (made when every container ran as the image's uid) or naming another has its
files given to the user by a one-shot container first, which may only change owners.

Leftovers. The hub starts only a server it does not think runs: a container of that server's name that
runs then is one the hub lost track of (its database was reset) or another hub's on the same engine.
The start is refused in words and that container left alone, for the admins (``campushub doctor``
lists it); DockerSpawner would try to remove it and fail, which the user saw as a 500.

Ends. A container that stops by itself (out of memory, its server crashed) is removed when the
hub notices; before that, the hub reads its exit code, the engine's OOM flag and the end of its
log (at most :data:`LOG_BYTES`: a user's program can write one endless line) for the home page.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import ClassVar

import docker
from dockerspawner import DockerSpawner
from jupyterhub.objects import Server
from jupyterhub.spawner import SpawnException
from traitlets import Integer

from ...sitefile.choices import size_text
from ..base import keep_state, until_listening
from .engine import PURPOSE_LABEL, SERVER_LABEL, UID_LABEL, USER_ADDRESSES, USER_LABEL, pools, user_pool

#: the group users' containers run in: Jupyter's images give their home folders to it (users)
GROUP = 100
#: the most of a container's log the hub reads for its home page
LOG_BYTES = 16 * 1024
#: how long a start waits for the server in the container to listen before JupyterHub looks itself (seconds)
LISTEN_LIMIT = 10


class CampusDockerSpawner(DockerSpawner):
    """DockerSpawner that gives each container a free address from its network's user-address range,
    and says how a container ended."""

    #: addresses given to containers not started yet (so not on the network yet), across all of the hub's spawners
    promised: ClassVar[set[str]] = set()
    address: str | None = None
    #: how the container ended, read before it was removed
    ended: dict | None = None
    #: a start was just refused over a container this hub did not start (see Leftovers above)
    left_running = False
    uid_base = Integer(
        None,
        allow_none=True,
        config=True,
        help="Each user's container runs as uid uid_base + the user's id, group 100; None: as the image's user.",
    )

    @property
    def own_uid(self) -> int | None:
        """The uid this user's containers run as (None: the image's own user)."""
        return None if self.uid_base is None else self.uid_base + self.user.id

    async def create_object(self):
        configured = self.extra_create_kwargs
        labels = {PURPOSE_LABEL: "user-server", USER_LABEL: self.user.name, SERVER_LABEL: self.name}
        labels = {**configured.get("labels", {}), **labels}
        self.extra_create_kwargs = {**configured, "labels": labels}
        if self.own_uid is not None:
            self.extra_create_kwargs["user"] = f"{self.own_uid}:{GROUP}"
        try:
            return await self._create_with_address()
        finally:
            self.extra_create_kwargs = configured

    async def _create_with_address(self):
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
        keep_state(self)  # a hub killed before its server listens finds the container, and its session, again

    async def start(self):
        self.ended = {}
        await self.refuse_one_left_running()
        await self.prepare_volume()
        ip, port = await super().start()
        await until_listening(ip, port, min(self.http_timeout, LISTEN_LIMIT), self.still_running)
        return ip, port

    async def get_url(self):
        """Where the container's server listens, as the engine says. A hub killed while a container started finds it
        running when it starts again, with the address JupyterHub recorded before the start returned (the hub's host
        name and a port nobody listens on): on it, the restarted hub waited ``http_timeout`` for the server, and
        then stopped the container."""
        try:
            ip, port = await self.get_ip_and_port()
        except Exception as e:  # noqa: BLE001 (JupyterHub does not catch this: what it recorded is tried instead)
            self.log.warning("The address of %s's container is unknown (%s)", self.user.name, e)
            return await super().get_url()
        return Server(proto=self.server.proto, ip=ip, port=port, base_url=self.server.base_url).url

    async def refuse_one_left_running(self):
        """Refuse to start over a container of this server's name that already runs (see Leftovers above)."""
        found = await self.get_object()
        if found and found.get("State", {}).get("Running"):
            self.object_id, self.left_running = "", True  # not this hub's: JupyterHub's stop after a failed start
            raise SpawnException(
                f"A container named {self.object_name} already runs on the container engine, and this hub did not"
                " start it (a hub whose database was reset, or another hub on the same engine). Ask the admins to"
                " remove it; the files on your volume stay.",
                reason="container-left-running",
                status_code=409,
            )

    async def stop(self, now=False):
        if self.left_running:  # the start was refused over another's container: leave it be
            self.left_running = False
            return
        await super().stop(now)

    async def still_running(self) -> bool:
        return await self.poll() is None

    async def prepare_volume(self):
        """The user's own volume (``container.volume``, the first of ``volumes``), owned by the user's uid."""
        uid = self.own_uid
        if uid is None or not self.volumes:
            return
        name = self.format_volume_name(next(iter(self.volumes)), self)
        try:
            found = await self.docker("inspect_volume", name)
        except docker.errors.NotFound:
            # empty: its first mount copies in the image's folder, whose group (users) the container runs in
            await self.docker("create_volume", name=name, labels={UID_LABEL: str(uid)})
            return
        if (found.get("Labels") or {}).get(UID_LABEL) == str(uid):
            return
        self.log.info("Giving the files of volume %s to %s's uid %s", name, self.user.name, uid)
        await self.give_volume(name, uid)

    async def give_volume(self, name: str, uid: int):
        """Change the owner of everything in volume ``name`` to ``uid``: in a container of the user's image, as
        root with no right but changing owners (and reading folders to get there), no network, removed after."""
        host = self.client.create_host_config(
            binds={name: {"bind": "/volume", "mode": "rw"}},
            network_mode="none",
            cap_drop=["ALL"],
            cap_add=["CHOWN", "DAC_READ_SEARCH"],
        )
        made = await self.docker(
            "create_container",
            image=self.image,
            entrypoint=["chown"],
            command=["-R", "--no-dereference", f"{uid}:{GROUP}", "/volume"],
            user="0:0",
            host_config=host,
            labels={PURPOSE_LABEL: "volume-owner"},
        )
        try:
            await self.docker("start", made["Id"])
            result = await self.docker("wait", made["Id"], timeout=600)
        finally:
            await self.docker("remove_container", made["Id"], force=True)
        if result.get("StatusCode"):
            raise RuntimeError(f"could not give volume {name} to uid {uid} (chown exited {result['StatusCode']})")

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

    def session_info(self) -> dict:
        """Where the server runs, for the home page's card."""
        return {"where": f"in a container of its own ({self.container_name})"} if self.container_name else {}

    def usage_facts(self) -> dict:
        """Where the server runs and its GPUs, for the sessions ledger."""
        requests = (self.extra_host_config or {}).get("device_requests") or []
        gpus = sum(int(r.get("Count", 0)) for r in requests if isinstance(r, dict) and r.get("Count", 0) > 0)
        return {"host": socket.gethostname(), "container": self.container_name, "gpus": gpus}

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
        log = await self.docker("logs", found["Id"], stdout=True, stderr=True, tail=15, stream=True)
        return {
            "kind": "Container",
            "state": "OOMKilled" if state.get("OOMKilled") else "exited",
            "exit_code": str(code),
            "words": words,
            "advice": advice,
            "log": await asyncio.to_thread(_bounded, log),
        }


def _bounded(stream) -> str:
    """At most :data:`LOG_BYTES` of a log the engine streams, from its start (the last lines asked for)."""
    data = b""
    try:
        for chunk in stream:
            data += chunk
            if len(data) >= LOG_BYTES:
                break
    finally:
        stream.close()
    return data[:LOG_BYTES].decode(errors="replace")

"""The spawners of ``local`` profiles: JupyterHub's local spawners, which start servers by forking them from a
pre-imported parent (:mod:`.forking`); when the fast path cannot serve, the server starts the normal way and the
hub's log says why. Either way a server's output goes to a log of its user's own (:mod:`campushub.server.output`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner
from jupyterhub.utils import random_port
from traitlets import Bool

from ...ops import processes
from ...server import output, userfile
from ...server.singleuser import GATE
from ..accounts import OwnAccount
from ..base import keep_state
from . import forking

#: ports this hub gave local servers that have not stopped: never given to a second server at once (two starts
#: given the same free port would both be routed to whichever server took it)
GIVEN: set[int] = set()


def given_port() -> int:
    """A free port no other local server of this hub was given."""
    for _ in range(1000):
        port = random_port()
        if port not in GIVEN:
            GIVEN.add(port)
            return port
    raise RuntimeError("no free port that no other server was given")


class FastStart(LocalProcessSpawner):
    """A local spawner that starts the server by forking it from a pre-imported parent."""

    fast_start = Bool(True, config=True, help="Fork servers from a pre-imported parent.")
    share_identical_pages = Bool(
        False, config=True, help="Let the host's kernel merge a forked server's pages with identical ones (KSM)."
    )
    gated = Bool(False, help="While a server starts the normal way: it waits on its stdin for the hub's go.")

    async def start(self):
        if self.port == 0:
            self.port = given_port()
        python = forking.interpreter(self.cmd[0]) if self.fast_start else None
        if python is None:
            if self.fast_start:
                self.log.info("Starting %s the normal way: %s is not a Python script", self._log_name, self.cmd[0])
            return await self.start_normally()
        env = self.get_env()
        argv = [*self.cmd, *self.get_args()]
        try:
            spec = self.fork_spec(env, argv) | {"share_pages": self.share_identical_pages}
            await forking.fork(python, spec, self.log, self.started)
        except forking.Unavailable as e:
            self.log.warning("Starting %s the normal way: %s", self._log_name, e)
            return await self.start_normally()
        self.log.info("Forked %s as pid %s", self._log_name, self.pid)
        return self.ip or "127.0.0.1", self.port

    async def start_normally(self) -> tuple[str, int]:
        """JupyterHub's start (a new process), held at campushub-singleuser's gate until its pid is saved."""
        self.popen_kwargs = {**self.popen_kwargs, "stdin": subprocess.PIPE}  # type: ignore[has-type]
        self.gated = True
        try:
            await super().start()
        finally:  # a start again (another port) may fork: a forked server must not wait on the fork server's stdin
            self.gated = False
        self.started(self.proc.pid)
        with contextlib.suppress(OSError):  # it has ended already: the hub's poll finds that
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.close()
        return self.ip or "127.0.0.1", self.port

    def started(self, pid: int):
        """Save the new process's pid, however it was started, before its server may start (see ``keep_state``)."""
        self.pid = pid
        keep_state(self, self.ip or "127.0.0.1", self.port)

    def make_preexec_fn(self, name):
        """JupyterHub's (the user's account and folder), then the server's output to its own log."""
        become, log = super().make_preexec_fn(name), self.server_log()

        def preexec():
            become()
            output.output_to(log)  # stdin stays: the hub's "go" comes on it

        return preexec

    def server_log(self) -> str:
        """The server's log (its output), in its folder."""
        raise NotImplementedError

    async def read_log(self) -> str:
        """The last lines of the server's log; "" when they cannot be read safely."""
        raise NotImplementedError

    async def end_reason(self, failed_start: bool = False) -> dict:
        """The last lines of the server's log, all a local server leaves of how it ended."""
        log = await self.read_log()
        return {"log": log} if log else {}

    def get_env(self):
        env = super().get_env()
        if self.gated:
            env[GATE] = "1"
        return env

    def session_info(self) -> dict:
        """Where the server runs, for the home page's card."""
        return {"where": "on the hub's machine"} if self.pid else {}

    def usage_facts(self) -> dict:
        """Where the server runs, for the sessions ledger: this host."""
        return {"host": socket.gethostname()}

    def listener_problem(self, port: int) -> str:
        """Why the hub must not route the user to what listens on ``port``: it is not this server's process (another
        program, or another user's code, took the port first); "" when it is, or when the hub cannot tell."""
        if not self.pid or processes.listens(self.pid, port) is not False:
            return ""
        # who holds it goes to the hub's log only: the user is told no other account's name or command
        self.log.warning(
            "%s: port %s is held by %s, not by pid %s", self._log_name, port, processes.holder_of(port), self.pid
        )
        return f"Port {port} on the hub's host is held by another process, not by your server."

    async def stop(self, now=False):
        try:
            await super().stop(now=now)
        finally:
            GIVEN.discard(self.port)

    def load_state(self, state):
        super().load_state(state)
        if self.pid and self.server is not None and self.server.port:  # a server found at the hub's start
            GIVEN.add(self.server.port)


class CampusLocalSpawner(FastStart, OwnAccount):
    """LocalProcessSpawner (each server as its user's own account, never a system account's) with the fast start."""

    async def start(self):
        self.own_account()
        return await super().start()

    def fork_spec(self, env: dict, argv: list[str]) -> dict:
        account = self.own_account()
        return {
            "argv": argv,
            "env": env,
            "cwd": account.pw_dir,
            "uid": account.pw_uid,
            "gid": account.pw_gid,
            "groups": os.getgrouplist(self.user.name, account.pw_gid),
            "umask": 0o022,
            "log": self.server_log(),
        }

    def server_log(self) -> str:
        return os.path.join(self.own_account().pw_dir, output.FILE)

    async def read_log(self) -> str:
        """Read as the user (a root hub's child that becomes them): the folder is theirs."""
        return await userfile.read_tail(self.user.name, self.server_log(), [])


class CampusHubAccountSpawner(FastStart, SimpleLocalProcessSpawner):
    """SimpleLocalProcessSpawner (servers as the hub's own account, each in its folder) with the fast start."""

    def fork_spec(self, env: dict, argv: list[str]) -> dict:
        return {"argv": argv, "env": env, "cwd": self.home_dir, "uid": None, "umask": 0o022, "log": self.server_log()}

    def server_log(self) -> str:
        return os.path.join(self.home_dir, output.FILE)

    async def read_log(self) -> str:
        """Read by the hub, as the account the server ran as (its own), within the same bounds."""
        try:
            return await asyncio.to_thread(userfile.tail, self.server_log())
        except OSError:
            return ""

"""The spawners of ``local`` profiles: JupyterHub's local spawners, which start servers by forking them from a
pre-imported parent (:mod:`.forking`); when the fast path cannot serve, the server starts the normal way and the
hub's log says why."""

from __future__ import annotations

import os
import socket

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner
from jupyterhub.utils import random_port
from traitlets import Bool

from ..accounts import OwnAccount
from ..base import keep_state
from . import forking


class FastStart(LocalProcessSpawner):
    """A local spawner that starts the server by forking it from a pre-imported parent."""

    fast_start = Bool(True, config=True, help="Fork servers from a pre-imported parent.")

    async def start(self):
        if self.port == 0:
            self.port = random_port()
        python = forking.interpreter(self.cmd[0]) if self.fast_start else None
        if python is None:
            if self.fast_start:
                self.log.info("Starting %s the normal way: %s is not a Python script", self._log_name, self.cmd[0])
            return await super().start()
        env = self.get_env()
        argv = [*self.cmd, *self.get_args()]
        try:
            self.pid = await forking.fork(python, self.fork_spec(env, argv), self.log)
        except forking.Unavailable as e:
            self.log.warning("Starting %s the normal way: %s", self._log_name, e)
            return await super().start()
        self.log.info("Forked %s as pid %s", self._log_name, self.pid)
        ip = self.ip or "127.0.0.1"
        keep_state(self, ip, self.port)
        return (ip, self.port)

    def session_info(self) -> dict:
        """Where the server runs, for the home page's card."""
        return {"where": "on the hub's machine"} if self.pid else {}

    def usage_facts(self) -> dict:
        """Where the server runs, for the sessions ledger: this host."""
        return {"host": socket.gethostname()}


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
        }


class CampusHubAccountSpawner(FastStart, SimpleLocalProcessSpawner):
    """SimpleLocalProcessSpawner (servers as the hub's own account, each in its folder) with the fast start."""

    def fork_spec(self, env: dict, argv: list[str]) -> dict:
        return {"argv": argv, "env": env, "cwd": self.home_dir, "uid": None, "umask": 0o022}

"""The hub API's start requests, judged before JupyterHub stores them.

JupyterHub keeps a start request's ``user_options`` in its database as they come (``POST`` and ``PUT``
before the start, ``PATCH`` without starting), and writes ``PATCH``'s into its log: a refused 20 MB
request still filled the database and the hub's memory. These handlers ask the profiles spawner
(:meth:`~campushub.hub.spawner.CampusProfilesSpawner.judge`) first, so that only options it would take are
ever kept; the hub reads no body over :data:`campushub.hub.api.MAX_BODY_BYTES` at all. A stop request says
who asked (the user, an admin, the idle culler) for the sessions ledger.
"""

from __future__ import annotations

from jupyterhub import orm
from jupyterhub.apihandlers.users import UserServerAPIHandler
from jupyterhub.scopes import needs_scope

from . import api

#: the idle culler's service, whose stops the ledger records as ``culled``
CULLER_SERVICE = "jupyterhub-idle-culler-service"
PATHS = (r"/api/users/([^/]+)/server", r"/api/users/([^/]+)/servers/([^/]*)")


class JudgedServerAPIHandler(UserServerAPIHandler):
    """JupyterHub's server API, whose requests' options are judged before anything of them is stored."""

    async def judge(self, user_name: str, server_name: str, options):
        user = self.find_user(user_name)
        if options is None or user is None:  # nothing to keep, or JupyterHub answers 404
            return
        spawner = user.spawners.get(server_name) if server_name else user.spawner
        judge = getattr(spawner, "judge", None)
        if judge is not None:
            await judge(options)

    @needs_scope("start:servers")
    async def post(self, user_name, server_name=""):
        await self.judge(user_name, server_name, self.get_server_json_body()["user_options"])
        return await super().post(user_name, server_name)

    @needs_scope("start:servers")
    async def put(self, user_name, server_name=""):
        await self.judge(user_name, server_name, self.get_server_json_body()["user_options"])
        return await super().put(user_name, server_name)

    @needs_scope("start:servers")
    async def patch(self, user_name, server_name=""):
        body = self.get_json_body()
        await self.judge(user_name, server_name, body.get("user_options") if isinstance(body, dict) else None)
        return await super().patch(user_name, server_name)

    @needs_scope("delete:servers")
    async def delete(self, user_name, server_name=""):
        user = self.find_user(user_name)
        spawner = (user.spawners.get(server_name) if server_name else user.spawner) if user else None
        if spawner is not None and hasattr(spawner, "stopped_by"):
            spawner.stopped_by = self.stopper(user_name)
        return await super().delete(user_name, server_name)

    def stopper(self, owner: str) -> str:
        """Who asks for this stop, as the ledger's outcome: ``user``, ``admin`` (anyone else) or ``culled``."""
        asker = self.current_user
        if isinstance(asker, orm.Service) or getattr(asker, "kind", "") == "service":
            return "culled" if asker.name == CULLER_SERVICE else "admin"
        return "user" if asker is not None and asker.name == owner else "admin"


def install():
    """Serve :class:`JudgedServerAPIHandler` where JupyterHub serves its own."""
    for path in PATHS:
        api.register(path, JudgedServerAPIHandler)

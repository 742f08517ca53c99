"""The single-user server's side of the JupyterLab extension ``campushub-session`` (``labextension/``).

``GET {base_url}campushub/session`` says when the server's Slurm job ends (``squeue``'s expected
end time for ``$SLURM_JOB_ID``, asked again at most every 30 s, so a changed time limit shows),
the minutes before it at which to warn, and how long before it every open document is saved.
Outside a Slurm job it answers ``{}`` and the extension shows nothing. Only the standard library
and jupyter_server are imported: the lab images carry campushub without its dependencies.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import subprocess
import time

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

#: set by campushub's Slurm backend in the job's environment
WARN_MINUTES = "CAMPUSHUB_WARN_MINUTES"
SAVE_SECONDS = "CAMPUSHUB_SAVE_SECONDS"
ASK_EVERY = 30  # s
_asked: dict = {"at": 0.0, "ends_at": None}


def job_end(job: str) -> float | None:
    """The job's expected end (epoch seconds) from squeue, or None when Slurm does not say."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%e"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return datetime.datetime.fromisoformat(out).timestamp()  # squeue writes local time
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _numbers(text: str) -> list[int]:
    return sorted({int(n) for n in text.split(",") if n.strip().isdigit()}, reverse=True)


async def session(environ=os.environ) -> dict:
    job = environ.get("SLURM_JOB_ID", "")
    if not job.isdigit():
        return {}
    if time.monotonic() - _asked["at"] > ASK_EVERY:
        _asked.update(at=time.monotonic(), ends_at=await asyncio.to_thread(job_end, job))
    if _asked["ends_at"] is None:
        return {}
    return {
        "job": job,
        "ends_at": _asked["ends_at"],
        "warn_minutes": _numbers(environ.get(WARN_MINUTES, "10,2")),
        "save_seconds": int(environ.get(SAVE_SECONDS, "60") or 0),
    }


class SessionHandler(APIHandler):
    @web.authenticated
    async def get(self):
        self.finish(json.dumps(await session()))


def _jupyter_server_extension_points():
    return [{"module": "campushub.server.lab_session"}]


def _load_jupyter_server_extension(serverapp):
    route = url_path_join(serverapp.web_app.settings["base_url"], "campushub", "session")
    serverapp.web_app.add_handlers(".*$", [(route, SessionHandler)])

"""A batch job's server tells the hub its port once it listens: campushub's ``batchspawner-singleuser``.

``batchspawner-singleuser`` reports a port before the server has started, and to do so imports
batchspawner, which imports the hub's API handlers and database layer: about half a second of the
job's CPU before JupyterLab begins to import, after which the hub still waits for the server to
answer. In a job whose environment has ``CAMPUSHUB_REPORT_PORT=1`` (campushub's Slurm backend sets it
where the nodes have ``campushub-singleuser``), the server picks its port itself as it starts
(:func:`choose`) and this server extension reports the port it has bound, from the server's event loop
once it runs: the hub's start ends as the server can answer. It imports only the standard library and
what a single-user server imports anyway.
"""

from __future__ import annotations

import asyncio
import os
import socket
from urllib.parse import urlsplit, urlunsplit

#: set ("1") by campushub's Slurm backend in the job's environment
REPORT_PORT = "CAMPUSHUB_REPORT_PORT"
#: how often a report the hub did not receive (a hub restarting) is sent again, a second apart
ATTEMPTS = 10
#: where and with which token this server reports, once chosen
_report: dict = {}


def choose(environ=os.environ) -> int | None:
    """Pick a free port for a job's server and put it in ``JUPYTERHUB_SERVICE_URL``, where the server reads it."""
    if environ.pop(REPORT_PORT, "") != "1":
        return None
    with socket.socket() as probe:
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    url = urlsplit(environ["JUPYTERHUB_SERVICE_URL"])
    host = f"[{url.hostname}]" if ":" in (url.hostname or "") else url.hostname
    environ["JUPYTERHUB_SERVICE_URL"] = urlunsplit(url._replace(netloc=f"{host}:{port}"))
    _report.update(
        url=environ["JUPYTERHUB_API_URL"].rstrip("/") + "/batchspawner", token=environ["JUPYTERHUB_API_TOKEN"]
    )
    return port


async def report(port: int, log) -> bool:
    """Tell the hub the port: True once it took it; False if it refused it, or did not answer ``ATTEMPTS`` times."""
    from aiohttp import ClientError
    from jupyterhub.httpclient import fetch

    headers = {"Authorization": f"token {_report['token']}"}
    for attempt in range(ATTEMPTS):
        try:
            answer = await fetch(
                _report["url"], method="POST", json={"port": port}, headers=headers, raise_for_status=False
            )
        except (TimeoutError, ClientError, OSError) as e:
            log.warning("campushub: the hub did not take the port (%s); trying again", e)
        else:
            if answer.status == 201:
                log.info("campushub: reported port %s to the hub", port)
                return True
            text = (await answer.text())[:200]
            if answer.status < 500:
                log.critical("campushub: the hub refused the port %s: %s %s", port, answer.status, text)
                return False
            log.warning("campushub: the hub could not take the port (%s %s); trying again", answer.status, text)
        if attempt < ATTEMPTS - 1:
            await asyncio.sleep(1)
    return False


def _jupyter_server_extension_points():
    return [{"module": "campushub.server.job_port"}]


def _load_jupyter_server_extension(serverapp):
    """Nothing to set up: the report is sent once the server runs."""


async def _start_jupyter_server_extension(serverapp):
    """Runs once the server's event loop does, after it has bound its port: report it, or end the server (and so
    its job, which the hub then reports as ended) when the hub will not take it."""
    if _report and not await report(serverapp.port, serverapp.log):
        serverapp.stop()

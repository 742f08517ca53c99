"""A Slurm job's server picks its port and reports it to the hub (campushub.server.job_port), against a real
HTTP server standing where the hub's callback is."""

import asyncio
import json
import logging

import pytest
from tornado import httpserver, netutil, web

from campushub.server import job_port

LOG = logging.getLogger("test")


def test_a_job_picks_a_free_port_and_puts_it_where_the_server_reads_it(monkeypatch):
    env = {
        job_port.REPORT_PORT: "1",
        "JUPYTERHUB_SERVICE_URL": "http://10.0.0.5:0/user/ada/",
        "JUPYTERHUB_API_URL": "http://hub:8081/hub/api/",
        "JUPYTERHUB_API_TOKEN": "t0ken",
    }
    monkeypatch.setattr(job_port, "_report", {})
    port = job_port.choose(env)
    assert 1024 <= port <= 65535
    assert env["JUPYTERHUB_SERVICE_URL"] == f"http://10.0.0.5:{port}/user/ada/"
    assert job_port.REPORT_PORT not in env  # not passed on to kernels
    assert job_port._report == {"url": "http://hub:8081/hub/api/batchspawner", "token": "t0ken"}
    env = {job_port.REPORT_PORT: "1", "JUPYTERHUB_SERVICE_URL": "http://[fd00::5]:0/user/ada/"}
    env.update(JUPYTERHUB_API_URL="http://hub/hub/api", JUPYTERHUB_API_TOKEN="t")
    port = job_port.choose(env)
    assert env["JUPYTERHUB_SERVICE_URL"] == f"http://[fd00::5]:{port}/user/ada/"


def test_without_the_variable_nothing_is_chosen(monkeypatch):
    monkeypatch.setattr(job_port, "_report", {})
    env = {"JUPYTERHUB_SERVICE_URL": "http://10.0.0.5:8888/user/ada/"}
    assert job_port.choose(env) is None
    assert env == {"JUPYTERHUB_SERVICE_URL": "http://10.0.0.5:8888/user/ada/"} and job_port._report == {}


class Callback(web.RequestHandler):
    def initialize(self, answers, seen):
        self.answers, self.seen = answers, seen

    def post(self):
        self.seen.append((self.request.headers.get("Authorization"), json.loads(self.request.body)))
        self.set_status(self.answers.pop(0) if len(self.answers) > 1 else self.answers[0])


@pytest.mark.parametrize(
    ("answers", "taken", "asked"),
    [([201], True, 1), ([503, 201], True, 2), ([403], False, 1), ([409], False, 1)],
)
def test_the_report_is_sent_again_only_while_the_hub_cannot_take_it(monkeypatch, answers, taken, asked):
    async def scenario():
        seen: list = []
        routes = [("/hub/api/batchspawner", Callback, {"answers": answers, "seen": seen})]
        server = httpserver.HTTPServer(web.Application(routes))
        [sock] = netutil.bind_sockets(0, "127.0.0.1")
        server.add_sockets([sock])
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hub/api/batchspawner"
        monkeypatch.setattr(job_port, "_report", {"url": url, "token": "t0ken"})
        try:
            return await job_port.report(4242, LOG), seen
        finally:
            server.stop()
            await closed_client()

    result, seen = asyncio.run(scenario())
    assert result is taken
    assert seen == [("token t0ken", {"port": 4242})] * asked


def test_a_hub_that_never_answers_is_given_up_on(monkeypatch):
    monkeypatch.setattr(job_port, "ATTEMPTS", 2)
    monkeypatch.setattr(job_port, "_report", {"url": "http://127.0.0.1:9/hub/api/batchspawner", "token": "t"})

    async def scenario():
        try:
            return await job_port.report(4242, LOG)
        finally:
            await closed_client()

    assert asyncio.run(scenario()) is False


async def closed_client():
    """JupyterHub's HTTP client is one per event loop: close this test's, as a server's lasts with its loop."""
    from jupyterhub.httpclient import JupyterHubHTTPClient

    await JupyterHubHTTPClient.loop_instance().close()

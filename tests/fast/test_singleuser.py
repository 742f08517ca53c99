"""campushub-singleuser's leaner start: what a server imports of the hub, and that what it leaves out still works."""

import asyncio
import os
import subprocess
import sys
import textwrap

SERVER_IMPORTS = """
import sys
from campushub.server import singleuser
singleuser.diet()
import jupyterhub.singleuser, jupyterhub.singleuser.extension, jupyterlab.labapp
"""


def run(code: str, env: dict | None = None) -> str:
    command = [sys.executable, "-c", SERVER_IMPORTS + textwrap.dedent(code)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_server_imports_neither_the_hubs_handlers_nor_its_database_layer():
    out = run("""
        from importlib.util import _LazyModule
        hub = ("alembic", "jupyterhub.handlers", "jupyterhub.metrics", "sqlalchemy.exc", "jupyterhub.user")
        print(sorted(m for m in hub if m in sys.modules))
        print(all(type(sys.modules[m]) is _LazyModule for m in singleuser.DEFERRED))
    """)
    assert out.split("\n")[:2] == ["[]", "True"], out


def test_what_was_left_out_is_the_real_thing_when_used():
    out = run("""
        from jupyterhub import orm, scopes
        import jupyterhub.metrics, jupyterhub.handlers.pages
        print(orm.User.__tablename__, "alembic" in sys.modules)
        health = jupyterhub.handlers.pages.HealthCheckHandler
        print(hasattr(jupyterhub.metrics, "REQUEST_DURATION_SECONDS"), health.__module__)
        print(sorted(scopes.expand_scopes({"read:users"})) != [])
    """)
    assert out.split("\n")[:3] == ["users True", "True jupyterhub.handlers.pages", "True"], out


def test_the_servers_request_log_still_logs():
    out = run("""
        import logging
        from types import SimpleNamespace
        from jupyterhub.log import log_request
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
        request = SimpleNamespace(method="GET", uri="/user/ada/api/status", remote_ip="127.0.0.1", headers={},
                                  request_time=lambda: 0.004)
        handler = SimpleNamespace(request=request, get_status=lambda: 200, current_user=None, settings={},
                                  log=logging.getLogger("tornado.access"))
        log_request(handler)
    """)
    assert "200 GET /user/ada/api/status" in out, out


def test_a_kernel_parent_forgets_the_unused_hub_modules_and_can_still_use_them():
    """ipykernel reads every module's __file__ as a kernel starts: the deferred ones must not be there to read."""
    out = run("""
        singleuser.forget_deferred()
        print(sorted(m for m in singleuser.DEFERRED if m in sys.modules))
        [m.__file__ for m in sys.modules.copy().values() if hasattr(m, "__file__")]  # what ipykernel does
        print("alembic" in sys.modules)
        from jupyterhub import orm
        print(orm.User.__tablename__)
    """)
    assert out.split("\n")[:3] == ["[]", "False", "users"], out


def test_jupyterlabs_deferred_http_client_loads_when_used():
    out = run("""
        from jupyterlab_server import listings_handler
        print(type(sys.modules["requests"]).__name__, listings_handler.requests.codes.ok)
    """)
    assert out.split("\n")[0] == "_LazyModule 200", out


def test_a_server_started_the_normal_way_waits_for_the_hubs_go_and_ends_without_it():
    """The hub writes "go" once it has saved the server's pid; a hub killed before then closes the pipe."""
    env = {"PATH": "/usr/bin:/bin", "CAMPUSHUB_GATE": "1"}
    for said in ("", "stop\n"):  # the pipe closed, and anything but "go"
        command = [sys.executable, "-c", "from campushub.server.singleuser import main; main()"]
        done = subprocess.run(command, input=said, capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip() == (
            "campushub-singleuser: the hub stopped before it recorded this server's start; not starting"
        )


def test_the_hub_sends_the_go_after_the_start_and_only_a_start_the_normal_way_waits_for_it(monkeypatch):
    """The hub's side of the gate. JupyterHub's own start (Popen of the server command) is replaced by a stand-in that
    starts ``cat`` with the same Popen arguments: this fast layer has no hub; the services' tests start real
    servers the normal way (test_fast_start.py, test_recovery.py)."""
    from jupyterhub.objects import Hub
    from jupyterhub.spawner import LocalProcessSpawner

    from campushub.backends.local.spawner import CampusHubAccountSpawner
    from campushub.server.singleuser import GATE
    from harness import StubUser

    told = []

    async def start(self):
        told.append(self.get_env().get(GATE))
        self.proc = subprocess.Popen(["cat"], stdout=subprocess.PIPE, **self.popen_kwargs)
        self.pid = self.proc.pid
        return "127.0.0.1", self.port

    monkeypatch.setattr(LocalProcessSpawner, "start", start)
    spawner = CampusHubAccountSpawner(user=StubUser(), hub=Hub(), orm_spawner=None, port=12345)
    assert asyncio.run(spawner.start_normally()) == ("127.0.0.1", 12345)
    assert told == ["1"]
    assert spawner.proc.stdout.read() == b"go\n"  # then the pipe closed
    assert spawner.proc.wait(10) == 0
    assert GATE not in spawner.get_env()  # a start again on another port may fork: that server must not wait


def test_an_empty_command_line_ends_as_a_parsed_one_and_any_other_is_parsed():
    out = run("""
        from jupyterhub.singleuser import make_singleuser_app
        from jupyter_server.serverapp import ServerApp
        from jupyterlab.labapp import LabApp
        from ipykernel.kernelapp import IPKernelApp
        from traitlets.config import Application

        def state(app):
            return app.argv, dict(app.cli_config), app.extra_args, app.config

        parse = Application.parse_command_line.parse  # traitlets' own
        for cls in (make_singleuser_app(ServerApp), LabApp, IPKernelApp):
            quickly, parsed = cls(), cls()
            quickly.parse_command_line([])
            parse(parsed, [])
            print(cls.__name__, state(quickly) == state(parsed))
        app = IPKernelApp()
        app.parse_command_line(["-f", "/tmp/kernel.json", "extra"])
        print(app.config.IPKernelApp.connection_file, app.extra_args)
    """)
    lines = out.split("\n")
    assert lines[:3] == ["SingleUserNotebookApp True", "LabApp True", "IPKernelApp True"], out
    assert lines[3] == "/tmp/kernel.json ['extra']", out


def test_the_servers_hub_client_starts_no_resolver_thread_and_kernels_get_aiohttps_default():
    out = run("""
        import asyncio, threading
        import aiohttp

        async def connector():
            before = threading.active_count()
            made = aiohttp.TCPConnector()
            kind = type(made._resolver).__name__, threading.active_count() - before
            await made.close()
            return kind

        print(*asyncio.run(connector()))
        singleuser.aiohttp_as_installed()  # as a kernel parent does for its kernels
        print(*asyncio.run(connector()))
    """)
    assert out.split("\n")[:2] == ["ThreadedResolver 0", "AsyncResolver 1"], out


def test_the_hub_clients_ssl_contexts_read_the_systems_certificates_at_their_first_connection_and_still_verify(
    tmp_path,
):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"  # a certificate for localhost that no system trusts
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run(
        ["openssl", *request, "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    code = f"""
        import asyncio, ssl
        import aiohttp
        from aiohttp import connector

        system = ssl.create_default_context().cert_store_stats()["x509_ca"]  # made after the imports: reads at once
        verified = connector._SSL_CONTEXT_VERIFIED
        held = verified.cert_store_stats()["x509_ca"]
        print(system > 0, held, verified.verify_mode == ssl.CERT_REQUIRED, verified.check_hostname)

        async def answer(reader, writer):
            await reader.readuntil(b"\\r\\n\\r\\n")
            writer.write(b"HTTP/1.1 204 No Content\\r\\nContent-Length: 0\\r\\n\\r\\n")
            await writer.drain()
            writer.close()

        async def fetch():
            server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_side.load_cert_chain({str(cert)!r}, {str(key)!r})
            server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_side)
            port = server.sockets[0].getsockname()[1]
            async with aiohttp.ClientSession() as session:
                try:
                    async with session.get(f"https://localhost:{{port}}/") as response:
                        return response.status
                except aiohttp.ClientConnectorCertificateError as e:
                    return type(e.certificate_error).__name__

        print(asyncio.run(fetch()), verified.cert_store_stats()["x509_ca"] == system)
    """
    out = run(code)
    assert out.split("\n")[:2] == ["True 0 True True", "SSLCertVerificationError True"], out
    # the same, where the system's CA bundle is that certificate (OpenSSL reads SSL_CERT_FILE as it loads the bundle)
    out = run(code, env={**os.environ, "SSL_CERT_FILE": str(cert)})
    assert out.split("\n")[:2] == ["True 0 True True", "204 True"], out


def test_a_cold_server_collects_again_from_its_start_with_its_set_up_frozen():
    """``main`` leaves the collector off through the imports and set-up; the server turns it on as it starts, before
    it listens. The server's listening and its event loop are stood in for (the order is what is tested; the service
    tests run real servers, whose kernels must collect)."""
    out = run("""
        import gc
        from jupyter_server.serverapp import ServerApp
        gc.disable()
        singleuser.collect_once_started()
        app = ServerApp()
        app.start_app = lambda: print("listens", gc.isenabled(), gc.get_freeze_count() > 10000)
        app.start_ioloop = lambda: print("loop", gc.isenabled())
        app.start()
    """)
    assert out.split("\n")[:2] == ["listens True True", "loop True"], out


def test_only_a_cold_start_turns_the_collector_off():
    """A child of the fork server (``serve``) keeps the collector as its parent left it. The server itself is stood
    in for: what is asserted is the collector's state as it would start."""
    out = run("""
        import gc
        from unittest import mock
        with mock.patch("jupyterhub.singleuser.main", lambda: gc.isenabled()):
            print(singleuser.serve(), singleuser.main())
    """)
    assert out.split("\n")[0] == "True False", out


def test_a_server_runs_no_git_in_a_repository_its_environment_sits_in(tmp_path):
    """jupyter_server ran ``git rev-parse`` as each server started when a ``.git`` was in a folder above it."""
    (tmp_path / ".git").mkdir()
    package = tmp_path / "venv" / "site-packages" / "jupyter_server"
    package.mkdir(parents=True)
    look = f"""
        import subprocess
        from jupyter_server import _sysinfo
        runs = []
        def popen(*args, **kwargs):
            runs.append(args)
            raise OSError("recorded")
        subprocess.Popen = popen
        print(_sysinfo.pkg_commit_hash({str(package)!r}), len(runs))
    """
    assert run(look).splitlines()[0] == "('', '') 0"
    bare = subprocess.run([sys.executable, "-c", textwrap.dedent(look)], capture_output=True, text=True, check=True)
    assert bare.stdout.splitlines()[0] == "('', '') 1"  # without campushub's diet: git is run (the check can fail)

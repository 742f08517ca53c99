"""``campushub doctor``: what is wrong with a running deployment, one finding a line, each with what to do.

It reads what the hub left behind (its database, the proxy's routes, the state directory, the
front door's certificate) and asks the services the profiles use; it changes nothing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ..backends import used
from ..backends.base import Known
from ..sitefile.errors import StartError
from ..sitefile.model import Site
from . import database, health, processes, state

#: a finding when less than this is free in the state directory
LOW_SPACE_BYTES = 1 << 30
#: a finding when the front door's certificate expires within this many days
CERT_DAYS = 21


def examine(site: Site, frontdoor_dir: Path | None = None) -> list[str]:
    """Every finding for the deployment of ``site``; an empty list when it is healthy."""
    findings = []
    hub_pid = state.running_hub(site.hub.state_dir)
    url = health.health_url(site.hub.bind_url)
    up = health.get(url) is not None
    if not up:
        findings.append(f"hub: nothing answers {url}; start it with `campushub up` (its output says why it stopped)")
    findings += orphan_proxy(site, hub_pid, up)
    known = read_known(site, findings)
    if up and known is not None:
        findings += route_findings(site, known.started)
    findings += index_findings(site)
    findings += space_findings(site)
    findings += certificate_findings(site, frontdoor_dir)
    findings += kernel_findings(site)
    for backend in used(site):  # each backend's service, and what it left that no server of the hub owns
        findings += backend.doctor(site, known)
    return findings


def read_known(site: Site, findings: list[str]) -> Known | None:
    """What the hub's database says: its users, and each server it runs (or starts) with when it started and its
    saved state; None (and a finding) when the database cannot be read."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(database.url(site))
    try:
        if database.revision(site) is None:
            return Known(set(), {}, {})  # never started: no tables yet
        with engine.connect() as connection:
            users = {name for (name,) in connection.execute(text("SELECT name FROM users"))}
            rows = connection.execute(
                text(
                    "SELECT users.name, spawners.name, spawners.started, spawners.state FROM spawners"
                    " JOIN users ON spawners.user_id = users.id WHERE spawners.server_id IS NOT NULL"
                )
            ).all()
    except (StartError, SQLAlchemyError) as e:
        said = e.problems[0] if isinstance(e, StartError) else database.failure(site, e)
        findings.append(f"{said}; start the database, or correct hub.db_url and hub.db_password")
        return None
    finally:
        engine.dispose()
    started = {(user, name or ""): _timestamp(when) for user, name, when, _saved in rows}
    return Known(users, {(user, name or ""): _saved(saved) for user, name, _when, saved in rows}, started)


def _saved(saved) -> dict:
    try:
        saved = json.loads(saved) if isinstance(saved, str | bytes) else saved
    except ValueError:
        saved = None
    return saved if isinstance(saved, dict) else {}


def route_findings(site: Site, servers: dict[tuple[str, str], float]) -> list[str]:
    """Routes for servers the hub does not know, and servers the hub knows without a route."""
    token = (site.hub.state_dir / "proxy_auth_token").read_text().strip()
    api = f"http://127.0.0.1:{site.hub.proxy_api_port}/api/routes"
    routes = health.get(api, {"Authorization": f"token {token}"})
    if routes is None:
        return [f"hub.proxy_api_port: the proxy's API does not answer at {api}; restart the hub (`campushub up`)"]
    findings = []
    routed = set()
    for path, route in json.loads(routes).items():
        if route.get("hub") or route.get("service"):
            continue
        key = (route.get("user"), route.get("server_name") or "")
        routed.add(key)
        if key not in servers:
            findings.append(
                f"proxy: route {path} (to {route.get('target')}) is for no server the hub runs; users may reach a"
                f" stale server there. Remove it: curl -X DELETE -H 'Authorization: token ...' {api}{path}"
                " (the token is in state_dir/proxy_auth_token), or restart the hub"
            )
    # a server that is still starting has no route yet
    settled = time.time() - site.spawner.start_timeout - site.spawner.http_timeout
    for (user, name), started in sorted(servers.items()):
        if (user, name) not in routed and started < settled:
            what = f"{user}'s server" + (f" {name!r}" if name else "")
            findings.append(
                f"proxy: {what} runs in the hub's database but the proxy has no route to it (users get an error"
                " page); restart the hub (`campushub up` adds every route again), or stop the server"
            )
    return findings


def orphan_proxy(site: Site, hub_pid: int | None, up: bool) -> list[str]:
    """configurable-http-proxy still running from a hub that has stopped."""
    pid_file = site.hub.state_dir / "proxy.pid"
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return []
    if hub_pid or up or not processes.runs(pid, "configurable-http-proxy"):
        return []
    return [f"proxy: configurable-http-proxy (pid {pid}) runs without its hub; stop it: kill {pid}"]


def index_findings(site: Site) -> list[str]:
    """The indexes campushub adds to JupyterHub's tables that the database lacks (a hub whose role may not make
    them said so in its log); nothing when the database cannot be read (:func:`read_known` says so)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from ..hub import indexes

    try:
        if database.revision(site) is None:
            return []  # never started: no tables yet (and no file made here)
    except StartError:
        return []
    engine = create_engine(database.url(site))
    try:
        with engine.connect() as connection:
            names = {str(index.name) for index in indexes.missing(connection)}
    except SQLAlchemyError:
        return []
    finally:
        engine.dispose()
    lacking = [f"{table}.{column}" for table, column in indexes.COLUMNS if indexes.name(table, column) in names]
    if not lacking:
        return []
    return [
        f"hub.db_url: the hub's database has no index on {', '.join(lacking)}: the users list and the idle culler"
        " read those tables whole; let the hub's database role create indexes, then restart the hub (it adds them)"
    ]


def space_findings(site: Site) -> list[str]:
    state_dir = site.hub.state_dir
    try:
        fs = os.statvfs(state_dir)
    except FileNotFoundError:
        return []  # never started: nothing there yet
    except OSError as e:
        return [f"hub.state_dir: cannot read {state_dir}: {e.strerror}"]
    free = fs.f_bavail * fs.f_frsize
    if free >= LOW_SPACE_BYTES:
        return []
    return [
        f"hub.state_dir: only {free // 2**20} MiB free for {state_dir}; the hub stops writing its database when it"
        " is full: free some space or move state_dir to a larger disk"
    ]


def certificate_findings(site: Site, folder: Path | None) -> list[str]:
    """The front door's certificate (in the folder ``campushub frontdoor`` wrote) close to, or past, expiry."""
    if not site.front_door or site.front_door.certificate.source == "acme" or folder is None:
        return []
    from cryptography import x509

    pem = folder / "tls" / "server.pem"
    try:
        cert = x509.load_pem_x509_certificate(pem.read_bytes())
    except (OSError, ValueError) as e:
        return [f"front_door.certificate: cannot read {pem} ({e}); write it with `campushub frontdoor --out {folder}`"]
    left = cert.not_valid_after_utc - datetime.now(UTC)
    if left.days >= CERT_DAYS:
        return []
    expiry = cert.not_valid_after_utc
    when = (
        f"expired on {expiry:%Y-%m-%d}"
        if left.total_seconds() < 0
        else f"expires in {left.days} days ({expiry:%Y-%m-%d})"
    )
    return [
        f"front_door.certificate: {pem} {when}; renew it (a new file: then `campushub frontdoor`, and reload Apache)"
    ]


def kernel_findings(site: Site, folders: list[str] | None = None) -> list[str]:
    """The kernels installed for every user on this host (``folders``: the servers' Python's and the system's kernel
    folders) that another user's code can reach, where users' servers share a host (``local`` with
    ``system_users``, ``slurm``): kernels whose channels are not encrypted, and ipykernels that do not get campushub's
    kernel class (another Python's), which keep ipykernel's own debugger (docs/authentication.md, "Kernels on a
    shared host")."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_core.paths import ENV_JUPYTER_PATH, SYSTEM_JUPYTER_PATH

    if not any(p.backend == "slurm" or getattr(p, "system_users", False) for p in site.profiles):
        return []
    if folders is None:
        folders = [os.path.join(path, "kernels") for path in (*ENV_JUPYTER_PATH, *SYSTEM_JUPYTER_PATH)]
    specs = KernelSpecManager(kernel_dirs=folders, ensure_native_kernel=False)
    findings = []
    for name, folder in sorted(specs.find_kernel_specs().items()):
        try:
            spec = specs.get_kernel_spec(name)
        except (OSError, ValueError) as e:
            findings.append(f"kernels: {folder}/kernel.json cannot be read ({e}); fix or remove it")
            continue
        said, todo = [], []
        if "curve" not in spec.metadata.get("supported_encryption", []):
            said.append("its channels are not encrypted, so other users' code on the host can read what it prints")
            todo.append("update its ipykernel to 7.4 or later (other languages: offer it in container profiles only)")
        if spec.metadata.get("debugger") and _keeps_ipykernels_debugger(spec.argv):
            said.append("it keeps ipykernel's own debugger, which other users' code can attach to once it is on")
            todo.append("offer it in container profiles only, or tell users not to turn its debugger on")
        if said:
            findings.append(f"kernels: {name} ({spec.display_name}, {folder}): {'; '.join(said)}: {'; '.join(todo)}")
    return findings


def _keeps_ipykernels_debugger(argv: list[str]) -> bool:
    """Whether a kernelspec's command runs ipykernel without campushub's kernel class (the servers' provisioner gives
    it to this Python's ipykernel only; jupyter_client runs a bare ``python`` as this Python)."""
    from ..server.forkserver import KERNEL_CLASS_OPTION
    from ..server.kernels import with_campushubs_kernel

    if not any(arg.startswith("ipykernel") for arg in argv[1:3]):
        return False
    if argv[0] in (
        "python",
        f"python{sys.version_info.major}",
        f"python{sys.version_info.major}.{sys.version_info.minor}",
    ):
        argv = [sys.executable, *argv[1:]]
    return KERNEL_CLASS_OPTION not in with_campushubs_kernel(argv)


def _timestamp(value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=value.tzinfo or UTC).timestamp()

"""``campushub doctor``: what is wrong with a running deployment, one finding a line, each with what to do.

It reads what the hub left behind (its database, the proxy's routes, the state directory, the
front door's certificate) and asks the services the profiles use; it changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from . import database, state
from .backends import used
from .errors import StartError
from .runner import health_url
from .site import Site

#: a finding when less than this is free in the state directory
LOW_SPACE_BYTES = 1 << 30
#: a finding when the front door's certificate expires within this many days
CERT_DAYS = 21


def examine(site: Site, frontdoor_dir: Path | None = None) -> list[str]:
    """Every finding for the deployment of ``site``; an empty list when it is healthy."""
    findings = []
    hub_pid = state.running_hub(site.hub.state_dir)
    url = health_url(site.hub.bind_url)
    up = _get(url) is not None
    if not up:
        findings.append(f"hub: nothing answers {url}; start it with `campushub up` (its output says why it stopped)")
    findings += orphan_proxy(site, hub_pid, up)
    servers = running_servers(site, findings)
    if up and servers is not None:
        findings += route_findings(site, servers)
    if servers is not None:
        findings += orphan_processes(site, servers)
    findings += space_findings(site)
    findings += certificate_findings(site, frontdoor_dir)
    findings += service_findings(site, servers is not None)
    return findings


def running_servers(site: Site, findings: list[str]) -> dict[tuple[str, str], float] | None:
    """{(user, server name): when it started} of the servers the hub's database says run; None (and a finding)
    when the database cannot be read."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    query = text(
        "SELECT users.name, spawners.name, spawners.started FROM spawners"
        " JOIN users ON spawners.user_id = users.id WHERE spawners.server_id IS NOT NULL"
    )
    engine = create_engine(database.url(site))
    try:
        if database.revision(site) is None:
            return {}
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    except (StartError, SQLAlchemyError) as e:
        said = (
            e.problems[0]
            if isinstance(e, StartError)
            else f"hub.db_url: cannot read {database.shown(site)}: {str(e.orig or e).splitlines()[0]}"
        )
        findings.append(f"{said}; start the database, or correct hub.db_url and hub.db_password")
        return None
    finally:
        engine.dispose()
    return {(user, name or ""): _timestamp(started) for user, name, started in rows}


def route_findings(site: Site, servers: dict[tuple[str, str], float]) -> list[str]:
    """Routes for servers the hub does not know, and servers the hub knows without a route."""
    token = (site.hub.state_dir / "proxy_auth_token").read_text().strip()
    api = f"http://127.0.0.1:{site.hub.proxy_api_port}/api/routes"
    routes = _get(api, {"Authorization": f"token {token}"})
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
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return []
    if hub_pid or up or b"configurable-http-proxy" not in command:
        return []
    return [f"proxy: configurable-http-proxy (pid {pid}) runs without its hub; stop it: kill {pid}"]


def orphan_processes(site: Site, servers: dict[tuple[str, str], float]) -> list[str]:
    """Processes in a user's folder of the state directory (``local`` servers as the hub's account) for users
    who have no server."""
    homes = site.hub.state_dir / "home"
    if not homes.is_dir():
        return []
    users = {user for user, _name in servers}
    findings = []
    for pid in sorted(filter(str.isdigit, os.listdir("/proc")), key=int):
        try:
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            continue
        if homes in cwd.parents and cwd.relative_to(homes).parts[0] not in users:
            user = cwd.relative_to(homes).parts[0]
            findings.append(
                f"processes: pid {pid} runs in {user}'s folder ({cwd}) but {user} has no server; stop it: kill {pid}"
            )
    return findings


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


def service_findings(site: Site, readable: bool = True) -> list[str]:
    """The container engine and Slurm, when profiles use them; with the hub's database ``readable``, the
    containers and jobs of its users that no server of the hub owns."""
    findings = []
    names = {backend.name for backend in used(site)}
    if "container" in names:
        findings += _engine(site, readable)
    if "slurm" in names:
        slurm = _slurm(site)
        findings += slurm or (orphan_jobs(site) if readable else [])
    return findings


def servers_and_users(site: Site) -> tuple[set[str], dict[tuple[str, str], dict]]:
    """The names of the hub's users, and {(user, server name): saved state} of the servers its database says run
    (or start)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(database.url(site))
    try:
        if database.revision(site) is None:
            return set(), {}  # never started: no tables yet
        with engine.connect() as connection:
            users = {name for (name,) in connection.execute(text("SELECT name FROM users"))}
            rows = connection.execute(
                text(
                    "SELECT users.name, spawners.name, spawners.state FROM spawners"
                    " JOIN users ON spawners.user_id = users.id WHERE spawners.server_id IS NOT NULL"
                )
            ).all()
    except (StartError, SQLAlchemyError):
        return set(), {}  # running_servers said why
    finally:
        engine.dispose()
    servers = {}
    for user, name, saved in rows:
        try:
            saved = json.loads(saved) if isinstance(saved, str | bytes) else saved
        except ValueError:
            saved = None
        servers[(user, name or "")] = saved if isinstance(saved, dict) else {}
    return users, servers


def container_name(user: str, server: str = "") -> str:
    """The name DockerSpawner gives the container of ``user``'s server (its default name template)."""
    from escapism import escape

    def escaped(text: str) -> str:
        return escape(text, set(string.ascii_lowercase + string.digits), escape_char="-").lower()

    return f"jupyter-{escaped(user)}" + (f"--{escaped(server.lower())}" if server else "")


def _engine(site: Site, readable: bool = True) -> list[str]:
    socket = site.container.socket or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        import docker

        client = docker.DockerClient(base_url=socket, timeout=10)
        client.ping()
    except Exception as e:  # the SDK raises many kinds; any means no engine
        return [f"container.socket: the engine at {socket} does not answer ({type(e).__name__}); start it"]
    return orphan_containers(site, client) if readable else []


def orphan_containers(site: Site, client) -> list[str]:
    """Containers named as DockerSpawner names the hub's users' servers, for servers the hub's database does not
    know as running (or starting): left by a hub that died, or started by hand."""
    users, servers = servers_and_users(site)
    theirs = {container_name(user): user for user in users}
    owned = {container_name(user, name) for user, name in servers}
    engine = "podman" if "podman" in json.dumps(client.version().get("Components", [])).lower() else "docker"
    findings = []
    for container in sorted(client.containers.list(all=True, filters={"name": "jupyter-"}), key=lambda c: c.name):
        name = container.name
        user = theirs.get(name.split("--", 1)[0])
        if user is None or name in owned:
            continue
        findings.append(
            f"containers: {name} ({container.status}) is {user}'s server container, but the hub runs no such server;"
            f" remove it (their volume stays): {engine} rm -f {name}"
        )
    return findings


#: the name batchspawner gives every job it submits (its batch script's --job-name)
JOB_NAME = "spawner-jupyterhub"


def orphan_jobs(site: Site) -> list[str]:
    """Slurm jobs of the hub's users named as batchspawner names them that no server in the hub's database owns
    (a server that starts without a job id yet owns its user's jobs)."""
    users, servers = servers_and_users(site)
    owned, starting = set(), set()
    for (user, _name), saved in servers.items():
        job = (saved.get("child_state") or saved).get("job_id")
        if job:
            owned.add(str(job))
        else:
            starting.add(user)
    env = {**os.environ, **({"SLURM_CONF": str(site.slurm.conf)} if site.slurm.conf else {})}
    clusters = sorted({p.cluster or "" for p in site.profiles if p.backend == "slurm"})
    findings = []
    for cluster in clusters:
        where = ["-M", cluster] if cluster else []
        command = ["squeue", "-h", "-a", *where, "-n", JOB_NAME, "-o", "%i|%u|%T"]
        try:
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in result.stdout.splitlines():
            job, _, rest = line.strip().partition("|")
            user, _, state_name = rest.partition("|")
            if not state_name or user not in users or job in owned or user in starting:
                continue
            cancel = " ".join(["scancel", *where, job])
            findings.append(
                f"slurm: job {job} ({user}, {state_name}) is a server job ({JOB_NAME}) that no server of the hub"
                f" owns; cancel it: {cancel}"
            )
    return findings


def _slurm(site: Site) -> list[str]:
    scontrol = shutil.which("scontrol")
    if not scontrol:
        return ["slurm: scontrol is not installed on the hub's host; install Slurm's client commands"]
    env = {**os.environ, **({"SLURM_CONF": str(site.slurm.conf)} if site.slurm.conf else {})}
    try:
        result = subprocess.run([scontrol, "ping"], env=env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return ["slurm: `scontrol ping` did not answer within 30 s; is slurmctld running?"]
    if result.returncode or "DOWN" in result.stdout:
        said = (result.stdout + result.stderr).strip().splitlines()  # DOWN comes first, then a banner
        return [f"slurm: slurmctld does not answer ({said[0] if said else 'no output'}); start it"]
    return []


def _get(url: str, headers: dict | None = None) -> str | None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return response.read().decode() if response.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def _timestamp(value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=value.tzinfo or UTC).timestamp()

"""Faults a running deployment survives, each made for real: the hub killed while servers start, its proxy killed,
the container engine restarted, slurmctld restarted while a job waits. After each, every server is ready or cleanly
stopped, nothing is left running for nobody (`campushub doctor` finds nothing), users can start again, and the file
each user wrote before the fault is still there."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from campushub.ledger.record import FOUND_RUNNING
from harness import (
    CAMPUSHUB,
    EMBEDDED,
    LAB_IMAGE,
    REPO,
    base_site,
    cluster_report,
    free_port,
    job_state,
    occupy_node,
    podman,
    proxies_on,
    remove_volumes,
    slurm,
)

HEALTHY = "ok: nothing to fix"
NOTE = "written before the fault"
VOLUME = f"chrecovery{os.getpid()}-user-{{username}}"  # never touch volumes this run did not make


def doctor(hub) -> tuple[int, list[str]]:
    result = subprocess.run(
        [CAMPUSHUB, "doctor", "--config", str(hub.config)], capture_output=True, text=True, timeout=120, env=hub.env
    )
    return result.returncode, result.stdout.splitlines()


def sessions_for(hub, users) -> dict:
    """A signed-in session per user: the front door's headers, or the shared password's form."""
    if hub.site["auth"]["type"] != "shared_password":
        return {user: hub.login(user) for user in users}
    password = (hub.state / "shared_password").read_text().strip()
    found = {}
    for user in users:
        session, r = hub.password_login(user, password)
        assert r.status_code == 302, r.text[:300]
        found[user] = session
    return found


def request_starts(hub, sessions, **options) -> list[threading.Thread]:
    """Ask for every user's server at once (each request waits up to JupyterHub's slow_spawn_timeout)."""

    def ask(user, session):
        with contextlib.suppress(requests.RequestException):  # the hub was killed under the request
            hub.api(session, "POST", f"users/{user}/server", json=options, timeout=60)

    threads = [threading.Thread(target=ask, args=item, daemon=True) for item in sessions.items()]
    for thread in threads:
        thread.start()
    return threads


def settle(hub, sessions, timeout=180) -> dict[str, str]:
    """Wait until no server is pending: {user: "ready" or "stopped"}."""
    deadline = time.monotonic() + timeout
    while True:
        found = {}
        for user, session in sessions.items():
            server = hub.whoami_user(session, user)["servers"].get("")
            found[user] = "stopped" if not server else "ready" if server["ready"] and not server["pending"] else "busy"
        if "busy" not in found.values():
            return found
        assert time.monotonic() < deadline, f"servers still pending after {timeout} s: {found}\n{hub.tail()}"
        time.sleep(1)


def read_notes(hub, sessions, path: str, states: dict[str, str] | None = None):
    """Start every stopped server, then read each user's note through their server (the proxy, a kernel)."""
    for user, session in sessions.items():
        if (states or {}).get(user) != "ready":
            hub.start_server(session, user)
        token = hub.token(session, user)
        assert hub.run_code(user, token, f"open({path!r}).read()") == repr(f"{NOTE} by {user}")


def kill_hub(hub):
    """SIGKILL the hub's JupyterHub process, as the kernel's OOM killer would; `campushub up` then exits."""
    os.kill(int((hub.state / "hub.pid").read_text()), signal.SIGKILL)
    assert hub.process.wait(60) != 0


def in_folder(folder: Path) -> set[int]:
    """PIDs of the processes whose working directory is in ``folder``."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            continue
        if cwd == folder or folder in cwd.parents:
            found.add(int(pid))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() != b""
    except OSError:
        return False


# ------------------------------------------------------------------ the hub killed while five servers start

USERS = [f"rec{i}" for i in range(5)]


@pytest.mark.parametrize("fast_start", [True, False], ids=["fast-start", "normal-start"])
def test_the_hub_killed_while_five_local_servers_start(fast_start, hub_factory):
    site = {**EMBEDDED, "profiles": [{**EMBEDDED["profiles"][0], "fast_start": fast_start}]}
    hub = hub_factory(site)
    homes = hub.state / "home"
    owner = os.stat(hub.state)
    for user in USERS:
        (homes / user).mkdir(parents=True, exist_ok=True)
        (homes / user / "note.txt").write_text(f"{NOTE} by {user}")
        for path in (homes, homes / user, homes / user / "note.txt"):
            os.chown(path, owner.st_uid, owner.st_gid)
    sessions = sessions_for(hub, USERS)
    threads = request_starts(hub, sessions)
    deadline = time.monotonic() + 60
    while not (servers := in_folder(homes)):  # the first server's process is there, its start not finished
        assert time.monotonic() < deadline, hub.tail()
        time.sleep(0.05)
    time.sleep(0.5)
    kill_hub(hub)
    for thread in threads:
        thread.join(60)
    before = in_folder(homes)
    assert servers & before, "the servers the hub was starting went with it: nothing left to recover"

    hub.start()
    states = settle(hub, sessions)
    assert doctor(hub) == (0, [HEALTHY]), hub.tail()
    ready = {user for user, state in states.items() if state == "ready"}
    for pid in before:  # a process the dead hub started is gone, or is a server the new hub runs
        if alive(pid):
            user = Path(os.readlink(f"/proc/{pid}/cwd")).relative_to(homes).parts[0]
            assert user in ready, f"pid {pid} runs in {user}'s folder, and {user} has no server: {states}"
    read_notes(hub, sessions, "note.txt", states)  # users start again, their files as they left them
    for user, session in sessions.items():
        hub.stop_server(session, user)
    assert not in_folder(homes), "a server's processes outlived its stop"


@pytest.fixture
def container_site(engine):
    port = free_port()
    yield base_site(
        hub={"hub_ip": "0.0.0.0", "hub_port": port},
        container={
            "socket": engine,
            "image": LAB_IMAGE,
            "volume": VOLUME,
            "hub_connect_url": f"http://host.containers.internal:{port}",
        },
        profiles=[{"slug": "lab", "name": "JupyterLab", "backend": "container", "cpu": 0.5, "default": True}],
        spawner={"poll_interval": 3},
    )
    remove_volumes(VOLUME.split("{")[0])


def volume_note(user: str):
    """Write the user's note into their volume, as a server of theirs would have."""
    volume = VOLUME.format(username=user)
    podman("volume", "create", volume, check=False)
    mountpoint = Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume))
    (mountpoint / "note.txt").write_text(f"{NOTE} by {user}")
    (mountpoint / "note.txt").chmod(0o644)


def containers_of(users) -> dict[str, str]:
    """{container name: status} of the users' server containers."""
    listed = podman("ps", "-a", "--format", "{{.Names}} {{.State}}").splitlines()
    names = {f"jupyter-{user}" for user in users}
    return {name: state for name, state in (line.split(" ", 1) for line in listed if line) if name in names}


def test_the_hub_killed_while_five_containers_start(container_site, hub_factory):
    users = [f"recc{os.getpid() % 10000}x{i}" for i in range(5)]  # names no earlier run left a container for
    hub = hub_factory(container_site)
    for user in users:
        volume_note(user)
    sessions = sessions_for(hub, users)
    threads = request_starts(hub, sessions)
    deadline = time.monotonic() + 120
    while not containers_of(users):
        assert time.monotonic() < deadline, hub.tail()
        time.sleep(0.1)
    time.sleep(1)
    kill_hub(hub)
    for thread in threads:
        thread.join(60)
    assert containers_of(users), "the containers went with the hub: nothing left to recover"

    restarted = hub.log.stat().st_size
    hub.start()
    states = settle(hub, sessions)
    # a server that runs is found where it listens, not waited for at the address recorded before its start returned
    assert b"does not appear to be running" not in hub.log.read_bytes()[restarted:], hub.tail()
    assert doctor(hub) == (0, [HEALTHY]), hub.tail()
    left = containers_of(users)
    assert set(left) == {f"jupyter-{user}" for user, state in states.items() if state == "ready"}, (left, states)
    assert all(state.startswith("Up") for state in left.values()), left  # podman 4.3's words for running
    with sqlite3.connect(hub.state / "jupyterhub.sqlite") as db:  # a server found running goes on in its session
        found = dict(db.execute("SELECT user, notes FROM campushub_sessions WHERE ended IS NULL").fetchall())
    assert found == {user: FOUND_RUNNING for user, state in states.items() if state == "ready"}, (found, states)
    read_notes(hub, sessions, "/home/jovyan/work/note.txt", states)
    for user, session in sessions.items():
        hub.stop_server(session, user)
    assert not containers_of(users)


# ------------------------------------------------------------------ the proxy killed


def test_the_proxy_killed_comes_back_with_every_route_within_60_s(hub_factory):
    hub = hub_factory(EMBEDDED)
    users = USERS[:2]
    sessions = sessions_for(hub, users)
    tokens = {}
    for user, session in sessions.items():
        hub.start_server(session, user)
        tokens[user] = hub.token(session, user)
        hub.run_code(user, tokens[user], f"open('note.txt', 'w').write({NOTE + ' by ' + user!r})")
    api_port = hub.site["hub"]["proxy_api_port"]
    old = int((hub.state / "proxy.pid").read_text())
    assert proxies_on(api_port) == [old]
    os.kill(old, signal.SIGKILL)
    killed = time.monotonic()
    waiting = set(users)
    while waiting:
        for user in list(waiting):
            try:
                r = requests.get(
                    f"{hub.url}/user/{user}/api/status", headers={"Authorization": f"token {tokens[user]}"}, timeout=5
                )
            except requests.ConnectionError:
                continue
            if r.status_code == 200:
                waiting.discard(user)
        assert time.monotonic() - killed < 60, f"{waiting} cannot reach their servers 60 s after the proxy died"
        time.sleep(0.5)
    print(f"users reached their servers again {time.monotonic() - killed:.1f} s after the proxy was killed")
    new = proxies_on(api_port)
    assert len(new) == 1 and new[0] != old and int((hub.state / "proxy.pid").read_text()) == new[0]
    assert hub.process.poll() is None
    assert doctor(hub) == (0, [HEALTHY])
    read_notes(hub, sessions, "note.txt", dict.fromkeys(users, "ready"))
    hub.stop()
    assert not proxies_on(api_port), "the restarted proxy outlived its hub"


# ------------------------------------------------------------------ the container engine restarted


def engine_script(action: str):
    subprocess.run([str(REPO / "scripts" / "engine"), action, "podman"], check=True, capture_output=True)


def test_a_container_engine_restart_keeps_the_users_server_or_stops_it_cleanly(container_site, hub_factory):
    user = f"rece{os.getpid() % 10000}"
    hub = hub_factory(container_site)
    session = hub.login(user)
    hub.start_server(session, user)
    token = hub.token(session, user)
    hub.run_code(user, token, f"open('/home/jovyan/work/note.txt', 'w').write({NOTE + ' by ' + user!r})")
    engine_script("stop")
    try:
        time.sleep(3 * container_site["spawner"]["poll_interval"])  # the hub polls the container meanwhile
        assert hub.process.poll() is None
    finally:
        engine_script("start")
    deadline = time.monotonic() + 60
    while True:
        state = settle(hub, {user: session})[user]
        if state == "stopped":  # cleanly: no container left behind
            assert not containers_of([user])
            break
        try:
            if hub.run_code(user, token, "open('/home/jovyan/work/note.txt').read()", timeout=20):
                break
        except (AssertionError, requests.RequestException, OSError):
            assert time.monotonic() < deadline, f"{user}'s server is neither reachable nor stopped\n{hub.tail()}"
            time.sleep(1)
    print(f"after the engine's restart {user}'s server is {state}")
    assert doctor(hub) == (0, [HEALTHY])
    read_notes(hub, {user: session}, "/home/jovyan/work/note.txt", {user: state})
    hub.stop_server(session, user)
    assert not containers_of([user])


# ------------------------------------------------------------------ slurmctld restarted while a job waits

SLURM_USER = "chrec-slurm"


@pytest.fixture
def slurm_conf(slurm_cluster, accounts):
    accounts(SLURM_USER)
    return slurm_cluster


def test_slurmctld_restarted_while_a_job_waits_and_the_start_completes(slurm_conf, hub_factory):
    site = base_site(
        slurm={"conf": slurm_conf},
        spawner={"poll_interval": 3},
        profiles=[
            {
                "slug": "batch",
                "name": "Slurm: 1 CPU",
                "backend": "slurm",
                "partition": "campus",
                "cpu": 1,
                "memory": "256M",
                "runtime": "00:30:00",
                "default": True,
            }
        ],
    )
    hub = hub_factory(site)
    home = Path(os.path.expanduser(f"~{SLURM_USER}"))
    (home / "note.txt").write_text(f"{NOTE} by {SLURM_USER}")
    filler = occupy_node(slurm_conf, 280)  # the node's two CPUs: the user's job waits
    try:
        session = hub.login(SLURM_USER)
        r = hub.api(session, "POST", f"users/{SLURM_USER}/server", json={})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 30
        while not (job := slurm(slurm_conf, "squeue", "-h", "-u", SLURM_USER, "-o", "%i")):
            assert time.monotonic() < deadline, hub.tail()
            time.sleep(0.5)
        assert job_state(slurm_conf, job) == "PENDING", cluster_report(slurm_conf)
        slurm(slurm_conf, "scontrol", "shutdown", "slurmctld")
        deadline = time.monotonic() + 30
        while "DOWN" not in slurm(slurm_conf, "scontrol", "ping", check=False):
            assert time.monotonic() < deadline, "slurmctld did not stop"
            time.sleep(0.5)
        # the spawner asks squeue every second meanwhile; squeue itself retries for a few seconds
        time.sleep(20)
        slurm(slurm_conf, "slurmctld")
        deadline = time.monotonic() + 30
        while job_state(slurm_conf, job) != "PENDING":
            assert time.monotonic() < deadline, f"job {job} after the restart\n{cluster_report(slurm_conf)}"
            time.sleep(0.5)
    finally:
        slurm(slurm_conf, "scancel", filler, check=False)
    hub.wait_ready(session, SLURM_USER)
    assert job_state(slurm_conf, job) == "RUNNING"
    assert doctor(hub) == (0, [HEALTHY])
    read_notes(hub, {SLURM_USER: session}, "note.txt", {SLURM_USER: "ready"})
    hub.stop_server(session, SLURM_USER)

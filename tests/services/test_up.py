"""`campushub up` itself: refusing bad input before anything starts, and stopping cleanly."""

import os
import pwd
import re
import signal
import socket
import subprocess
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import psutil
import pytest
import yaml

from harness import CAMPUSHUB, EMBEDDED, REPO, HubClient, base_site, free_port, require_root


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_bad_site_file_starts_nothing(tmp_path):
    port = free_port()
    site = base_site(
        hub={"bind_url": f"http://127.0.0.1:{port}", "state_dir": str(tmp_path / "state")}, culler={"timeout": "soon"}
    )
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(site))
    result = subprocess.run(
        [CAMPUSHUB, "up", "--config", str(tmp_path / "bad.yaml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.startswith("culler.timeout: ")
    assert not listening(port)
    assert not (tmp_path / "state").exists()


def test_root_never_runs_users_servers_as_root(tmp_path):
    require_root("this test")
    (tmp_path / "site.yaml").write_text(yaml.safe_dump({**EMBEDDED, "hub": {"state_dir": str(tmp_path / "state")}}))
    result = subprocess.run(
        [CAMPUSHUB, "up", "--config", str(tmp_path / "site.yaml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "profiles.0.system_users: the hub runs as root" in result.stderr
    assert "--as-user" in result.stderr


def processes_in(folder) -> dict[str, str]:
    """{pid: command} of the processes working in ``folder`` (the hub, its proxy, servers)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(str(folder)):
                found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


def test_sigterm_stops_hub_proxy_and_servers(hub_factory):
    hub = hub_factory(EMBEDDED)
    # issue 21: every start printed the proxy's red 404 for /hub/health and a refused connection to the hub
    assert "error: 404 GET /hub/health" not in hub.log.read_text() and "ECONNREFUSED" not in hub.log.read_text()
    s, _ = hub.password_login("alice", (hub.state / "shared_password").read_text().strip())
    hub.start_server(s, "alice")
    # on the embedded default, files live in a per-user folder in the state directory, not in /tmp
    cwd = hub.run_code("alice", hub.token(s, "alice"), "import os; os.getcwd()")
    assert cwd == repr(str(hub.state / "home" / "alice"))
    running = " ".join(processes_in(hub.folder).values())
    # the proxy, the fork server (fast start is the default) and the server it forked
    assert "configurable-http-proxy" in running and "campushub.server.forkserver" in running, running
    assert "campushub-singleuser alice" in running, running
    hub.process.send_signal(signal.SIGTERM)
    assert hub.process.wait(60) == 0
    log = hub.log.read_text()
    assert "campushub: stopping the hub" in log and "did not stop in time" not in log
    assert not listening(hub.port)
    deadline = time.monotonic() + 10
    while processes_in(hub.folder):
        assert time.monotonic() < deadline, processes_in(hub.folder)
        time.sleep(0.5)


def test_system_users_run_their_servers_as_themselves(hub_factory):
    require_root("this test")
    name = "chtest-sysuser"
    subprocess.run(["userdel", "-r", name], capture_output=True)
    subprocess.run(["useradd", "--create-home", name], check=True)
    try:
        site = base_site(profiles=[{"slug": "mine", "name": "As me", "backend": "local", "system_users": True}])
        hub = hub_factory(site, as_root=True)
        s = hub.login(name)
        hub.start_server(s, name)
        token = hub.token(s, name)
        account = pwd.getpwnam(name)
        assert hub.run_code(name, token, "import os; os.getuid(), os.getcwd()") == repr(
            (account.pw_uid, account.pw_dir)
        )
        hub.stop_server(s, name)
    finally:
        subprocess.run(["userdel", "-r", name], capture_output=True)


def test_readme_up_command_brings_up_a_hub(hub_root):
    """`scripts/up` (the README's first command) on an existing site file: bootstrap, then a working hub."""
    folder = Path(tempfile.mkdtemp(dir=hub_root))
    folder.chmod(0o755)
    port = free_port()
    starter = yaml.safe_load(files("campushub").joinpath("templates/starter.yaml").read_text())
    starter["hub"].update(bind_url=f"http://127.0.0.1:{port}", hub_port=free_port(), proxy_api_port=free_port())
    config = folder / "campushub.yaml"
    config.write_text(yaml.safe_dump(starter))
    log = folder / "up.log"
    with open(log, "w") as out:
        up = subprocess.Popen(
            [str(REPO / "scripts" / "up")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CAMPUSHUB_CONFIG": str(config)},
        )
    try:
        deadline = time.monotonic() + 300
        while f"campushub: ready at http://127.0.0.1:{port}" not in log.read_text():
            assert up.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        password = (folder / "state" / "shared_password").read_text().strip()
        assert password not in log.read_text() and "cat " in log.read_text()  # where it is, never what
        _session, r = HubClient(f"http://127.0.0.1:{port}", starter).password_login("ada", password)
        assert r.status_code == 302
        if os.geteuid() == 0:  # the hub runs as the unprivileged account scripts/up made
            assert (folder / "state").stat().st_uid == pwd.getpwnam("campushub").pw_uid
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0


#: what "a few seconds" is for a stop with running servers on this 2-core machine (it took 30 s, then a kill)
STOP_SECONDS = 10


def process_tree(pid: int) -> dict[int, str]:
    """{pid: command line} of ``pid`` and every process it started, directly or not."""
    top = psutil.Process(pid)
    return {p.pid: " ".join(p.cmdline()) for p in [top, *top.children(recursive=True)]}


def alive(pids) -> list[int]:
    found = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                found.append(pid)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_with_servers_and_the_culler_running_ends_every_process_in_seconds(hub_factory, accounts, how):
    """Issue 21: Ctrl-C took about 30 s while the culler was busy ("Cleaning up 1 services..."), then `up` killed
    the hub, which left the culler, and users' servers, running. Now the culler, the proxy, the fork server and
    every user's server (and kernel) of a `local` site end within seconds, every time. (Containers and Slurm jobs
    outlive the hub by design: tests/services/test_containers.py and test_slurm.py restart hubs around them.)"""
    users = accounts("chstop-a", "chstop-b")
    hub = hub_factory(base_site(culler={"enabled": True, "timeout": 3600, "every": 2}))
    for user in users:
        s = hub.login(user)
        hub.start_server(s, user)
        assert hub.run_code(user, hub.token(s, user), "1+1") == "2"
    time.sleep(2.5)  # the culler's round is under way, as it was when the stop hung
    tree = process_tree(hub.process.pid)
    commands = " ".join(tree.values())
    assert "campushub.hub.culler" in commands and "configurable-http-proxy" in commands, commands
    assert sum(f"campushub-singleuser {u}" in c for c in tree.values() for u in users) == 2, commands
    started = time.monotonic()
    hub.process.send_signal(how)
    assert hub.process.wait(60) == 0
    took = time.monotonic() - started
    assert took < STOP_SECONDS, (took, hub.tail())
    assert "did not stop in time" not in hub.log.read_text()
    left = alive(tree)
    assert left == [], {pid: tree[pid] for pid in left}


STUBBORN = """
c.JupyterHub.services.append({"name": "stubborn", "command": ["/usr/bin/python3", "-c",
    "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " time.sleep(600)"]})
"""


def test_a_hub_that_does_not_stop_in_time_is_killed_with_what_it_started(hub_factory, accounts, hub_root):
    """The last resort: a service of the site's own that ignores every stop holds the hub's cleanup; after 30 s
    `up` kills the hub, and ends the processes it started (the service, the culler, users' servers), which on
    main stayed running (issue 21)."""
    extra = Path(tempfile.mkdtemp(prefix="stubborn-", dir=hub_root))
    extra.chmod(0o755)
    (extra / "stubborn.py").write_text(STUBBORN)
    (user,) = accounts("chstop-c")
    hub = hub_factory(base_site(hub={"extra_config_dir": str(extra)}, culler={"enabled": True}))
    s = hub.login(user)
    hub.start_server(s, user)
    tree = process_tree(hub.process.pid)
    assert any("signal.SIG_IGN" in command for command in tree.values())
    hub.process.send_signal(signal.SIGINT)
    assert hub.process.wait(90) == 0
    assert "the hub did not stop in time; killing it and what it started" in hub.log.read_text()
    left = alive(tree)
    assert left == [], {pid: tree[pid] for pid in left}


def test_the_hub_keeps_what_it_loaded_at_start_out_of_full_collections(hub_factory):
    """Full garbage collections walk only what came after the hub's start (campushub.hub.collector): what it loaded
    to start (its modules, config, users), a hundred thousand objects and more, is frozen once it has started; the
    hub goes on serving sign-ins."""
    hub = hub_factory(EMBEDDED)
    deadline = time.monotonic() + 30
    while not (kept := re.search(r"Kept (\d+) objects the hub holds since its start", hub.log.read_text())):
        assert time.monotonic() < deadline, hub.tail()
        time.sleep(0.5)
    assert int(kept.group(1)) > 100_000, kept.group(0)
    s, r = hub.password_login("ada", (hub.state / "shared_password").read_text().strip())
    assert r.status_code == 302 and hub.whoami(s)["name"] == "ada"

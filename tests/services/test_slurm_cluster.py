"""`slurm` profiles on a cluster of several hosts (scripts/slurm cluster): the hub's host, and compute nodes that are
network namespaces of their own, with their own addresses and names. What crosses a network: servers on their
node's address, the callback from the job's own node only, a node that dies or is cut off, the hub restarted while
servers run elsewhere, a drained node, jobs spread over the nodes."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
from pathlib import Path

import pytest

from harness import (
    ARTIFACTS,
    CAMPUSHUB,
    PROXY_SECRET,
    base_site,
    free_port,
    last_end,
    require_root,
    scripts_slurm,
)

USERS = ["chnet-ann", "chnet-ben", "chnet-cy", "chnet-dee", "chnet-eve", "chnet-fay", "chnet-gus"]
HUB_ADDRESS = "10.77.0.1"
NODES = {"node1": "10.77.0.11", "node2": "10.77.0.12"}
#: how long each fault took to reach the user, for docs/slurm.md
FIGURES = ARTIFACTS / "slurm-cluster-faults.json"


@pytest.fixture(scope="module")
def cluster_conf(slurm_cluster, accounts):
    """The cluster of two nodes, started for this module and stopped after it."""
    require_root("making network namespaces and running slurmd")
    accounts(*USERS)
    yield scripts_slurm("cluster", "start", "2").removeprefix("SLURM_CONF=")
    scripts_slurm("cluster", "stop")


@pytest.fixture(scope="module")
def hub(cluster_conf, hubs):
    port = free_port()
    site = base_site(
        hub={"hub_ip": HUB_ADDRESS, "hub_port": port},
        slurm={
            "conf": cluster_conf,
            "hub_host_runs_jobs": False,
            "hub_connect_url": f"http://{HUB_ADDRESS}:{port}",
        },
        spawner={"poll_interval": 3},
        profiles=[
            {
                "slug": "node",
                "name": "A compute node",
                "backend": "slurm",
                "cpu": 1,
                "memory": "512M",
                "runtime": "00:30:00",
                "default": True,
            },
            {"slug": "slow", "name": "Slow to start", "backend": "slurm", "cpu": 1, "prologue": "sleep 20"},
        ],
    )
    hub = hubs.start(site, "slurm-net")
    yield hub
    hub.stop()


def slurm(conf: str, *args) -> str:
    return subprocess.run(
        list(args), capture_output=True, text=True, check=True, env={**os.environ, "SLURM_CONF": conf}
    ).stdout.strip()


def job_of(conf: str, user: str) -> str:
    return slurm(conf, "squeue", "-h", "-u", user, "-o", "%i")


def node_of(conf: str, job: str) -> str:
    return slurm(conf, "squeue", "-h", "-j", job, "-o", "%N")


def processes_in(node: str, user: str) -> dict[int, str]:
    """The processes ``user`` runs on ``node`` (pid: command line)."""
    uid = pwd.getpwnam(user).pw_uid
    pids = subprocess.run(["ip", "netns", "pids", node], capture_output=True, text=True).stdout.split()
    found = {}
    for pid in map(int, pids):
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


def server_pid(node: str, user: str) -> int:
    """The server's process (not the srun that started it, which holds Slurm's own ports)."""
    found = processes_in(node, user).items()
    return next(pid for pid, command in found if "-singleuser" in command and not command.startswith("srun"))


def listening(node: str, pid: int | None = None) -> list[str]:
    """The addresses and ports listened on in ``node``'s network (by process ``pid`` only, if given)."""
    out = subprocess.run(
        ["nsenter", f"--net=/run/netns/{node}", "ss", "-Hltnp"], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[3] for line in out.splitlines() if pid is None or f"pid={pid}," in line]


def wait_node(conf: str, node: str, state: str = "idle", timeout: float = 90):
    deadline = time.monotonic() + timeout
    while slurm(conf, "sinfo", "-h", "-n", node, "-o", "%T") != state:
        assert time.monotonic() < deadline, slurm(conf, "sinfo", "-N")
        time.sleep(1)


def record(name: str, seconds: float):
    ARTIFACTS.mkdir(exist_ok=True)
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    FIGURES.write_text(json.dumps({**figures, name: round(seconds, 1)}, indent=2))


def test_servers_run_on_the_nodes_at_their_own_addresses_spread_over_them(hub, cluster_conf):
    """Two users' servers: each on its own node (Slurm's least loaded), listening on that node's address only, and
    reached by the hub's proxy there; the home page names the node."""
    where = {}
    for user in USERS[:2]:
        s = hub.login(user)
        hub.start_server(s, user)
        node = node_of(cluster_conf, job_of(cluster_conf, user))
        token = hub.token(s, user)
        assert hub.run_code(user, token, "import socket; socket.gethostname()") == repr(node)
        server = listening(node, server_pid(node, user))  # the server's, not Slurm's own (slurmd, srun's)
        assert server and all(a.startswith(NODES[node] + ":") for a in server), server
        assert f"on {node}" in hub.get(s, "/hub/home").text
        session = hub.get(s, f"/user/{user}/campushub/session", headers={"Authorization": f"token {token}"})
        ends = session.json().get("ends_at") or 0  # what the time-left extension shows, asked of Slurm on the node
        assert session.status_code == 200 and abs(ends - time.time() - 1800) < 120, session.text
        where[user] = node
    assert sorted(where.values()) == sorted(NODES), where


def test_the_nodes_never_get_the_hubs_or_the_front_doors_secrets(hub, cluster_conf):
    user = USERS[0]
    node = node_of(cluster_conf, job_of(cluster_conf, user))
    environment = Path(f"/proc/{server_pid(node, user)}/environ").read_bytes().decode(errors="replace")
    kept = [(hub.state / name).read_text().strip() for name in ("proxy_auth_token", "jupyterhub_cookie_secret")]
    assert "JUPYTERHUB_API_TOKEN" in environment  # its own server's token, and nothing of the hub's
    for secret in [PROXY_SECRET, *kept]:
        assert secret not in environment
    for user in USERS[:2]:
        hub.stop_server(hub.login(user), user)


def test_a_port_sent_from_another_node_is_refused(hub, cluster_conf):
    """A starting job's token, used from the other node to name a port for it: refused (the node the job runs on
    is Slurm's to say); the job's own report is then taken and the server starts."""
    user = USERS[2]
    s = hub.login(user)
    assert hub.api(s, "POST", f"users/{user}/server", json={"profile": "slow"}).status_code in (201, 202)
    deadline = time.monotonic() + 60
    while not (
        (job := job_of(cluster_conf, user)) and slurm(cluster_conf, "squeue", "-h", "-j", job, "-o", "%T") == "RUNNING"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    node = node_of(cluster_conf, job)
    batch = next(pid for pid, command in processes_in(node, user).items() if "sleep 20" in command)
    token = dict(
        line.split("=", 1) for line in Path(f"/proc/{batch}/environ").read_bytes().decode().split("\0") if "=" in line
    )["JUPYTERHUB_API_TOKEN"]
    other = next(n for n in NODES if n != node)
    url = f"http://{HUB_ADDRESS}:{hub.site['hub']['hub_port']}/hub/api/batchspawner"
    post = (
        "import json, sys, urllib.request, urllib.error\n"
        f"r = urllib.request.Request({url!r}, data=b'{{\"port\": 9999}}', method='POST',"
        f" headers={{'Authorization': 'token {token}', 'Content-Type': 'application/json'}})\n"
        "try:\n    print(urllib.request.urlopen(r).status)\n"
        "except urllib.error.HTTPError as e:\n    print(e.code)\n"
    )
    answer = subprocess.run(
        ["nsenter", f"--net=/run/netns/{other}", "/usr/bin/python3", "-c", post], capture_output=True, text=True
    )
    assert answer.stdout.strip() == "403", (answer.stdout, answer.stderr)
    server = hub.wait_ready(s, user)
    assert server["ready"] and ":9999" not in listening(node)
    hub.stop_server(s, user)


@pytest.mark.parametrize("fault", ["slurmd killed", "link cut"])
def test_a_lost_node_is_named_to_its_user_who_starts_again_on_another(hub, cluster_conf, fault):
    """The node under a running server dies (its slurmd killed) or is cut off (its link down): within Slurm's
    timeout and the hub's poll, the user's home page says which node failed, and a new start runs on the other."""
    user = USERS[3] if fault == "slurmd killed" else USERS[4]
    s = hub.login(user)
    hub.start_server(s, user)
    node = node_of(cluster_conf, job_of(cluster_conf, user))
    other = next(n for n in NODES if n != node)
    started = time.monotonic()
    scripts_slurm("cluster", "node", node, "kill" if fault == "slurmd killed" else "cut")
    try:
        while hub.whoami_user(s, user)["servers"].get(""):
            assert time.monotonic() - started < 120, slurm(cluster_conf, "sinfo", "-N")
            time.sleep(1)
        told = time.monotonic() - started
        end = last_end(hub, s)
        assert f"its node, {node}, failed" in end["words"], end
        record(fault, told)
        hub.start_server(s, user)
        assert node_of(cluster_conf, job_of(cluster_conf, user)) == other
        hub.stop_server(s, user)
    finally:
        if fault == "link cut":
            scripts_slurm("cluster", "node", node, "join")
            scripts_slurm("cluster", "node", node, "kill")  # registers again at once
        scripts_slurm("cluster", "node", node, "start")
        wait_node(cluster_conf, node)
    # the node is idle once it registers; Slurm then ends the old job's processes (SIGTERM, KillWait, SIGKILL)
    deadline = time.monotonic() + 30
    while left := processes_in(node, user):
        assert time.monotonic() < deadline, f"the job's processes outlived the node's return by 30 s: {left}"
        time.sleep(0.5)


def test_a_restarted_hub_finds_the_servers_on_the_nodes_again(hub, cluster_conf):
    user = USERS[5]
    s = hub.login(user)
    hub.start_server(s, user)
    token = hub.token(s, user)
    node = node_of(cluster_conf, job_of(cluster_conf, user))
    hub.stop()
    assert server_pid(node, user)  # the server outlives the hub (its job does)
    hub.start()
    assert hub.run_code(user, token, "6 * 7") == "42"  # its route is back
    s = hub.login(user)
    hub.stop_server(s, user)


def test_a_start_on_drained_nodes_says_why_it_waits(hub, cluster_conf):
    user = USERS[6]
    nodes = ",".join(NODES)
    slurm(cluster_conf, "scontrol", "update", f"nodename={nodes}", "state=drain", "reason=maintenance")
    try:
        s = hub.login(user)
        assert hub.api(s, "POST", f"users/{user}/server", json={}).status_code in (201, 202)
        said = ""
        with hub.api(s, "GET", f"users/{user}/server/progress", stream=True, timeout=60) as events:
            for line in events.iter_lines(decode_unicode=True):
                if line.startswith("data:") and "not available" in (said := json.loads(line[5:]).get("message", "")):
                    break
        assert "Waiting in the Slurm queue: the nodes it needs are not available now" in said, said
    finally:
        slurm(cluster_conf, "scontrol", "update", f"nodename={nodes}", "state=resume")
    server = hub.wait_ready(s, user)
    assert server["ready"]
    hub.stop_server(s, user)


def test_check_says_what_it_can_tell_of_the_cluster_in_advance(cluster_conf, slurm_cluster, tmp_path):
    """A site that says no job runs on the hub's host, with a cluster whose node is this host; and with the hub's
    API where nodes cannot reach it."""
    site = base_site(
        slurm={"conf": slurm_cluster, "hub_host_runs_jobs": False, "hub_connect_url": "http://10.77.0.1:8081"},
        hub={"hub_ip": "10.77.0.1"},
        profiles=[{"slug": "batch", "name": "Batch", "backend": "slurm"}],
    )
    path = tmp_path / "site.yaml"
    path.write_text(json.dumps(site))
    env = {**os.environ, "CAMPUSHUB_TEST_PROXY_SECRET": PROXY_SECRET}
    result = subprocess.run([CAMPUSHUB, "check", "--config", str(path)], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "slurm.hub_host_runs_jobs: false, but Slurm's node" in result.stderr, result
    site["hub"] = {}
    path.write_text(json.dumps({**site, "slurm": {**site["slurm"], "hub_connect_url": "http://127.0.0.1:8081"}}))
    result = subprocess.run([CAMPUSHUB, "check", "--config", str(path)], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "which a compute node cannot" in result.stderr, result.stderr

"""`slurm` profiles on a real single-node Slurm (slurmctld, slurmd, munge), through a real hub."""

import json
import os
import pwd
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from harness import REPO, Kernel, base_site, require_root

USERS = ["chslurm-ann", "chslurm-ben", "chslurm-cy", "chslurm-dee"]
MEMORY = 256 * 1024 * 1024
JOB_MEMORY = (
    "import re, pathlib; line = [l for l in open('/proc/self/cgroup') if ':memory:' in l][0];"
    " job = re.sub(r'(/job_[0-9]+).*', r'\\1', line.strip().split(':', 2)[2]);"
    " int(pathlib.Path('/sys/fs/cgroup/memory' + job, 'memory.limit_in_bytes').read_text())"
)


@pytest.fixture(scope="module")
def slurm_conf():
    require_root("running slurmctld and slurmd")
    out = subprocess.run([str(REPO / "scripts" / "slurm"), "start"], capture_output=True, text=True, check=True)
    conf = out.stdout.strip().removeprefix("SLURM_CONF=")
    for user in USERS:
        subprocess.run(["userdel", "-r", user], capture_output=True)
        subprocess.run(["useradd", "--create-home", user], check=True)
    yield conf
    for user in USERS:
        subprocess.run(["pkill", "-u", user], capture_output=True)
        subprocess.run(["userdel", "-r", user], capture_output=True)


def slurm(conf, *args) -> str:
    return subprocess.run(
        list(args), capture_output=True, text=True, env={**os.environ, "SLURM_CONF": conf}, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def hub(slurm_conf, hubs):
    site = base_site(
        slurm={"conf": slurm_conf},
        spawner={"poll_interval": 3},
        profiles=[
            {"slug": "local", "name": "On the hub host", "backend": "local", "system_users": True, "default": True},
            {
                "slug": "batch",
                "name": "Slurm: 1 CPU, 256 MB",
                "backend": "slurm",
                "cluster": "campushub",
                "partition": "campus",
                "runtime": "00:30:00",
                "cpu": 1,
                "memory": "256M",
            },
            {"slug": "huge", "name": "Slurm: 64 CPUs", "backend": "slurm", "cpu": 64},
            {"slug": "nowhere", "name": "Slurm: no such partition", "backend": "slurm", "partition": "nope"},
            {"slug": "broken", "name": "Slurm: a job that dies", "backend": "slurm", "prologue": "exit 3"},
            {
                "slug": "slow",
                "name": "Slurm: a job that starts slowly",
                "backend": "slurm",
                "cpu": 1,
                "memory": "256M",
                "prologue": "sleep 12",
            },
        ],
    )
    hub = hubs.start(site, "slurm")  # as root: sudo -u to each user
    yield hub
    hub.stop()


def job_of(conf, user) -> str:
    return slurm(conf, "squeue", "-h", "-u", user, "-o", "%i")


def job_state(conf, job) -> str:
    return re.search(r"JobState=(\w+)", slurm(conf, "scontrol", "show", "job", job)).group(1)


def spawn_failure(hub, session, user, profile, timeout=60) -> tuple[str, float]:
    """Request ``profile``; return the failure message the spawn page shows, and how long it took."""
    t0 = time.monotonic()
    r = hub.api(session, "POST", f"users/{user}/server", json={"profile": profile})
    if r.status_code >= 400:
        return r.json()["message"], time.monotonic() - t0
    with hub.api(session, "GET", f"users/{user}/server/progress", stream=True, timeout=timeout) as events:
        for line in events.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("failed"):
                    return event["message"], time.monotonic() - t0
                assert not event.get("ready"), "an impossible job started"
    raise AssertionError("no failure reported")


def test_a_slurm_server_runs_as_the_user_and_its_job_ends_with_it(hub, slurm_conf):
    user = USERS[0]
    s = hub.login(user)
    hub.start_server(s, user, profile="batch")
    job = job_of(slurm_conf, user)
    assert job and job_state(slurm_conf, job) == "RUNNING"
    token = hub.token(s, user)
    assert hub.run_code(user, token, "1+1") == "2"
    assert hub.run_code(user, token, "import os; os.getuid()") == str(pwd.getpwnam(user).pw_uid)
    hub.stop_server(s, user)
    deadline = time.monotonic() + 30
    while job_state(slurm_conf, job) != "CANCELLED" or subprocess.run(["pgrep", "-u", user]).returncode == 0:
        assert time.monotonic() < deadline, (
            job_state(slurm_conf, job),
            subprocess.run(["ps", "-u", user, "-o", "pid,cmd"], capture_output=True, text=True).stdout,
        )
        time.sleep(0.5)


def test_job_limits_match_the_profile_and_oom_kills_only_the_kernel(hub):
    user = USERS[1]
    s = hub.login(user)
    hub.start_server(s, user, profile="batch")
    token = hub.token(s, user)
    assert hub.run_code(user, token, JOB_MEMORY) == str(MEMORY)
    assert hub.run_code(user, token, "import os; len(os.sched_getaffinity(0))") == "1"
    with Kernel.with_token(hub.url, user, token) as kernel:
        outcome = kernel.execute(f"x = bytearray({2 * MEMORY}); len(x)", timeout=120)
        assert outcome["died"], outcome
    assert requests.get(f"{hub.url}/hub/health", timeout=10).status_code == 200
    assert hub.run_code(user, token, "2+2") == "4"
    hub.stop_server(s, user)


def test_impossible_requests_and_dead_jobs_fail_within_seconds_with_a_reason(hub):
    user = USERS[2]
    s = hub.login(user)
    message, took = spawn_failure(hub, s, user, "huge")
    assert "Slurm cannot run job" in message and "PartitionConfig" in message, message
    assert took < 20, took
    message, took = spawn_failure(hub, s, user, "nowhere")
    assert "Slurm refused the job" in message and "invalid partition" in message.lower(), message
    assert took < 20, took
    message, took = spawn_failure(hub, s, user, "broken")  # the job starts, then dies at once
    assert "ended before JupyterLab started" in message and "jupyterhub_slurmspawner_" in message, message
    assert took < 20, took
    assert hub.whoami_user(s, user)["servers"] == {}


def test_scancel_is_seen_and_the_user_can_start_again(hub, slurm_conf):
    user = USERS[3]
    s = hub.login(user)
    hub.start_server(s, user, profile="batch")
    slurm(slurm_conf, "scancel", job_of(slurm_conf, user))
    deadline = time.monotonic() + 30
    while hub.whoami_user(s, user)["servers"]:
        assert time.monotonic() < deadline, "the hub did not notice the cancelled job"
        time.sleep(1)
    hub.start_server(s, user, profile="batch")
    assert hub.run_code(user, hub.token(s, user), "1+1") == "2"
    hub.stop_server(s, user)


def test_a_hub_restart_reconnects_to_a_running_job(hub, slurm_conf):
    user = USERS[0]
    s = hub.login(user)
    hub.start_server(s, user, profile="batch")
    job = job_of(slurm_conf, user)
    token = hub.token(s, user)
    hub.stop()
    hub.start()
    assert job_state(slurm_conf, job) == "RUNNING"
    s = hub.login(user)
    assert hub.whoami_user(s, user)["servers"][""]["ready"]
    assert hub.run_code(user, token, "6*7") == "42"
    hub.stop_server(s, user)


def test_users_pick_local_or_slurm_in_the_form_and_the_api(hub, slurm_conf):
    user = USERS[1]
    s = hub.login(user)
    form = hub.get(s, "/hub/spawn")
    assert 'value="local" selected' in form.text and 'value="batch"' in form.text
    r = hub.post_form(s, f"/hub/spawn/{user}", {"profile": "batch"})
    assert r.status_code == 302, r.text[:300]
    hub.wait_ready(s, user)
    assert job_of(slurm_conf, user)
    hub.stop_server(s, user)
    hub.start_server(s, user, profile="local")
    assert job_of(slurm_conf, user) == ""
    assert hub.run_code(user, hub.token(s, user), "import os; os.getuid()") == str(pwd.getpwnam(user).pw_uid)
    hub.stop_server(s, user)


def job_token(user: str, timeout: float = 60) -> str:
    """The server token in the environment of ``user``'s running batch job (root can read it)."""
    uid = pwd.getpwnam(user).pw_uid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.stat(f"/proc/{pid}").st_uid != uid:
                    continue
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for entry in environ:
                if entry.startswith(b"JUPYTERHUB_API_TOKEN="):
                    return entry.split(b"=", 1)[1].decode()
        time.sleep(0.5)
    raise AssertionError(f"no job of {user} with a server token")


ATTACK = (
    "import json, os, urllib.request, urllib.error\n"
    "def post(body):\n"
    "    req = urllib.request.Request(os.environ['JUPYTERHUB_API_URL'] + '/batchspawner', method='POST',\n"
    "        data=json.dumps(body).encode(),\n"
    "        headers={'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']})\n"
    "    try:\n"
    "        return urllib.request.urlopen(req, timeout=10).status\n"
    "    except urllib.error.HTTPError as e:\n"
    "        return e.code\n"
)


def test_a_job_reports_its_port_and_nothing_else(hub, slurm_conf):
    """batchspawner's callback set any attribute a job named, and a restart made it the hub's config."""
    user, other = USERS[2], USERS[3]
    marker = Path(f"/tmp/campushub-attack-{os.getpid()}")
    marker.unlink(missing_ok=True)
    s = hub.login(user)
    r = hub.api(s, "POST", f"users/{user}/server", json={"profile": "slow"})
    assert r.status_code == 202, r.text
    token = job_token(user)  # the job runs its prologue; the start is pending until it reports a port
    callback = f"http://127.0.0.1:{hub.site['hub']['hub_port']}/hub/api/batchspawner"
    injected = {"batch_query_cmd": f"touch {marker}; squeue -h -j {{job_id}} -o '%T %r %B'"}
    for body in (
        {"ip": "10.0.0.9", "port": 8888},
        {"port": "8888"},
        {"port": 70000},
        {"port": 0},
        {"port": True},
        {"port": 8888, "job_id": "1"},
        {"child_config": injected},
        [8888],
    ):
        r = requests.post(callback, json=body, headers={"Authorization": f"token {token}"}, timeout=10)
        assert r.status_code == 400, (body, r.status_code, r.text)
    other_session = hub.login(other)
    other_token = hub.token(other_session, other)  # a user's own token, not a starting server's
    r = requests.post(callback, json={"port": 8888}, headers={"Authorization": f"token {other_token}"}, timeout=10)
    assert r.status_code == 403, r.text
    assert requests.post(callback, json={"port": 8888}, timeout=10).status_code == 403

    hub.wait_ready(s, user)  # the job's own report was taken
    token = hub.token(s, user)
    # once running, nothing more is accepted, whatever the body
    outcome = hub.run_code(user, token, ATTACK + f"post({{'child_config': {injected!r}}}), post({{'port': 1}})")
    assert outcome == "(409, 409)", outcome
    state = hub_state(hub, user)
    assert "child_conf" not in state and state["profile"] == "slow", state

    # a saved state that carries settings (as main's wrapspawner saved, or a tampered database) is not obeyed
    hub.stop()
    hub_state(hub, user, {**state, "child_conf": injected})
    hub.start()
    time.sleep(2 * hub.site["spawner"]["poll_interval"] + 1)  # the hub polls the job with its query command
    s = hub.login(user)
    assert hub.whoami_user(s, user)["servers"][""]["ready"]
    assert hub.run_code(user, token, "6*7") == "42"
    assert not marker.exists(), "the hub ran a command from a server's saved state"
    hub.stop_server(s, user)


def hub_state(hub, user: str, new: dict | None = None) -> dict:
    """The saved state of ``user``'s server in the hub's database; with ``new``, replace it."""
    import sqlite3

    with sqlite3.connect(hub.state / "jupyterhub.sqlite") as db:
        ((spawner_id, raw),) = db.execute(
            "select spawners.id, spawners.state from spawners join users on users.id = spawners.user_id"
            " where users.name = ? and spawners.name = ''",
            (user,),
        )
        if new is not None:
            db.execute("update spawners set state = ? where id = ?", (json.dumps(new), spawner_id))
    return json.loads(raw)

"""`slurm` profiles on a real single-node Slurm (slurmctld, slurmd, munge), through a real hub."""

import ast
import json
import os
import pwd
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from harness import (
    ARTIFACTS,
    CHROMIUM_FLAGS,
    GROUP,
    KERNELS_PARENT,
    OWN_MODULES_ONLY,
    PROXY_SECRET,
    Kernel,
    base_site,
    last_end,
    occupy_node,
    slurm,
)

USERS = [
    "chslurm-ann",
    "chslurm-ben",
    "chslurm-cy",
    "chslurm-dee",
    "chslurm-eve",
    "chslurm-fay",
    "chslurm-gus",
    "chslurm-hal",
]
METRICS_ENV = "CAMPUSHUB_TEST_METRICS_TOKEN"
METRICS_TOKEN = "a-metrics-token-for-tests-only"
MEMORY = 256 * 1024 * 1024
JOB_MEMORY = (
    "import re, pathlib; line = [l for l in open('/proc/self/cgroup') if ':memory:' in l][0];"
    " job = re.sub(r'(/job_[0-9]+).*', r'\\1', line.strip().split(':', 2)[2]);"
    " int(pathlib.Path('/sys/fs/cgroup/memory' + job, 'memory.limit_in_bytes').read_text())"
)


TEACH = {
    "runtime": {"min": "00:15:00", "max": "01:00:00", "default": "00:30:00"},
    "cpu": {"min": 1, "max": 2, "default": 1},
    "memory": {"min": "256M", "max": "1G", "default": "256M", "step": "256M"},
    "gpus": {"max": 1, "default": 0},
    "partition": {"options": ["campus"]},
    "account": {"options": "user"},
}


@pytest.fixture(scope="module")
def slurm_conf(slurm_cluster, accounts):
    """The test cluster, with USERS as accounts of the system and of Slurm (account crc-teach; crc-other has none)."""
    conf = slurm_cluster
    accounts(*USERS)
    for leftover in (("user", ",".join(USERS)), ("account", "crc-teach,crc-other")):  # of a run cut short
        env = {**os.environ, "SLURM_CONF": conf}
        subprocess.run(["sacctmgr", "-i", "delete", *leftover], capture_output=True, env=env)
    slurm(conf, "sacctmgr", "-i", "add", "account", "crc-teach,crc-other", "cluster=campushub")
    slurm(conf, "sacctmgr", "-i", "add", "user", ",".join(USERS), "account=crc-teach", "cluster=campushub")
    yield conf
    slurm(conf, "sacctmgr", "-i", "delete", "user", ",".join(USERS))
    slurm(conf, "sacctmgr", "-i", "delete", "account", "crc-teach,crc-other")


@pytest.fixture(scope="module")
def hub(slurm_conf, hubs):
    site = base_site(
        # JupyterLab warns as soon as a job has 2 minutes left, and saves 100 s before the end
        slurm={"conf": slurm_conf, "warn_minutes": [2], "save_seconds": 100},
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
            {"slug": "nowhere", "name": "Slurm: no such feature", "backend": "slurm", "options": ["--constraint=nope"]},
            {"slug": "broken", "name": "Slurm: a job that dies", "backend": "slurm", "prologue": "exit 3"},
            # the issue-8 reproduction: a profile without choices, and one with bounded choices
            {
                "slug": "small",
                "name": "Slurm: small",
                "backend": "slurm",
                "cpu": 1,
                "memory": "1G",
                "runtime": "00:30:00",
                "partition": "campus",
            },
            {"slug": "teach", "name": "Teach", "backend": "slurm", "cluster": "campushub", "choices": TEACH},
            {"slug": "minute", "name": "Slurm: one minute", "backend": "slurm", "cpu": 1, "runtime": "00:01:00"},
            {"slug": "two", "name": "Slurm: two minutes", "backend": "slurm", "cpu": 1, "runtime": "00:02:00"},
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
    site["metrics"] = {"enabled": True, "token": {"env": METRICS_ENV}}  # the queue wait, in campushub's series
    hub = hubs.start(site, "slurm", env={METRICS_ENV: METRICS_TOKEN})  # as root: sudo -u to each user
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
    # fast_start: the server forked a kernel parent as it started, and the kernel is its fork
    assert hub.run_code(user, token, KERNELS_PARENT) == repr(f"campushub-kernels {user}")
    # the server started with Python's garbage collector off (a cold start's imports); the kernels collect
    assert hub.run_code(user, token, "import gc; gc.isenabled()") == "True"
    # it listed only its own modules for its debugger: the kernel parent listed its own once
    assert hub.run_code(user, token, OWN_MODULES_ONLY) == "True"
    # its temporary files go to a folder of its own, which only the user can open (server/temporary.py)
    tmp = ast.literal_eval(hub.run_code(user, token, "import tempfile; tempfile.gettempdir()"))
    st = os.lstat(tmp)
    assert os.path.basename(tmp).startswith("campushub-tmp-"), tmp
    assert (st.st_uid, oct(st.st_mode)) == (pwd.getpwnam(user).pw_uid, "0o40700"), (tmp, st)
    # the server reported its port itself, once it listened, without batchspawner-singleuser or the hub's modules
    log = Path(pwd.getpwnam(user).pw_dir, f"jupyterhub_slurmspawner_{job}.log").read_text()
    assert "campushub: reported port" in log, log[-2000:]
    script = batch_script(slurm_conf, job)
    assert "batchspawner-singleuser" not in script and "campushub-singleuser" in script, script
    hub.stop_server(s, user)
    deadline = time.monotonic() + 30
    while job_state(slurm_conf, job) != "CANCELLED" or subprocess.run(["pgrep", "-u", user]).returncode == 0:
        assert time.monotonic() < deadline, (
            job_state(slurm_conf, job),
            subprocess.run(["ps", "-u", user, "-o", "pid,cmd"], capture_output=True, text=True).stdout,
        )
        time.sleep(0.5)
    assert not os.path.exists(tmp), f"the job's temporary folder {tmp} was left after it ended"


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
    assert "Slurm refused the job" in message and "invalid feature" in message.lower(), message
    assert took < 20, took
    message, took = spawn_failure(hub, s, user, "broken")  # the job starts, then dies at once
    assert "ended before JupyterLab started" in message and "jupyterhub_slurmspawner_" in message, message
    assert took < 20, took
    assert hub.whoami_user(s, user)["servers"] == {}
    end = last_end(hub, s)
    assert re.fullmatch(r"Job \d+ failed\.", end["words"]) and "exit code 3:0" in end["details"], end


def test_scancel_is_seen_and_the_user_can_start_again(hub, slurm_conf):
    user = USERS[3]
    s = hub.login(user)
    hub.start_server(s, user, profile="batch")
    slurm(slurm_conf, "scancel", job_of(slurm_conf, user))
    deadline = time.monotonic() + 30
    while hub.whoami_user(s, user)["servers"]:
        assert time.monotonic() < deadline, "the hub did not notice the cancelled job"
        time.sleep(1)
    assert re.fullmatch(r"Job \d+ was cancelled by an administrator\.", last_end(hub, s)["words"])
    hub.start_server(s, user, profile="batch")
    assert hub.run_code(user, hub.token(s, user), "1+1") == "2"
    assert "campushub-last-end" not in hub.get(s, "/hub/home").text  # a new start forgets the old end
    hub.stop_server(s, user)
    assert "campushub-last-end" not in hub.get(s, "/hub/home").text  # stopped on request: nothing to explain


def progress_messages(hub, session, user, until, timeout=120) -> list[str]:
    """The spawn page's progress messages for ``user``'s start, read until one matches ``until``."""
    seen = []
    with hub.api(session, "GET", f"users/{user}/server/progress", stream=True, timeout=timeout) as events:
        for line in events.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                event = json.loads(line[5:])
                seen.append(event.get("message", ""))
                assert not event.get("failed"), seen
                if re.search(until, seen[-1]) or event.get("ready"):
                    return seen
    raise AssertionError(f"no progress message matched {until!r}: {seen}")


def test_a_pending_job_says_why_and_when_in_words_and_starts_when_the_node_frees(hub, slurm_conf):
    user = USERS[4]
    filler = occupy_node(slurm_conf, 170)
    try:
        s = hub.login(user)
        r = hub.api(s, "POST", f"users/{user}/server", json={"profile": "batch"})
        assert r.status_code == 202, r.text
        seen = progress_messages(hub, s, user, "waiting for a free node")
        assert re.search(
            r"Job \d+: Waiting in the Slurm queue: waiting for a free node with the CPUs, memory", seen[-1]
        )
        seen = progress_messages(hub, s, user, r"Slurm expects it to start around \d\d:\d\d \(in \d+ min\)")
        assert "expects it to start" in seen[-1], seen  # the backfill scheduler's estimate (bf_interval=2)
    finally:
        slurm(slurm_conf, "scancel", filler)
    hub.wait_ready(s, user)
    page = hub.get(s, "/hub/home").text
    assert re.search(r'<dd class="campushub-where">Slurm job \d+ on \S+</dd>', page), page
    assert re.search(r'<dd class="campushub-left">(29|30) min \(until about \d\d:\d\d\)</dd>', page), page
    hub.screenshot(user, "/hub/home", "session-card-running.png", wait_for=".campushub-session")
    scraped = requests.get(
        f"{hub.url}/hub/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    ).text
    waited = re.search(r'^campushub_slurm_queue_wait_seconds_count\{partition="campus"\} (\S+)$', scraped, re.M)
    total = re.search(r'^campushub_slurm_queue_wait_seconds_sum\{partition="campus"\} (\S+)$', scraped, re.M)
    assert waited and float(waited.group(1)) >= 1, scraped[-3000:]
    assert float(total.group(1)) >= 2, scraped[-3000:]  # this job's seconds behind the filler, at least
    hub.stop_server(s, user)


def test_why_a_job_ended_by_itself_is_on_the_home_page(hub, slurm_conf):
    """A time limit reached (TIMEOUT), and memory exceeded (OUT_OF_MEMORY), each with advice."""
    timed, hog = USERS[5], USERS[1]
    s_timed, s_hog = hub.login(timed), hub.login(hog)
    hub.start_server(s_timed, timed, profile="minute")  # ends within a minute and a half
    hub.start_server(s_hog, hog, profile="batch")
    token = hub.token(s_hog, hog)
    with Kernel.with_token(hub.url, hog, token) as kernel:
        assert kernel.execute(f"x = bytearray({2 * MEMORY})", timeout=120)["died"]  # the cgroup's OOM killer
    # then the server ends by itself: the job ends, and Slurm says it ran out of memory
    with Kernel.with_token(hub.url, hog, token) as kernel:
        server = "int(os.environ.get('JPY_PARENT_PID') or os.getppid())"
        kernel.execute(f"import os, signal; os.kill({server}, signal.SIGTERM)", timeout=30)
    for user, session, words, advice in (
        (hog, s_hog, "ran out of memory", "Choose a profile (or a choice) with more memory."),
        (timed, s_timed, "reached its time limit", "Save your work before the time limit"),
    ):
        deadline = time.monotonic() + 150
        while hub.whoami_user(session, user)["servers"]:
            assert time.monotonic() < deadline, f"the hub did not notice {user}'s job end"
            time.sleep(1)
        end = last_end(hub, session)
        assert re.fullmatch(rf"Job \d+ {words}\.", end["words"]), end
        assert advice in hub.get(session, "/hub/home").text
    hub.screenshot(timed, "/hub/home", "session-ended-timeout.png", wait_for=".campushub-last-end")


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
    assert 'name="profile" value="local"' in form.text and 'name="profile" value="batch"' in form.text
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
    """batchspawner's callback set any attribute a job named, and a restart made it the hub's config.

    Its user has never failed a start: JupyterHub 6.1 answers a start that follows a failed one 201 even while it is
    pending (``get_spawner(replace_failed=True)`` hands the API handler a spawner it does not keep).
    """
    user, other = USERS[7], USERS[3]
    marker = Path(f"/tmp/campushub-attack-{os.getpid()}")
    marker.unlink(missing_ok=True)
    s = hub.login(user)
    r = hub.api(s, "POST", f"users/{user}/server", json={"profile": "slow"})
    assert r.status_code == 202, r.text
    token = job_token(user)  # the job runs its prologue; the start is pending until it reports a port
    callback = f"http://127.0.0.1:{hub.site['hub']['hub_port']}/hub/api/batchspawner"
    injected = {"batch_query_cmd": f"touch {marker}; squeue -h -j {{job_id}} -o '%T %r %B'"}
    # the hub's own ports on its own host (where the job runs here): the hub would route the user to itself
    hub_ports = [hub.port, hub.site["hub"]["hub_port"], hub.site["hub"]["proxy_api_port"]]
    for body in (
        *({"port": port} for port in hub_ports),
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


def batch_script(conf, job: str) -> str:
    return slurm(conf, "scontrol", "write", "batch_script", job, "-")


def job_fields(conf, job: str) -> dict:
    return dict(f.split("=", 1) for f in slurm(conf, "scontrol", "-o", "show", "job", job).split() if "=" in f)


def test_the_user_options_bypass_of_slurm_limits_is_closed(hub, slurm_conf):
    """Issue 8's reproduction: keys a profile does not offer reached sbatch and the batch script."""
    user = USERS[0]
    s = hub.login(user)
    attack = {
        "profile": "small",
        "runtime": "2-00:00:00",
        "nprocs": "2",
        "memory": "3000M",
        "prologue": "echo anything",
    }
    r = hub.api(s, "POST", f"users/{user}/server", json=attack)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith("runtime: not a choice the profile 'small' offers (it offers none)")
    for extra in ({"partition": "other"}, {"req_options": "--uid=0"}, {"child_config": {}}):
        r = hub.api(s, "POST", f"users/{user}/server", json={"profile": "small", **extra})
        assert r.status_code == 400 and r.json()["message"].startswith(f"{next(iter(extra))}: not a choice"), r.text
    assert job_of(slurm_conf, user) == "" and hub.whoami_user(s, user)["servers"] == {}
    # and without any extra key, the profile's own limits, and nothing of the request, reach the job
    hub.start_server(s, user, profile="small")
    job = job_of(slurm_conf, user)
    fields = job_fields(slurm_conf, job)
    assert (fields["TimeLimit"], fields["NumCPUs"], fields["MinMemoryNode"]) == ("00:30:00", "1", "1G"), fields
    assert "echo anything" not in batch_script(slurm_conf, job)
    hub.stop_server(s, user)


def test_declared_choices_reach_the_job_as_validated_values(hub, slurm_conf):
    user = USERS[1]
    s = hub.login(user)
    hub.start_server(s, user, profile="teach", runtime="00:45:00", cpu=2, memory="512M", partition="campus")
    job = job_of(slurm_conf, user)
    fields = job_fields(slurm_conf, job)
    assert (fields["TimeLimit"], fields["NumCPUs"], fields["MinMemoryNode"]) == ("00:45:00", "2", "512M"), fields
    assert (fields["Partition"], fields["Account"]) == ("campus", "crc-teach"), fields  # the user's own account
    script = batch_script(slurm_conf, job)
    assert "#SBATCH --time=45\n" in script, script
    assert re.search(r"^#SBATCH (.* )?--account=crc-teach( |$)", script, re.MULTILINE), script
    options = hub.whoami_user(s, user)["servers"][""]["user_options"]
    assert options == {
        "profile": "teach",
        "runtime": "00:45:00",
        "cpu": 2,
        "memory": "512M",
        "gpus": 0,
        "partition": "campus",
        "account": "crc-teach",
    }, options
    hub.stop_server(s, user)


@pytest.mark.parametrize(
    "choice, message",
    [
        ({"runtime": "02:00:00"}, "runtime: must be from 00:15:00 to 01:00:00, not 02:00:00"),
        ({"runtime": "2-00:00:00"}, "runtime: must be from 00:15:00 to 01:00:00, not 2-00:00:00"),
        ({"cpu": 8}, "cpu: must be a whole number from 1 to 2, not 8"),
        ({"memory": "4G"}, "memory: must be from 256M to 1G, not 4G"),
        ({"gpus": 3}, "gpus: must be a whole number from 0 to 1, not 3"),
        ({"partition": "other"}, "partition: must be one of campus, not 'other'"),
        ({"account": "crc-other"}, "account: must be one of crc-teach, not 'crc-other'"),
        ({"cpu": "1; scancel -u root"}, "cpu: must be a number, not '1; scancel -u root'"),
        ({"prologue": "id"}, "prologue: not a choice the profile 'teach' offers"),
    ],
    ids=lambda x: next(iter(x)) if isinstance(x, dict) else "",
)
def test_choices_out_of_bounds_are_refused_and_nothing_is_submitted(hub, slurm_conf, choice, message):
    user = USERS[2]
    s = hub.login(user)
    r = hub.api(s, "POST", f"users/{user}/server", json={"profile": "teach", **choice})
    assert r.status_code == 400 and r.json()["message"].startswith(message), r.text
    assert job_of(slurm_conf, user) == "" and hub.whoami_user(s, user)["servers"] == {}


def test_the_form_offers_bounded_choices_and_remembers_them(hub, slurm_conf):
    """Chromium (Playwright) on the spawn form, signed in with the front door's headers."""
    from playwright.sync_api import expect, sync_playwright

    from harness import ARTIFACTS, CHROMIUM_FLAGS

    user = USERS[3]
    ARTIFACTS.mkdir(exist_ok=True)
    headers = {"Cn": user, "isMemberOf": GROUP, hub.secret_header: hub.secret}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_context(extra_http_headers=headers).new_page()
        try:
            page.goto(f"{hub.url}/hub/spawn")
            expect(page.locator('input[name="profile"][value="teach"]')).to_be_visible()
            assert page.locator('input[name="profile"][value="huge"]').count() == 1  # open to everyone
            page.check('input[name="profile"][value="teach"]')
            runtime, cpu = page.locator('input[name="teach.runtime"]'), page.locator('input[name="teach.cpu"]')
            # a time as people write one (issue 21: the form asked for hours, so 3 minutes were "0.05")
            assert runtime.input_value() == "0:30"
            expect(page.locator("#choice-teach-runtime ~ small")).to_contain_text("from 0:15 to 1:00 (hours:minutes")
            assert (cpu.get_attribute("min"), cpu.get_attribute("max")) == ("1", "2")
            assert page.locator('select[name="teach.account"] option').all_inner_texts() == ["crc-teach"]
            assert page.locator('input[name="batch.runtime"]').count() == 0  # profiles without choices have none
            runtime.fill("0:45")
            cpu.fill("2")
            page.screenshot(path=str(ARTIFACTS / "spawn-form-choices.png"), full_page=True)
            page.click('#spawn_form input[type="submit"], #spawn_form button[type="submit"]')
            page.wait_for_url(f"**/user/{user}/**", timeout=120_000)
            fields = job_fields(slurm_conf, job_of(slurm_conf, user))
            assert (fields["TimeLimit"], fields["NumCPUs"]) == ("00:45:00", "2"), fields
            hub.stop_server(hub.login(user), user)
            page.goto(f"{hub.url}/hub/spawn")  # the next visit starts from the last choices
            expect(page.locator('input[name="profile"][value="teach"]')).to_be_checked()
            expect(page.locator('input[name="teach.runtime"]')).to_have_value("0:45")
            expect(page.locator('input[name="teach.cpu"]')).to_have_value("2")
        finally:
            page.screenshot(path=str(ARTIFACTS / "spawn-form-last-page.png"), full_page=True)
            browser.close()


def test_a_slurm_profile_for_a_user_without_an_account_is_refused_in_words(hub, slurm_conf):
    user = "chslurm-nobody"
    subprocess.run(["userdel", "--remove", user], capture_output=True)
    s = hub.login(user)
    r = hub.api(s, "POST", f"users/{user}/server", json={"profile": "batch"})
    assert r.status_code == 403 and r.json()["message"].startswith(f"You ({user}) have no account"), r.text
    assert job_of(slurm_conf, user) == ""


def test_jupyterlab_shows_the_time_left_warns_and_saves_open_work_before_the_end(hub, slurm_conf):
    """campushub's JupyterLab extension, in Chromium, on a two-minute job: the status bar, the warning, the save."""
    from playwright.sync_api import expect, sync_playwright

    user = USERS[6]
    notebook = Path(pwd.getpwnam(user).pw_dir) / "Untitled.ipynb"
    notebook.unlink(missing_ok=True)
    headers = {hub.user_header: user, hub.groups_header: GROUP, hub.secret_header: PROXY_SECRET}
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_context(extra_http_headers=headers).new_page()
        try:
            page.goto(f"{hub.url}/hub/spawn")
            page.locator('input[value="two"]').check()
            page.click("#spawn_form button[type=submit]")
            page.wait_for_url(f"**/user/{user}/lab**", timeout=120_000)
            expect(page.locator(".campushub-time-left")).to_have_text(re.compile(r"Time left: 1:\d\d"), timeout=60_000)
            expect(page.get_by_text("This session ends in 2 min")).to_be_visible(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "slurm-time-left.png"))
            page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click(timeout=60_000)
            cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
            cell.click(timeout=60_000)
            page.keyboard.type("edited = 'not saved by hand'")  # never saved by the user
            expect(page.get_by_text("Saved every open document")).to_be_visible(timeout=90_000)
            page.screenshot(path=str(ARTIFACTS / "slurm-saved-before-the-end.png"))
        finally:
            browser.close()
            s = hub.login(user)
            hub.api(s, "DELETE", f"users/{user}/server")
    assert "not saved by hand" in notebook.read_text()

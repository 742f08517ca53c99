"""What a hub as root does for users of `slurm` profiles, where users control the files and the names (issue 20).

Each test is an attack from a signed-in user's own account against a real Slurm, in both of
``slurm.submit_as``'s modes: the hub reads a job's log for "why it ended" as the user and within bounds,
and runs no job for a name that is a system account. Each failed on main (3d39794): in ``sbatch_uid``
mode root read the log, following the user's symlink to ``/etc/shadow`` or the hub's cookie secret onto
the home page; in both, a log linked to ``/dev/zero`` or made a FIFO held the hub's ``tail``; and
``Cn: root`` got a job running as root.
"""

import pwd
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from harness import base_site, last_end, slurm

USERS = ["chtrust-ann", "chtrust-ben"]


@pytest.fixture(scope="module", params=["sudo", "sbatch_uid"])
def hub(request, slurm_cluster, accounts, hubs):
    accounts(*USERS)
    site = base_site(
        slurm={"conf": slurm_cluster, "submit_as": request.param},
        spawner={"poll_interval": 2},
        profiles=[
            {
                "slug": "batch",
                "name": "Slurm",
                "backend": "slurm",
                "cpu": 1,
                "memory": "256M",
                "runtime": "00:10:00",
                "default": True,
            }
        ],
    )
    hub = hubs.start(site, f"slurm-trust-{request.param}")
    hub.slurm_conf = slurm_cluster
    yield hub
    hub.stop()


def as_user(user: str, *command: str):
    """Run ``command`` as ``user``, as their own code on a node would."""
    account = pwd.getpwnam(user)
    subprocess.run(
        ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups", *command],
        check=True,
        cwd=account.pw_dir,
    )


def hub_memory(hub) -> int:
    """The resident memory of ``campushub up``, the hub and everything they started (bytes)."""
    up = psutil.Process(hub.process.pid)
    return sum(p.memory_info().rss for p in [up, *up.children(recursive=True)] if p.is_running())


def job_ended_with(hub, user: str, prepare) -> tuple[dict, float]:
    """Start ``user``'s job, let ``prepare(log)`` do what the user does to its log, end the job; how the home page
    tells it, and how long the hub took to notice."""
    s = hub.login(user)
    hub.start_server(s, user)
    job = slurm(hub.slurm_conf, "squeue", "-h", "-u", user, "-o", "%i")
    log = Path(pwd.getpwnam(user).pw_dir) / f"jupyterhub_slurmspawner_{job}.log"
    assert log.stat().st_mode & 0o077 == 0, oct(log.stat().st_mode)  # the job's log is its user's alone
    prepare(log)
    before = hub_memory(hub)
    ended = time.monotonic()
    slurm(hub.slurm_conf, "scancel", job)
    while hub.whoami_user(s, user)["servers"]:
        assert time.monotonic() - ended < 60, "the hub did not notice the job's end"
        time.sleep(0.5)
    noticed = time.monotonic() - ended
    assert hub_memory(hub) - before < 100 * 2**20  # nothing read without bounds
    return last_end(hub, s), noticed


def test_the_end_of_a_jobs_own_log_is_on_the_home_page(hub):
    """The control: what the job wrote last is shown (read as the user, with the bounded reader)."""
    user = USERS[0]
    end, _ = job_ended_with(hub, user, lambda log: as_user(user, "sh", "-c", f"echo the-last-words >> {log}"))
    assert "the-last-words" in end["log"], end


@pytest.mark.parametrize("target", ["/etc/shadow", "cookie secret", "/dev/zero", "fifo"])
def test_a_log_the_user_replaced_is_read_as_the_user_within_bounds(hub, target):
    user = USERS[1]
    secret = hub.state / "jupyterhub_cookie_secret"

    def replace(log: Path):
        as_user(user, "rm", "-f", str(log))
        if target == "fifo":
            as_user(user, "mkfifo", str(log))
        else:
            as_user(user, "ln", "-s", str(secret) if target == "cookie secret" else target, str(log))

    end, noticed = job_ended_with(hub, user, replace)
    shown = end.get("log", "")
    assert "root:" not in shown and secret.read_text().strip() not in shown, shown
    assert "\0" not in shown and len(shown) < 16 * 1024
    assert noticed < 30, noticed  # never held by what it reads
    assert end["words"], end  # and the home page still says why the job ended


@pytest.mark.parametrize("name", ["root", "daemon", "munge", "campushub"])
def test_a_name_that_is_a_system_account_gets_no_job(hub, name):
    s = hub.login(name)
    r = hub.api(s, "POST", f"users/{name}/server", json={})
    assert r.status_code == 403, (r.status_code, r.text)
    assert "not a person's" in r.json()["message"], r.text
    assert slurm(hub.slurm_conf, "squeue", "-h", "-u", name, "-o", "%i", check=False) == ""
    assert hub.whoami_user(s, name)["servers"] == {}

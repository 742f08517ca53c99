"""The compose deployment on ROOTLESS Podman (the seed's own setup), following docs/containers.md's
"Rootless Podman" steps: an unprivileged account, `scripts/engine start rootless ACCOUNT`, the images
copied with ROOTLESS_ACCOUNT, `scripts/compose up -d hub` run as that account.

These hosts have cgroup v1 (ENVIRONMENT.md), where rootless Podman cannot set CPU or memory limits:
the pre-flight refuses a profile with them, and the test checks what a user's container then gets.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import (
    CAMPUSHUB,
    REPO,
    Compose,
    account_environment,
    as_account,
    podman,
    remove_volumes,
    require_root,
)

ACCOUNT = "campushub-rootless"
PROJECT = f"chrootless{os.getpid()}"
VOLUME = PROJECT + "-user-{username}"
#: not compose.yaml's default 10.89.77.0/24: rootful Podman's campushub network may hold it on this host
#: (the rootful tests), and Podman refuses a subnet the host routes already
SUBNET = "10.89.87"
ENV = {
    "CAMPUSHUB_SUBNET": f"{SUBNET}.0/24",
    "CAMPUSHUB_HUB_ADDRESS": f"{SUBNET}.2",
    "CAMPUSHUB_USER_ADDRESSES": f"{SUBNET}.128/25",
}
SITE = {
    "hub": {
        "bind_url": "http://0.0.0.0:8000",
        "hub_ip": "0.0.0.0",
        "hub_connect_ip": f"{SUBNET}.2",
        "state_dir": "/srv/campushub/state",
    },
    # rootless Podman's port forwarder connects from inside the hub's container: requests published on
    # the host's loopback arrive from the hub's own address, not from the network's gateway
    "auth": {"type": "remote_user", "required_groups": ["SAM-SSLVPNSAMUsers"], "trusted_proxies": [f"{SUBNET}.2/32"]},
    # rootless Podman maps only its account's subordinate uids into containers: they run as the image's uid
    "container": {"volume": VOLUME, "uid_base": None},
    # no cpu or memory: rootless Podman on cgroup v1 cannot enforce them (see the limits test)
    "profiles": [{"slug": "lab", "name": "JupyterLab", "backend": "container", "default": True}],
    "culler": {"enabled": False},
}
#: what a user's container sees of its limits: (memory limit, CPU quota, open files, processes)
LIMITS = (
    "import pathlib, resource; r = lambda p: int(pathlib.Path('/sys/fs/cgroup', p).read_text());"
    " (r('memory/memory.limit_in_bytes'), r('cpu/cpu.cfs_quota_us'),"
    " resource.getrlimit(resource.RLIMIT_NOFILE)[1], resource.getrlimit(resource.RLIMIT_NPROC)[1])"
)
NOTES = "/home/jovyan/work/notes.txt"
#: from a user's container: SSO headers sent to the hub's proxy, and to the hub itself with a forged
#: X-Forwarded-For naming the trusted address; each answer's status
FORGED = (
    "import urllib.request, urllib.error\n"
    "def status(url, **extra):\n"
    "    headers = {'Cn': 'mallory', 'isMemberOf': 'SAM-SSLVPNSAMUsers', **extra}\n"
    "    try:\n"
    "        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10).status\n"
    "    except urllib.error.HTTPError as e:\n"
    "        return e.code\n"
    f"[status('http://{SUBNET}.2:8000/hub/login'),"
    f" status('http://{SUBNET}.2:8081/hub/login', **{{'X-Forwarded-For': '{SUBNET}.2'}})]"
)
CA_CERTS = "/usr/local/share/ca-certificates"  # as the engine fixture builds the images


def run(*command, account=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        as_account(account) + list(command),
        capture_output=True,
        text=True,
        env={**os.environ, **account_environment(account), **(env or {})},
    )


def ensure_rootless_account():
    """The unprivileged account, with subordinate IDs (Debian's useradd gives them to a new account)."""
    if run("id", ACCOUNT).returncode:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", ACCOUNT], check=True)
    for ids, option in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
        if not any(line.startswith(f"{ACCOUNT}:") for line in Path(ids).read_text().splitlines()):
            ends = [int(f[1]) + int(f[2]) for f in (line.split(":") for line in Path(ids).read_text().split()) if f]
            start = max([100000, *ends])
            subprocess.run(["usermod", option, f"{start}-{start + 65535}", ACCOUNT], check=True)


@pytest.fixture(scope="module")
def rootless(engine):
    """The account's rootless Podman serving the Docker API, with the hub and slim lab images root built."""
    require_root("setting up rootless Podman for an account")
    ensure_rootless_account()
    script = str(REPO / "scripts" / "engine")
    started = run(script, "start", "rootless", ACCOUNT)
    assert started.returncode == 0, started.stderr
    socket = started.stdout.strip()
    uid = int(run("id", "-u", ACCOUNT).stdout)
    assert socket == f"unix:///run/user/{uid}/podman/podman.sock", socket
    driver = podman("info", "--format", "{{.Store.GraphDriverName}}", account=ACCOUNT)
    assert driver == "overlay", driver  # scripts/engine wrote the account's storage.conf
    images = run(
        str(REPO / "scripts" / "images"),
        env={"ROOTLESS_ACCOUNT": ACCOUNT, "IMAGES": "hub lab-slim", "EXTRA_CA_CERTS_DIR": CA_CERTS},
    )
    assert images.returncode == 0, images.stderr[-3000:]
    yield socket
    for name in podman("ps", "-a", "--format", "{{.Names}}", account=ACCOUNT).split():
        if name.startswith(("jupyter-rl", PROJECT)):
            podman("rm", "-f", name, check=False, account=ACCOUNT)
    podman("network", "rm", "campushub", check=False, account=ACCOUNT)
    remove_volumes(PROJECT, account=ACCOUNT)
    subprocess.run([script, "stop", "rootless", ACCOUNT], check=True)
    listed = subprocess.run(["ps", "-o", "stat=,pid=,args=", "-u", ACCOUNT], capture_output=True, text=True).stdout
    left = [line for line in listed.splitlines() if not line.strip().startswith("Z")]  # zombies are init's to reap
    assert not left, "the account's engine left processes behind:\n" + "\n".join(left)


@pytest.fixture(scope="module")
def deployment(rootless, hub_root):
    compose = Compose(hub_root / "rootless", SITE, PROJECT, rootless, env=ENV, account=ACCOUNT)
    try:
        compose.up()
        yield compose
    finally:
        compose.run("down")


def owner(pid: str) -> int:
    """The real UID of a process on the host."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def test_check_refuses_limits_rootless_podman_would_ignore(rootless, hub_root):
    """cgroup v1 (these hosts): rootless Podman starts containers without CPU or memory limits and only warns,
    so `scripts/compose up` refuses a profile with them before starting anything."""
    version = podman("info", "--format", "{{.Host.CgroupsVersion}}", account=ACCOUNT)
    assert version == "v1", f"this test knows cgroup v1 (ENVIRONMENT.md), not {version}: test limits as rootful"
    limited = {**SITE, "profiles": [{**SITE["profiles"][0], "cpu": 0.5, "memory": "256M"}]}
    compose = Compose(hub_root / "rootless-limits", limited, PROJECT + "limits", rootless, env=ENV, account=ACCOUNT)
    result = compose.run("up", "-d", "hub")
    assert result.returncode == 2, result.stdout + result.stderr
    for field in ("cpu", "memory"):
        assert (
            f"profiles.0.{field}: Podman 4.3.1 (rootless) cannot enforce CPU or memory limits on this host's cgroup v1"
        ) in result.stderr, result.stderr
    assert "not starting anything" in result.stderr
    assert f"{PROJECT}limits_hub_1" not in podman("ps", "-a", "--format", "{{.Names}}", account=ACCOUNT).split()


def test_a_users_server_on_rootless_podman_keeps_its_volume_across_a_hub_restart(deployment):
    uid = int(run("id", "-u", ACCOUNT).stdout)
    printed = deployment.started.stdout + deployment.started.stderr
    assert "campushub check --compose" in printed and "ok: the hub answers at" in printed, printed
    # the hub runs as the account on the host, never as root
    assert owner(deployment.podman("inspect", "--format", "{{.State.Pid}}", deployment.hub_container)) == uid

    user = "rlalice"
    s = deployment.login(user)
    deployment.start_server(s, user)
    token = deployment.token(s, user)
    assert deployment.run_code(user, token, f"open({NOTES!r}, 'w').write('kept rootless')") == "13"
    inspected = json.loads(deployment.podman("inspect", f"jupyter-{user}"))[0]
    assert [m.get("Name") for m in inspected["Mounts"]] == [VOLUME.format(username=user)]
    address = inspected["NetworkSettings"]["Networks"]["campushub"]["IPAddress"]
    assert address.startswith(f"{SUBNET}.") and int(address.rsplit(".", 1)[1]) >= 128, address
    # the user's server runs as one of the account's subordinate IDs on the host: neither root nor the account
    subuid = next(line for line in Path("/etc/subuid").read_text().split() if line.startswith(f"{ACCOUNT}:"))
    first, count = map(int, subuid.split(":")[1:])
    assert first <= owner(str(inspected["State"]["Pid"])) < first + count

    # the trusted address is the hub's own: a user's container cannot sign in as anyone, even claiming it
    assert deployment.run_code(user, token, FORGED) == "[403, 403]"

    # what is and is not enforced (docs/containers.md): no cgroup limit at all; containers.conf's ulimits
    memory, quota, files, processes = eval(deployment.run_code(user, token, LIMITS))
    assert memory >= 2**62 and quota == -1, (memory, quota)  # unlimited: the site's profiles must not promise any
    assert (files, processes) == (20000, 32768)

    deployment.stop_server(s, user)
    assert f"jupyter-{user}" not in deployment.podman("ps", "-a", "--format", "{{.Names}}").split()
    assert VOLUME.format(username=user) in deployment.podman("volume", "ls", "--format", "{{.Name}}").split()

    deployment.compose("down")
    assert deployment.hub_container not in deployment.podman("ps", "-a", "--format", "{{.Names}}").split()
    deployment.up()
    # the hub's state (its database, in the hub-state volume) outlived it: the token from before still works
    s = deployment.login(user)
    deployment.start_server(s, user)
    assert deployment.run_code(user, token, f"open({NOTES!r}).read()") == "'kept rootless'"
    deployment.stop_server(s, user)


def test_check_compose_as_root_names_the_rootless_socket(deployment):
    """Root running the pre-flight against the account's socket: the hub would talk to another engine than
    root's podman-compose runs it on, and the message says so."""
    result = subprocess.run(
        [
            CAMPUSHUB,
            "check",
            "--compose",
            str(REPO / "compose.yaml"),
            "--env-file",
            str(deployment.env_file),
            "--engine",
            "podman",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is the socket of Podman 4.3.1 (rootless), but compose runs the hub on Podman" in result.stderr

"""The compose deployment on a real Podman: images, SSO login, container profiles, limits, volumes."""

import ipaddress
import json
import os
import pwd
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml
from dockerspawner import DockerSpawner

from harness import (
    CAMPUSHUB,
    GROUP,
    KERNELS_PARENT,
    LAB_IMAGE,
    OWN_MODULES_ONLY,
    REPO,
    Compose,
    Kernel,
    free_port,
    last_end,
    podman,
    remove_volumes,
    require_root,
)

MEMORY = 256 * 1024 * 1024
#: (memory limit in bytes, CPUs) from inside a container, as cgroup v1 shows them
CGROUP_LIMITS = (
    "import pathlib; r = lambda p: int(pathlib.Path('/sys/fs/cgroup', p).read_text());"
    " (r('memory/memory.limit_in_bytes'), r('cpu/cpu.cfs_quota_us') / r('cpu/cpu.cfs_period_us'))"
)
PROJECT = f"chtest{os.getpid()}"
#: compose.yaml's default campushub.user-addresses: users' containers get addresses here, the hub (.2) never
USER_ADDRESSES = ipaddress.ip_network("10.89.77.128/25")
OPEN_PORT = 18999  # a port the firewall leaves alone
VOLUME = PROJECT + "-user-{username}"  # never touch volumes this run did not make
SITE = {
    "hub": {
        "bind_url": "http://0.0.0.0:8000",
        "hub_ip": "0.0.0.0",
        "hub_connect_ip": "10.89.77.2",
        "state_dir": "/srv/campushub/state",
    },
    # requests published on the host's loopback reach the hub from the compose network's gateway
    "auth": {"type": "remote_user", "required_groups": [GROUP], "trusted_proxies": ["10.89.77.1/32"]},
    "container": {"volume": VOLUME},
    "profiles": [
        {"slug": "lab", "name": "JupyterLab", "backend": "container", "cpu": 0.5, "memory": "256M", "default": True},
        {
            "slug": "pick",
            "name": "JupyterLab, your size",
            "backend": "container",
            "choices": {
                "image": {"options": [LAB_IMAGE]},
                "cpu": {"min": 0.25, "max": 1, "default": 0.5, "step": 0.25},
                "memory": {"min": "256M", "max": "512M", "default": "256M", "step": "256M"},
            },
        },
    ],
    "culler": {"enabled": False},
    "spawner": {"poll_interval": 3},  # the hub notices a container that ended by itself within seconds
}


@pytest.fixture(scope="module")
def deployment(engine, hub_root):
    compose = Compose(hub_root / "compose", SITE, PROJECT, engine)
    compose.up()
    yield compose
    compose.compose("down")
    remove_volumes(PROJECT)


def volume_of(name: str) -> str:
    return VOLUME.format(username=DockerSpawner._escape(name))


def address_of(container: str, network: str = "campushub", engine: str = "podman") -> ipaddress.IPv4Address:
    inspected = subprocess.run([engine, "inspect", container], capture_output=True, text=True, check=True).stdout
    return ipaddress.ip_address(json.loads(inspected)[0]["NetworkSettings"]["Networks"][network]["IPAddress"])


def test_up_checks_first_then_shows_health_without_systemd_noise(deployment):
    """`scripts/compose up -d hub`, as the docs say: the pre-flight, then /hub/health through the published
    port; no compose healthcheck (Podman runs those with systemd timers, and printed their errors)."""
    printed = deployment.started.stdout + deployment.started.stderr
    assert "campushub check --compose" in printed
    assert f"ok: the hub answers at {deployment.url}/hub/health (JupyterHub " in printed, printed
    assert "systemd" not in printed.lower(), printed
    assert podman("inspect", "--format", "{{.Config.Healthcheck}}", deployment.hub_container) in ("", "<nil>")
    status = subprocess.run(
        [CAMPUSHUB, "status", "--compose", str(REPO / "compose.yaml"), "--env-file", str(deployment.env_file)],
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and status.stdout.startswith("ok: the hub answers"), status.stderr


def containers() -> list[str]:
    return podman("ps", "-a", "--format", "{{.Names}}").split()


def test_a_container_that_was_killed_says_so_on_the_home_page(deployment):
    """Issue 10: a container that ended by itself is removed, but first the hub reads its exit code (and the
    engine's OOM flag: on Docker, in test_the_same_profile_runs_on_docker) and its log's last lines."""
    user = "oona"
    s = deployment.login(user)
    deployment.start_server(s, user)  # lab: 256M
    with Kernel.with_token(deployment.url, user, deployment.token(s, user)) as kernel:  # as the OOM killer would
        server = "int(os.environ.get('JPY_PARENT_PID') or os.getppid())"
        kernel.execute(f"import os, signal; os.kill({server}, signal.SIGKILL)", timeout=30)
    deadline = time.monotonic() + 60
    while deployment.whoami_user(s, user)["servers"]:
        assert time.monotonic() < deadline, "the hub did not notice that the container ended"
        time.sleep(1)
    end = last_end(deployment, s)
    assert end["words"] == (
        "Your server was killed (exit code 137, SIGKILL): in a container, most often for memory (its limit is 256M)."
    ), end
    assert end["details"] == "Container: exited, exit code 137", end
    assert "ServerApp" in end["log"], end  # the server's own last words
    assert f"jupyter-{user}" not in containers()  # removed, as every stopped server's container
    deployment.screenshot(user, "/hub/home", "session-ended-container.png", wait_for=".campushub-last-end")
    deployment.start_server(s, user)  # a new start clears the story, and a stop by the user tells none
    deployment.stop_server(s, user)
    assert "campushub-last-end" not in deployment.get(s, "/hub/home").text


def what_runs_in(container: str) -> str:
    """For a failed assertion: the container's processes and its server's last lines (both go with it on stop)."""
    top = podman("top", container, "pid", "ppid", "args", check=False)
    log = subprocess.run(["podman", "logs", "--tail", "40", container], capture_output=True, text=True)
    return f"{top}\n{log.stdout}{log.stderr}"


def test_round_trip_files_survive_a_stopped_server(deployment):
    s = deployment.login("alice")
    deployment.start_server(s, "alice")
    token = deployment.token(s, "alice")
    assert deployment.run_code("alice", token, "1+1") == "2"
    # fast_start: the server forked a kernel parent as it started, and the kernel is its fork
    parent = deployment.run_code("alice", token, KERNELS_PARENT)
    assert parent == repr("campushub-kernels alice"), what_runs_in("jupyter-alice")
    # the server started with Python's garbage collector off (a cold start's imports); the kernels collect
    assert deployment.run_code("alice", token, "import gc; gc.isenabled()") == "True"
    # it listed only its own modules for its debugger: the kernel parent listed its own once
    assert deployment.run_code("alice", token, OWN_MODULES_ONLY) == "True"
    code = "open('/home/jovyan/work/notes.txt', 'w').write('kept'); import os; os.getcwd()"
    assert deployment.run_code("alice", token, code) == "'/home/jovyan/work'"
    assert "jupyter-alice" in containers()
    assert address_of("jupyter-alice") in USER_ADDRESSES  # never the hub's fixed address (issue 15)

    deployment.stop_server(s, "alice")
    assert "jupyter-alice" not in containers()  # removed on stop
    assert volume_of("alice") in podman("volume", "ls", "--format", "{{.Name}}").split()

    deployment.start_server(s, "alice")
    assert deployment.run_code("alice", token, "open('/home/jovyan/work/notes.txt').read()") == "'kept'"


def test_cgroup_limits_match_the_profile_and_oom_kills_only_the_kernel(deployment):
    s = deployment.login("bob")
    deployment.start_server(s, "bob")
    token = deployment.token(s, "bob")
    assert deployment.run_code("bob", token, CGROUP_LIMITS) == repr((MEMORY, 0.5))
    with Kernel.with_token(deployment.url, "bob", token) as kernel:
        assert kernel.execute("1+1")["result"] == "2"
        outcome = kernel.execute(f"x = bytearray({2 * MEMORY}); len(x)", timeout=120)
        assert outcome["died"], outcome
    # the server and the hub live on; a new kernel works
    assert requests.get(f"{deployment.url}/hub/health", timeout=10).status_code == 200
    assert deployment.run_code("bob", token, "2+2") == "4"
    deployment.stop_server(s, "bob")


def test_container_choices_are_bounded_and_enforced(deployment):
    s = deployment.login("kim")
    for choice, message in (
        ({"image": "docker.io/library/python:3"}, f"image: must be one of {LAB_IMAGE}"),
        ({"cpu": 2}, "cpu: must be from 0.25 to 1, not 2"),
        ({"memory": "4G"}, "memory: must be from 256M to 512M, not 4G"),
        ({"volumes": {"/": "/host"}}, "volumes: not a choice the profile 'pick' offers"),
    ):
        r = deployment.api(s, "POST", "users/kim/server", json={"profile": "pick", **choice})
        assert r.status_code == 400 and r.json()["message"].startswith(message), r.text
    assert "jupyter-kim" not in containers()
    deployment.start_server(s, "kim", profile="pick", cpu=1, memory="512M")
    assert deployment.run_code("kim", deployment.token(s, "kim"), CGROUP_LIMITS) == repr((512 * 2**20, 1.0))
    deployment.stop_server(s, "kim")


def test_users_get_separate_volumes_and_cannot_see_each_other(deployment):
    carol, dave = deployment.login("carol"), deployment.login("dave")
    for name, s in (("carol", carol), ("dave", dave)):
        deployment.start_server(s, name)
    carol_token, dave_token = deployment.token(carol, "carol"), deployment.token(dave, "dave")
    deployment.run_code("carol", carol_token, "open('/home/jovyan/work/carol.txt', 'w').write('mine')")
    assert deployment.run_code("dave", dave_token, "import os; os.listdir('/home/jovyan/work')") == "[]"
    mounts = json.loads(podman("inspect", "jupyter-carol", "jupyter-dave"))
    sources = [{m.get("Name") for m in c["Mounts"]} for c in mounts]
    assert sources == [{volume_of("carol")}, {volume_of("dave")}]
    for name, s in (("carol", carol), ("dave", dave)):
        deployment.stop_server(s, name)


def uid_1000_account() -> str:
    """The host account with uid 1000 (the image's jovyan), made for the test if there is none."""
    try:
        return pwd.getpwuid(1000).pw_name
    except KeyError:
        subprocess.run(["useradd", "--uid", "1000", "--no-create-home", "cht-uid1000"], check=True)
        return "cht-uid1000"


def test_each_users_container_runs_as_a_uid_nobody_else_has(deployment):
    """Users' containers ran as the image's uid 1000, every one of them and the host's account 1000 too, which
    read another user's server token from /proc/PID/environ (issue 20). Now each runs as a uid of its own
    (container.uid_base + the user's number, group users): neither that host account nor the other user's uid
    can read a user's server process, and the user's files in their volume are theirs."""
    ivy, jack = deployment.login("ivy"), deployment.login("jack")
    for name, s in (("ivy", ivy), ("jack", jack)):
        deployment.start_server(s, name)
    try:
        pids = {
            name: int(podman("inspect", "--format", "{{.State.Pid}}", f"jupyter-{name}")) for name in ("ivy", "jack")
        }
        uids = {name: os.stat(f"/proc/{pid}").st_uid for name, pid in pids.items()}
        assert uids["ivy"] != uids["jack"] and min(uids.values()) >= 2_000_000, uids
        token = deployment.token(ivy, "ivy")
        assert deployment.run_code("ivy", token, "import os; os.getuid(), os.getgid()") == f"({uids['ivy']}, 100)"
        deployment.run_code("ivy", token, "open('/home/jovyan/work/mine.txt', 'w').write('ivy')")
        volume = json.loads(podman("volume", "inspect", volume_of("ivy")))[0]
        assert os.stat(Path(volume["Mountpoint"]) / "mine.txt").st_uid == uids["ivy"]
        assert volume["Labels"].get("campushub.uid") == str(uids["ivy"])
        for reader in (f"--reuid={pwd.getpwnam(uid_1000_account()).pw_uid}", f"--reuid={uids['jack']}"):
            read = subprocess.run(
                ["setpriv", reader, "--regid=100", "--clear-groups", "cat", f"/proc/{pids['ivy']}/environ"],
                capture_output=True,
            )
            assert read.returncode != 0 and b"JUPYTERHUB_API_TOKEN" not in read.stdout, reader
        # and from jack's own container, ivy's processes are not even there
        seen = deployment.run_code(
            "jack",
            deployment.token(jack, "jack"),
            "import glob; [p for p in glob.glob('/proc/[0-9]*/environ') if b'USER=ivy' in open(p, 'rb').read()]",
        )
        assert seen == "[]", seen
    finally:
        for name, s in (("ivy", ivy), ("jack", jack)):
            deployment.stop_server(s, name)


def test_a_volume_made_before_each_user_had_a_uid_is_given_to_its_user(deployment):
    """A volume of campushub 0.2 (no uid label; files of the image's uid 1000) is given to the user at their next
    start, by a one-shot container that may only change owners: they can write their old files."""
    user = "lou"
    name = volume_of(user)
    podman("volume", "create", name)
    podman(
        "run", "--rm", "--user", "1000:1000", "-v", f"{name}:/v", "--entrypoint", "sh", LAB_IMAGE,
        "-c", "echo old > /v/old.txt && chmod 644 /v/old.txt",
    )  # fmt: skip
    s = deployment.login(user)
    deployment.start_server(s, user)
    try:
        token = deployment.token(s, user)
        assert deployment.run_code(user, token, "open('/home/jovyan/work/old.txt', 'a').write('new')") == "3"
        assert deployment.run_code(user, token, "open('/home/jovyan/work/old.txt').read()") == "'old\\nnew'"
    finally:
        deployment.stop_server(s, user)


SLURM_PORTS = (6817, 6818, 6819)  # slurmctld, slurmd, slurmdbd
PROBE = (
    "import socket\n"
    "def answers(port):\n"
    "    try:\n"
    "        socket.create_connection(('10.89.77.1', port), timeout=5).close()\n"
    "        return True\n"
    "    except OSError:\n"
    "        return False\n"
)


def test_users_containers_cannot_reach_the_clusters_control_ports(deployment):
    """scripts/firewall (the documented setup): the host's Slurm ports are closed to users' containers."""
    listeners = []
    for port in (*SLURM_PORTS, OPEN_PORT):  # stand-ins where Slurm's own daemons are not running
        listener = socket.socket()
        try:
            listener.bind(("0.0.0.0", port))
            listener.listen()
            listeners.append(listener)
        except OSError:
            listener.close()
    try:
        s = deployment.login("ivy")
        deployment.start_server(s, "ivy")
        ports = (*SLURM_PORTS, OPEN_PORT)
        result = deployment.run_code("ivy", deployment.token(s, "ivy"), PROBE + f"[answers(p) for p in {ports}]")
        assert result == repr([False, False, False, True]), result  # the last: the host does answer
        deployment.stop_server(s, "ivy")
    finally:
        for listener in listeners:
            listener.close()


def test_hostile_names_get_their_own_volumes_for_real(deployment):
    pair = ["a.b", "a-2eb"]  # the second is what a naive escape would make of the first
    for name in pair:
        s = deployment.login(name)
        deployment.start_server(s, name)
        deployment.run_code(name, deployment.token(s, name), f"open('/home/jovyan/work/owner', 'w').write({name!r})")
        deployment.stop_server(s, name)
    for name in pair:
        owner = podman("run", "--rm", "-v", f"{volume_of(name)}:/v", "--entrypoint", "cat", LAB_IMAGE, "/v/owner")
        assert owner == name


def test_restarting_the_hub_leaves_servers_running_and_reachable(deployment):
    s = deployment.login("erin")
    deployment.start_server(s, "erin")
    token = deployment.token(s, "erin")
    started = podman("inspect", "--format", "{{.State.StartedAt}}", "jupyter-erin")
    podman("restart", deployment.hub_container)
    deployment.wait_healthy()
    assert podman("inspect", "--format", "{{.State.StartedAt}}", "jupyter-erin") == started
    assert deployment.run_code("erin", token, "3*3") == "9"
    deployment.stop_server(s, "erin")


def test_compose_down_keeps_users_volumes(deployment):
    s = deployment.login("frank")
    deployment.start_server(s, "frank")
    deployment.run_code("frank", deployment.token(s, "frank"), "open('/home/jovyan/work/f.txt', 'w').write('f')")
    down = deployment.compose("down")
    # one line that says what stays, not the engine's errors about the build-only lab and the network in use
    assert "_lab_1" not in down.stderr and "associated containers" not in down.stderr, down.stderr
    assert "users' servers keep running" in down.stderr, down.stderr
    assert volume_of("frank") in podman("volume", "ls", "--format", "{{.Name}}").split()
    deployment.up()
    s = deployment.login("frank")
    # users' servers are not compose's: frank's ran on, and the new hub found it
    assert deployment.whoami_user(s, "frank")["servers"][""]["ready"]
    deployment.stop_server(s, "frank")
    deployment.start_server(s, "frank")  # a new container on the same volume
    assert deployment.run_code("frank", deployment.token(s, "frank"), "open('/home/jovyan/work/f.txt').read()") == "'f'"


def test_a_changed_site_file_takes_effect_with_up_after_the_check(deployment):
    """Issue 21: `scripts/compose up -d hub` said ok and changed nothing after an edit (the running hub kept the old
    settings), and `restart hub` skipped the check. Now `up` checks the new file, then recreates the hub with it;
    a file with a problem changes nothing."""
    site_file = deployment.folder / "campushub.yaml"
    original = site_file.read_text()
    hub_id = podman("inspect", "--format", "{{.Id}}", deployment.hub_container)
    try:
        site_file.write_text(yaml.safe_dump({**SITE, "branding": {"site_name": "Renamed Hub"}}))
        deployment.up()
        assert podman("inspect", "--format", "{{.Id}}", deployment.hub_container) != hub_id  # recreated
        assert "<title>Renamed Hub</title>" in deployment.get(deployment.login("gina"), "/hub/home").text
        renamed_id = podman("inspect", "--format", "{{.Id}}", deployment.hub_container)
        site_file.write_text(yaml.safe_dump({**SITE, "branding": {"site_nam": "typo"}}))
        refused = deployment.run("up", "-d", "hub")
        assert refused.returncode == 2 and "branding.site_nam: unknown key" in refused.stderr, refused.stderr
        assert podman("inspect", "--format", "{{.Id}}", deployment.hub_container) == renamed_id  # untouched
    finally:
        site_file.write_text(original)
        deployment.up()


def check(tmp_path, site, env=None):
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    return subprocess.run(
        [CAMPUSHUB, "check", "--config", str(tmp_path / "site.yaml")],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_check_names_a_missing_image_and_an_unreachable_socket(engine, tmp_path):
    site = {**SITE, "container": {"socket": engine, "network": "bridge", "image": LAB_IMAGE}}
    ok = check(tmp_path, site)
    assert ok.returncode == 0 and ok.stdout.strip() == "ok", ok.stderr
    site["container"]["image"] = "localhost/no-such-image:1"
    missing = check(tmp_path, site)
    assert missing.returncode == 2
    assert missing.stderr.startswith(
        f"container.image: localhost/no-such-image:1 (from the site file) is not in Podman 4.3.1 at {engine}"
        " (container.socket in the site file); campushub never pulls images: load it"
    ), missing.stderr
    site["container"] = {"socket": "unix:///run/nowhere.sock", "image": LAB_IMAGE}
    dead = check(tmp_path, site)
    assert dead.returncode == 2
    assert dead.stderr.startswith("container.socket: no container engine answers at unix:///run/nowhere.sock")


def test_check_compose_names_the_env_keys_and_the_engine_that_answered(engine, docker_engine, tmp_path):
    """The admin's pre-flight on the host: LAB_IMAGE left at .env.example's value, then Docker's socket for a
    hub that podman-compose runs on Podman; then all well."""
    site = tmp_path / "campushub.yaml"
    site.write_text(yaml.safe_dump({**SITE, "hub": {**SITE["hub"], "hub_connect_ip": "10.89.77.3"}}))
    env_file = tmp_path / ".env"

    def check_compose(by_hand=False, **env):
        env = {"CAMPUSHUB_SITE_FILE": str(site), "CAMPUSHUB_HUB_ADDRESS": "10.89.77.3", **env}
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        command = [CAMPUSHUB, "check", "--compose", str(REPO / "compose.yaml"), "--env-file", str(env_file)]
        return subprocess.run(command + ([] if by_hand else ["--engine", "podman"]), capture_output=True, text=True)

    result = check_compose(CONTAINER_SOCKET="/run/podman/podman.sock", LAB_IMAGE="localhost/campushub-lab:latest")
    assert result.returncode == 2
    assert (
        "container.image: localhost/campushub-lab:latest (set by DOCKER_JUPYTER_CONTAINER, which compose.yaml sets"
        " from LAB_IMAGE in .env) is not in Podman 4.3.1 at unix:///run/podman/podman.sock (CONTAINER_SOCKET in"
        f" {env_file}); campushub never pulls images: scripts/images builds localhost/campushub-lab-slim:latest"
        " (set LAB_IMAGE in .env to it)"
    ) in result.stderr, result.stderr
    result = check_compose(CONTAINER_SOCKET="/var/run/docker.sock", LAB_IMAGE=LAB_IMAGE)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"container.socket: /var/run/docker.sock (CONTAINER_SOCKET in {env_file}) is the socket of Docker 20.10"
    ), result.stderr
    assert "but compose runs the hub on Podman" in result.stderr
    result = check_compose(CONTAINER_SOCKET="/run/podman/podman.sock", LAB_IMAGE=LAB_IMAGE)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    # issue 21: run by hand (not knowing which engine compose runs on), it names the engine it reached
    result = check_compose(by_hand=True, CONTAINER_SOCKET="/var/run/docker.sock", LAB_IMAGE=LAB_IMAGE)
    assert "the hub will use Docker 20.10" in result.stderr and "set CONTAINER_SOCKET in" in result.stderr, result


def wait_for_log(compose: Compose, text: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while text not in (log := compose.logs()):
        assert time.monotonic() < deadline, f"{text!r} not in the hub's log:\n{log[-3000:]}"
        time.sleep(1)
    return log


@pytest.mark.parametrize("case", ["bad site file", "socket is a directory", "docker socket"])
def test_the_hub_container_says_what_is_wrong_and_restarts_slowly(engine, docker_engine, hub_root, case):
    """An admin who skips the pre-flight: the hub's own messages name their source, and a failing hub
    restarts twice a minute (it was 67 times in 10 s), so its message stays readable in `podman logs`."""
    site, env = SITE, {"CAMPUSHUB_HUB_ADDRESS": "10.89.77.3"}  # beside the deployment's hub, if that runs
    if case == "bad site file":
        site = {**SITE, "profiles": [{**SITE["profiles"][0], "memroy": "256M"}]}
        expected = ["profiles.0.memroy: unknown key; did you mean memory?"]
    elif case == "socket is a directory":
        wrong = hub_root / f"{case.replace(' ', '-')}-{os.getpid()}" / "podman.sock"
        env["CONTAINER_SOCKET"] = str(wrong)
        expected = [
            "container.socket: /var/run/docker.sock is a directory, not an engine's socket",
            "CONTAINER_SOCKET names no socket on the host",
            f"rmdir {wrong}",
        ]
    else:
        env["CONTAINER_SOCKET"] = "/var/run/docker.sock"
        expected = [
            "container.network: there is no network 'campushub' (set by DOCKER_NETWORK_NAME, which compose.yaml"
            " sets) in Docker 20.10",
            "if that is Podman (/run/podman/podman.sock), set CONTAINER_SOCKET in .env",
        ]
    project = f"{PROJECT}{case.split()[0]}"
    compose = Compose(
        hub_root / project,
        {**site, "hub": {**SITE["hub"], "hub_connect_ip": "10.89.77.3"}},
        project,
        env.pop("CONTAINER_SOCKET", engine),
        env=env,
    )
    try:
        started = compose.podman_compose("up", "-d", "hub")
        assert started.returncode == 0, started.stderr
        log = wait_for_log(compose, expected[0])
        for text in [*expected[1:], "campushub: waiting 30 s before exiting"]:
            assert text in log, log
        time.sleep(15)
        restarts = int(compose.podman("inspect", "--format", "{{.RestartCount}}", compose.hub_container))
        assert restarts <= 1, restarts
    finally:
        compose.podman_compose("down")
        if case == "socket is a directory":
            wrong.rmdir()


@pytest.mark.parametrize(
    "trusted, refused",
    [(["10.88.0.1/32"], False), (["10.88.0.7/32"], True), (["10.0.0.0/8"], True), (["192.0.2.1/32"], False)],
)
def test_check_refuses_a_trusted_proxy_where_users_containers_get_addresses(engine, tmp_path, trusted, refused):
    """Podman's default network hands users' containers 10.88.0.2 and up; its gateway is the host."""
    site = {
        **SITE,
        "auth": {**SITE["auth"], "trusted_proxies": trusted},
        "container": {"socket": engine, "network": "bridge", "image": LAB_IMAGE},
    }
    result = check(tmp_path, site)
    assert result.returncode == (2 if refused else 0), result.stderr
    if refused:
        assert result.stderr.startswith("auth.trusted_proxies.0: ") and "10.88.0.0/16" in result.stderr


@pytest.fixture(scope="module")
def docker_engine(engine):
    """Debian's Docker Engine beside Podman, with the slim lab image copied over from Podman."""
    socket = subprocess.run(
        [str(REPO / "scripts" / "engine"), "start", "docker"], capture_output=True, text=True, check=True
    ).stdout.strip()
    ids = [
        subprocess.run([engine, "image", "inspect", "--format", "{{.Id}}", LAB_IMAGE], capture_output=True, text=True)
        .stdout.strip()
        .removeprefix("sha256:")
        for engine in ("podman", "docker")
    ]
    if ids[0] != ids[1]:  # Docker lacks it, or has the one of an earlier build
        archive = subprocess.Popen(["podman", "save", "--format", "docker-archive", LAB_IMAGE], stdout=subprocess.PIPE)
        subprocess.run(["docker", "load"], stdin=archive.stdout, check=True, capture_output=True)
        assert archive.wait() == 0
    gateway = (
        subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True, check=True)
        .stdout.split()[3]
        .split("/")[0]
    )
    return socket, gateway


def test_the_same_profile_runs_on_docker(docker_engine, engine, hub_factory):
    """A hub on the host, a container profile on Docker's socket: limits, a volume that outlives the server.

    The hub's DOCKER_HOST points at Podman: only container.socket can send the container to Docker.
    """
    socket, gateway = docker_engine
    hub_port = free_port()
    site = {
        "hub": {"hub_ip": "0.0.0.0", "hub_port": hub_port},
        "auth": {"type": "remote_user", "required_groups": [GROUP]},
        "container": {
            "socket": socket,
            "image": LAB_IMAGE,
            "volume": VOLUME,
            "hub_connect_url": f"http://{gateway}:{hub_port}",
        },
        "profiles": [
            {"slug": "lab", "name": "JupyterLab", "backend": "container", "cpu": 0.5, "memory": "256M", "default": True}
        ],
        "culler": {"enabled": False},
        "spawner": {"poll_interval": 3},
    }
    hub = hub_factory(site, as_root=True, env={"DOCKER_HOST": engine})  # Docker's socket is root's
    user = f"gina{os.getpid()}"  # a name no earlier run has left a container for
    s = hub.login(user)
    hub.start_server(s, user)
    assert f"jupyter-{user}" in names_in("docker") and f"jupyter-{user}" not in names_in("podman")
    token = hub.token(s, user)
    assert hub.run_code(user, token, CGROUP_LIMITS) == repr((MEMORY, 0.5))
    hub.run_code(user, token, "open('/home/jovyan/work/d.txt', 'w').write('docker')")
    hub.stop_server(s, user)
    assert f"jupyter-{user}" not in names_in("docker")  # removed when the server stopped
    hub.start_server(s, user)
    assert hub.run_code(user, token, "open('/home/jovyan/work/d.txt').read()") == "'docker'"
    # memory exceeded: Docker flags the container OOMKilled (any of its processes), which the home page says
    with Kernel.with_token(hub.url, user, token) as kernel:
        assert kernel.execute(f"x = bytearray({2 * MEMORY})", timeout=120)["died"]
    with Kernel.with_token(hub.url, user, token) as kernel:
        server = "int(os.environ.get('JPY_PARENT_PID') or os.getppid())"
        kernel.execute(f"import os, signal; os.kill({server}, signal.SIGTERM)", timeout=30)
    deadline = time.monotonic() + 60
    while hub.whoami_user(s, user)["servers"]:
        assert time.monotonic() < deadline, "the hub did not notice that the container ended"
        time.sleep(1)
    end = last_end(hub, s)
    assert end["words"] == "Your server ran out of memory (its limit is 256M) and was stopped.", end
    assert end["details"].startswith("Container: OOMKilled, exit code "), end
    assert f"jupyter-{user}" not in names_in("docker")
    subprocess.run(["docker", "volume", "rm", "-f", volume_of(user)], capture_output=True)


def names_in(engine: str) -> list[str]:
    """The containers (running or not) that ``engine`` (docker or podman) lists."""
    listed = subprocess.run([engine, "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=True)
    return listed.stdout.split()


def test_the_compose_file_is_valid_for_debians_docker_compose(tmp_path):
    """Debian's docker-compose 1.29 reads compose.yaml as podman-compose does (only the file is checked here)."""
    require_root("installing docker-compose")
    site = tmp_path / "campushub.yaml"
    site.write_text(yaml.safe_dump(SITE))
    result = subprocess.run(
        ["docker-compose", "-f", str(REPO / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        env={**os.environ, "CAMPUSHUB_SITE_FILE": str(site)},
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["services"]["hub"]["ports"][0].startswith("127.0.0.1:")
    assert config["services"]["lab"]["entrypoint"] == ["true"]
    assert config["networks"]["campushub"]["name"] == "campushub"


@pytest.mark.parametrize("engine_name", ["podman", "docker"])
def test_users_containers_take_addresses_only_from_the_networks_user_range(
    engine, docker_engine, hub_factory, tmp_path, engine_name
):
    """Issue 15: a user's container took a fixed address (the front door's) that was free at the time. On a
    network labelled campushub.user-addresses the hub gives each container an address from that range only,
    on Podman 4.3 (whose CNI refuses a fixed address outside the network's ip_range) and on Docker alike;
    and `check` refuses a hub address where an unlabelled network hands out addresses."""
    socket = engine if engine_name == "podman" else docker_engine[0]
    prefix = "10.89.97" if engine_name == "podman" else "10.89.96"
    network = f"chaddr{os.getpid()}"
    pool = ipaddress.ip_network(f"{prefix}.128/25")
    make = [engine_name, "network", "create", "--subnet", f"{prefix}.0/24", "--gateway", f"{prefix}.1"]
    subprocess.run([*make, "--label", f"campushub.user-addresses={pool}", network], check=True, capture_output=True)
    hub_port = free_port()
    site = {
        "hub": {"hub_ip": "0.0.0.0", "hub_port": hub_port},
        "auth": {"type": "remote_user", "required_groups": [GROUP]},
        "container": {
            "socket": socket,
            "image": LAB_IMAGE,
            "volume": VOLUME,
            "network": network,
            "hub_connect_url": f"http://{prefix}.1:{hub_port}",
        },
        "profiles": [{"slug": "lab", "name": "JupyterLab", "backend": "container", "default": True}],
        "culler": {"enabled": False},
    }
    user = f"addr{engine_name}{os.getpid()}"
    try:
        hub = hub_factory(site, as_root=True, env={"DOCKER_HOST": engine})
        s = hub.login(user)
        hub.start_server(s, user)
        # the engine's own choice would be the first free address, .2: the hub's in compose.yaml
        assert address_of(f"jupyter-{user}", network, engine_name) == next(pool.hosts())
        assert hub.run_code(user, hub.token(s, user), "1+1") == "2"  # the hub and the server reach each other
        hub.stop_server(s, user)
    finally:
        subprocess.run([engine_name, "rm", "-f", f"jupyter-{user}"], capture_output=True)
        subprocess.run([engine_name, "network", "rm", network], capture_output=True)
        subprocess.run([engine_name, "volume", "rm", "-f", volume_of(user)], capture_output=True)
    subprocess.run([*make, network], check=True, capture_output=True)  # as an older compose.yaml made it
    try:
        site["hub"]["hub_connect_ip"] = f"{prefix}.2"
        result = check(tmp_path, site)
        assert result.returncode == 2
        assert result.stderr.startswith(
            f"hub.hub_connect_ip: {prefix}.2 is in {prefix}.0/24, where the engine gives users' containers any free"
        ), result.stderr
    finally:
        subprocess.run([engine_name, "network", "rm", network], capture_output=True)

"""`campushub doctor` on real deployments: each problem it names is made for real, then fixed as it says."""

import datetime
import os
import re
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml

from harness import CAMPUSHUB, EMBEDDED, GROUP, LAB_IMAGE, free_port, podman, remove_volumes, require_root

HEALTHY = "ok: nothing to fix"


def doctor(hub, *args) -> tuple[int, list[str]]:
    """``campushub doctor`` on ``hub``'s site: its exit code and the lines it printed."""
    command = [CAMPUSHUB, "doctor", "--config", str(hub.config), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=hub.env)
    assert not result.stderr, result.stderr
    return result.returncode, result.stdout.splitlines()


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() != b""  # a zombie has no command line
    except OSError:
        return False


def stop(pid: int):
    """SIGTERM a process this test made, and wait for it to go."""
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)


def sign_in(hub, user: str) -> requests.Session:
    session, r = hub.password_login(user, (hub.state / "shared_password").read_text().strip())
    assert r.status_code == 302, r.text[:300]
    return session


def proxy_api(hub) -> tuple[str, dict]:
    token = (hub.state / "proxy_auth_token").read_text().strip()
    return f"http://127.0.0.1:{hub.site['hub']['proxy_api_port']}/api/routes", {"Authorization": f"token {token}"}


def test_a_healthy_deployment_has_nothing_to_fix(hub_factory):
    hub = hub_factory(EMBEDDED)
    assert doctor(hub) == (0, [HEALTHY])
    ada = sign_in(hub, "ada")
    hub.start_server(ada, "ada")  # a server with its route, and its processes in ada's folder
    assert doctor(hub) == (0, [HEALTHY])


def test_a_proxy_left_without_its_hub(hub_factory):
    hub = hub_factory(EMBEDDED)
    proxy = int((hub.state / "proxy.pid").read_text())
    hub.process.kill()  # `campushub up` killed first: nothing is left to clean up after the hub
    hub.process.wait()
    os.kill(int((hub.state / "hub.pid").read_text()), signal.SIGKILL)
    down = f"hub: nothing answers {hub.url}/hub/health; start it with `campushub up` (its output says why it stopped)"
    try:
        deadline = time.monotonic() + 30
        while (found := doctor(hub))[1][:1] != [down]:  # until the killed hub is gone
            assert time.monotonic() < deadline, found
            time.sleep(0.5)
        assert found == (
            1,
            [down, f"proxy: configurable-http-proxy (pid {proxy}) runs without its hub; stop it: kill {proxy}"],
        )
    finally:
        stop(proxy)
    assert doctor(hub) == (1, [down])


def test_a_route_for_no_server(hub_factory):
    hub = hub_factory(EMBEDDED)
    api, headers = proxy_api(hub)
    r = requests.post(f"{api}/user/ghost", json={"target": "http://127.0.0.1:9", "user": "ghost"}, headers=headers)
    assert r.status_code == 201, r.text
    code, lines = doctor(hub)
    assert (code, lines) == (
        1,
        [
            "proxy: route /user/ghost (to http://127.0.0.1:9) is for no server the hub runs; users may reach a stale"
            f" server there. Remove it: curl -X DELETE -H 'Authorization: token ...' {api}/user/ghost (the token is"
            " in state_dir/proxy_auth_token), or restart the hub"
        ],
    )
    assert requests.delete(f"{api}/user/ghost", headers=headers).status_code == 204  # as it says
    assert doctor(hub) == (0, [HEALTHY])


def test_a_server_without_a_route(hub_factory):
    hub = hub_factory(EMBEDDED)
    ada = sign_in(hub, "ada")
    hub.start_server(ada, "ada")
    api, headers = proxy_api(hub)
    assert requests.delete(f"{api}/user/ada/", headers=headers).status_code == 204  # as a restarted proxy would
    assert doctor(hub) == (0, [HEALTHY]), "a server that started less than its timeouts ago may have no route yet"
    with sqlite3.connect(hub.state / "jupyterhub.sqlite") as db:  # as if it started long ago
        db.execute("UPDATE spawners SET started = '2026-01-01 00:00:00.000000' WHERE server_id IS NOT NULL")
    assert doctor(hub) == (
        1,
        [
            "proxy: ada's server runs in the hub's database but the proxy has no route to it (users get an error"
            " page); restart the hub (`campushub up` adds every route again), or stop the server"
        ],
    )
    hub.stop()
    hub.start()
    assert doctor(hub) == (0, [HEALTHY])


def test_the_proxy_api_moved_without_a_restart(hub_factory):
    hub = hub_factory(EMBEDDED)
    site = yaml.safe_load(hub.config.read_text())
    site["hub"]["proxy_api_port"] = port = free_port()  # the site file changed, the hub not restarted
    hub.config.write_text(yaml.safe_dump(site))
    assert doctor(hub) == (
        1,
        [
            f"hub.proxy_api_port: the proxy's API does not answer at http://127.0.0.1:{port}/api/routes; restart the"
            " hub (`campushub up`)"
        ],
    )
    hub.stop()
    hub.site = site
    hub.start()
    assert doctor(hub) == (0, [HEALTHY])


def test_a_process_left_behind_by_a_user(hub_factory):
    hub = hub_factory(EMBEDDED)
    ada = sign_in(hub, "ada")
    hub.start_server(ada, "ada")
    token = hub.token(ada, "ada")
    code = "import subprocess; subprocess.Popen(['sleep', '600'], start_new_session=True).pid"
    pid = int(hub.run_code("ada", token, code))
    try:
        hub.stop_server(ada, "ada")
        assert alive(pid), "the server's stop left its detached child: the problem to find"
        home = hub.state / "home" / "ada"
        assert doctor(hub) == (
            1,
            [f"processes: pid {pid} runs in ada's folder ({home}) but ada has no server; stop it: kill {pid}"],
        )
    finally:
        stop(pid)
    assert doctor(hub) == (0, [HEALTHY])


def make_certificate(folder: Path, days: float):
    """A self-signed certificate for the front door's default name and its users' names (``hub.localhost``,
    ``*.hub.localhost``) that expires ``days`` from now (in the past when negative)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub.localhost")])
    now = datetime.datetime.now(datetime.UTC)
    expiry = now + datetime.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now, expiry) - datetime.timedelta(days=90))
        .not_valid_after(expiry)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("hub.localhost"), x509.DNSName("*.hub.localhost")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert.not_valid_after_utc


def test_a_front_door_certificate_close_to_expiry(hub_factory, hub_root):
    require_root("a hub for the front door's single sign-on (servers as users' own accounts)")
    given = Path(tempfile.mkdtemp(prefix="certificate-", dir=hub_root))
    site = {
        "auth": {"type": "remote_user", "required_groups": [GROUP], "proxy_secret": {"env": "DOCTOR_PROXY_SECRET"}},
        "front_door": {
            "certificate": {"source": "file", "cert": str(given / "cert.pem"), "key": str(given / "key.pem")},
            "https_port": free_port(),
            "http_port": free_port(),
            "oidc": {
                "metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
                "client_id": "campushub",
                "client_secret": {"env": "DOCTOR_CLIENT_SECRET"},
            },
        },
        "profiles": [{"slug": "local", "name": "JupyterLab", "backend": "local", "system_users": True}],
        "culler": {"enabled": False},
    }
    env = {"DOCTOR_PROXY_SECRET": "doctor-front-door-secret-0123456789", "DOCTOR_CLIENT_SECRET": "client-secret"}
    make_certificate(given, 400)
    hub = hub_factory(site, env=env)
    door = hub.folder / "frontdoor"
    pem = door / "tls" / "server.pem"

    def renew(days: float) -> datetime.datetime:
        expiry = make_certificate(given, days)
        command = [CAMPUSHUB, "frontdoor", "--config", str(hub.config), "--out", str(door)]
        subprocess.run(command, check=True, capture_output=True, env=hub.env)
        return expiry

    renew(400)
    assert doctor(hub, "--frontdoor", str(door)) == (0, [HEALTHY])
    advice = "; renew it (a new file: then `campushub frontdoor`, and reload Apache)"
    expiry = renew(10.5)
    assert doctor(hub, "--frontdoor", str(door)) == (
        1,
        [f"front_door.certificate: {pem} expires in 10 days ({expiry:%Y-%m-%d}){advice}"],
    )
    expiry = renew(-2)
    assert doctor(hub, "--frontdoor", str(door)) == (
        1,
        [f"front_door.certificate: {pem} expired on {expiry:%Y-%m-%d}{advice}"],
    )


@pytest.fixture
def small_disk(tmpfs):
    """A 64 MiB tmpfs: enough for `campushub up` (16 MiB), less than doctor wants free (1 GiB)."""
    return tmpfs("64m")


def test_little_free_space_for_the_state(small_disk, hub_factory):
    state = small_disk / "state"
    hub = hub_factory({**EMBEDDED, "hub": {"state_dir": str(state)}})
    code, lines = doctor(hub)
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("hub.state_dir: only ") and lines[0].endswith(
        f" MiB free for {state}; the hub stops writing its database when it is full: free some space or move"
        " state_dir to a larger disk"
    )


@pytest.fixture
def podman_service(hub_root):
    """A Podman API socket of this test's own, and its process."""
    require_root("a rootful Podman service")
    socket = Path(tempfile.mkdtemp(prefix="engine-", dir=hub_root)) / "podman.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{socket}"])
    deadline = time.monotonic() + 30
    while not socket.exists():
        assert service.poll() is None and time.monotonic() < deadline, "podman system service did not start"
        time.sleep(0.2)
    yield f"unix://{socket}", service
    if service.poll() is None:
        service.terminate()
        service.wait(30)


def test_a_deployment_whose_services_are_down(podman_service, hub_factory, hub_root):
    """After a reboot nothing came back: the hub, its database, the container engine and slurmctld."""
    socket, service = podman_service
    slurm = Path(tempfile.mkdtemp(prefix="slurm-", dir=hub_root))
    (slurm / "slurm.conf").write_text(  # a controller nothing runs
        f"ClusterName=doctor\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort={free_port()}\n"
        "NodeName=localhost NodeAddr=127.0.0.1 CPUs=1\nPartitionName=debug Nodes=localhost Default=YES\n"
    )
    db = f"postgresql://campushub@127.0.0.1:{free_port()}/hub"
    site = {
        "hub": {"db_url": db},
        "auth": {"type": "remote_user", "required_groups": [GROUP], "proxy_secret": {"env": "DOCTOR_PROXY_SECRET"}},
        "container": {"socket": socket, "image": "localhost/campushub-lab-slim:latest"},
        "slurm": {"conf": str(slurm / "slurm.conf")},
        "profiles": [
            {"slug": "lab", "name": "Container", "backend": "container", "default": True},
            {"slug": "batch", "name": "Slurm", "backend": "slurm"},
        ],
        "culler": {"enabled": False},
    }
    hub = hub_factory(site, env={"DOCTOR_PROXY_SECRET": "doctor-front-door-secret-0123456789"}, start=False)
    down = f"hub: nothing answers {hub.url}/hub/health; start it with `campushub up` (its output says why it stopped)"
    shown = db.replace("postgresql://", "postgresql+psycopg://")
    database = f'hub.db_url: cannot read {shown}: connection failed: connection to server at "127.0.0.1", port'
    slurmctld = "slurm: slurmctld does not answer (Slurmctld(primary) at "
    engine = f"container.socket: the engine at {socket} does not answer (DockerException); start it"

    code, lines = doctor(hub)  # the engine runs
    assert code == 1 and len(lines) == 3, lines
    assert lines[0] == down
    assert lines[1].startswith(database) and lines[1].endswith(
        "Connection refused; start the database, or correct hub.db_url and hub.db_password"
    )
    assert lines[2].startswith(slurmctld) and lines[2].endswith(" is DOWN); start it")
    previous = lines

    service.terminate()
    service.wait(30)
    code, lines = doctor(hub)
    assert code == 1 and len(lines) == 4 and lines[2] == engine and lines[3].startswith(slurmctld), lines
    assert lines[:2] == previous[:2]


def test_a_container_the_hub_does_not_know(engine, hub_factory):
    """A user's server container left running while the hub's database says the server stopped (a hub restored
    from a backup, a container started by hand): the user's start is refused in words (DockerSpawner's removal of it
    failed in a 500) and leaves it running; doctor names it and says how to remove it."""
    port = free_port()
    site = {
        "hub": {"hub_ip": "0.0.0.0", "hub_port": port},
        "auth": {"type": "remote_user", "required_groups": [GROUP], "proxy_secret": {"env": "DOCTOR_PROXY_SECRET"}},
        "container": {
            "socket": engine,
            "image": LAB_IMAGE,
            "volume": f"chdoctor{os.getpid()}-user-{{username}}",
            "hub_connect_url": f"http://host.containers.internal:{port}",
        },
        "profiles": [{"slug": "lab", "name": "Container", "backend": "container", "default": True}],
        "culler": {"enabled": False},
    }
    secret = "doctor-front-door-secret-0123456789"
    hub = hub_factory(site, env={"DOCTOR_PROXY_SECRET": secret})
    user = f"chdoc{os.getpid() % 100000}"  # a name no earlier run has left a container for
    name = f"jupyter-{user}"
    s = hub.session(user, GROUP, extra={"X-Campushub-Proxy-Secret": secret})
    assert hub.get(s, "/hub/home").status_code == 200
    try:
        hub.start_server(s, user)  # its own container, which the hub knows
        assert doctor(hub) == (0, [HEALTHY])
        hub.stop_server(s, user)
        podman("run", "-d", "--name", name, LAB_IMAGE, "sleep", "600")  # as a hub that lost track would leave it
        r = hub.api(s, "POST", f"users/{user}/server", json={})
        assert r.status_code == 409 and f"A container named {name} already runs" in r.json()["message"], r.text
        assert podman("container", "inspect", "--format", "{{.State.Running}}", name) == "true"
        assert doctor(hub) == (
            1,
            [
                f"containers: {name} (running) is {user}'s server container, but the hub runs no such server;"
                f" remove it (their volume stays): podman rm -f {name}"
            ],
        )
        podman("rm", "-f", name)  # as it says
        assert doctor(hub) == (0, [HEALTHY])
        hub.start_server(s, user)  # and the user's next start is the usual one
        hub.stop_server(s, user)
    finally:
        podman("rm", "-f", name, check=False)
        remove_volumes(f"chdoctor{os.getpid()}-")


SLURM_USER = "chdoctor-slurm"


@pytest.fixture
def slurm_conf(slurm_cluster, accounts):
    accounts(SLURM_USER)
    return slurm_cluster


def test_a_slurm_job_no_server_owns(slurm_conf, hub_factory):
    """A job named as batchspawner names server jobs, of one of the hub's users, that no server owns (its hub
    was restored from a backup, or died before it saved the job's id): it holds a node for nobody."""
    site = {
        "auth": {"type": "remote_user", "required_groups": [GROUP], "proxy_secret": {"env": "DOCTOR_PROXY_SECRET"}},
        "slurm": {"conf": slurm_conf},
        "profiles": [{"slug": "batch", "name": "Slurm", "backend": "slurm", "cpu": 1, "memory": "256M"}],
        "culler": {"enabled": False},
    }
    secret = "doctor-front-door-secret-0123456789"
    hub = hub_factory(site, env={"DOCTOR_PROXY_SECRET": secret})
    s = hub.session(SLURM_USER, GROUP, extra={"X-Campushub-Proxy-Secret": secret})
    assert hub.get(s, "/hub/home").status_code == 200  # the hub knows the user now
    env = {**os.environ, "SLURM_CONF": slurm_conf}
    submit = ["sbatch", "--parsable", f"--uid={SLURM_USER}", f"--gid={SLURM_USER}", "--job-name=spawner-jupyterhub"]
    submit += ["--mem=50M", "--output=/dev/null", "--wrap", "sleep 600"]
    job = subprocess.run(submit, env=env, capture_output=True, text=True, check=True).stdout.strip()
    try:
        code, lines = doctor(hub)
        assert code == 1 and len(lines) == 1, lines
        assert re.fullmatch(
            rf"slurm: job {job} \({SLURM_USER}, (PENDING|RUNNING)\) is a server job \(spawner-jupyterhub\) that no"
            rf" server of the hub owns; cancel it: scancel {job}",
            lines[0],
        ), lines
        subprocess.run(["scancel", job], env=env, check=True)  # as it says
        deadline = time.monotonic() + 30
        while (found := doctor(hub)) != (0, [HEALTHY]):
            assert time.monotonic() < deadline, found
            time.sleep(0.5)
    finally:
        subprocess.run(["scancel", job], env=env, capture_output=True)

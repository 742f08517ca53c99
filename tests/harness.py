"""The test harness (also used by the benchmarks): real hubs started with ``campushub up``, and clients for them.

Not shipped with campushub: it lives beside the tests and needs the ``test`` extras.
"""

from __future__ import annotations

import html
import json
import os
import pwd
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import websocket
import yaml
from requests.adapters import HTTPAdapter

CAMPUSHUB = str(Path(sys.executable).parent / "campushub")
REPO = Path(__file__).parent.parent
#: as root, hubs run as this unprivileged account (campushub up --as-user), as scripts/up does
HUB_ACCOUNT = "campushub-test"
#: the group the test sites require (the seed's)
GROUP = "SAM-SSLVPNSAMUsers"
#: the front door's secret in tests: sites read it with proxy_secret: {env: SECRET_ENV}
PROXY_SECRET = "test-front-door-secret-0123456789"
SECRET_ENV = "CAMPUSHUB_TEST_PROXY_SECRET"


IN_CI = os.environ.get("CI") == "true"
LAB_IMAGE = "localhost/campushub-lab-slim:latest"
EXTERNAL = "https://sso.example.edu"  # redirect targets in tests: never contacted
#: Debian's Chromium, headless, kept off this machine's closed network
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: screenshots the tests keep
ARTIFACTS = REPO / "test-artifacts"
#: the front door's name in tests (RFC 2606 keeps .test off the internet); users' servers are at NAME.hub.test
TEST_DOMAIN = "hub.test"
#: how Chromium finds the front door and every user's server under it
RESOLVE_TEST_DOMAIN = f"--host-resolver-rules=MAP {TEST_DOMAIN} 127.0.0.1, MAP *.{TEST_DOMAIN} 127.0.0.1"
#: Chromium's flags for the front door's tests
DOOR_CHROMIUM_FLAGS = [*CHROMIUM_FLAGS, RESOLVE_TEST_DOMAIN]


def resolve_test_domain():
    """Make this process resolve ``hub.test`` and ``*.hub.test`` to loopback, as :data:`RESOLVE_TEST_DOMAIN` makes
    Chromium: a fake resolver, because no DNS server here serves the tests' names and ``/etc/hosts`` takes no
    wildcards. Only the tests' own clients use it; Apache and the hub never resolve these names."""
    if getattr(socket.getaddrinfo, "test_domain", False):
        return
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and (name == TEST_DOMAIN or name.endswith("." + TEST_DOMAIN)):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    getaddrinfo.test_domain = True
    socket.getaddrinfo = getaddrinfo


def require_root(what: str):
    """Skip ``what`` without root on a developer's machine; in CI (which runs as root) fail instead."""
    import pytest

    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail(f"CI runs as root, and {what} needs it")
        pytest.skip(f"{what} needs root")


def base_site(**sections) -> dict:
    """A remote_user site (with the front door's secret) whose one open local profile runs servers
    as the users' own accounts, and no culler; ``sections`` replace parts."""
    site = {
        "auth": {
            "type": "remote_user",
            "required_groups": [GROUP],
            "missing_user_redirect": f"{EXTERNAL}/no-user",
            "missing_group_redirect": f"{EXTERNAL}/no-group",
            "admin_groups": ["crc-admins"],
            "proxy_secret": {"env": SECRET_ENV},
        },
        "profiles": [
            {"slug": "local", "name": "On the hub host", "backend": "local", "system_users": True, "default": True}
        ],
        "culler": {"enabled": False},
    }
    site.update(sections)
    return site


#: the embedded default: a shared password, servers as the hub's own account
EMBEDDED = {
    "auth": {"type": "shared_password"},
    "profiles": [{"slug": "local", "name": "JupyterLab", "backend": "local", "default": True}],
    "culler": {"enabled": False},
}


def ensure_account(name: str = HUB_ACCOUNT):
    """Create the unprivileged system account hubs run as, when running as root."""
    if os.geteuid() == 0 and subprocess.run(["id", name], capture_output=True).returncode:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
        )


def ensure_user(name: str):
    """Create a user's system account with a home folder (for system_users and Slurm profiles)."""
    if subprocess.run(["id", name], capture_output=True).returncode:
        subprocess.run(["useradd", "--create-home", name], check=True)


def kill_processes_of(user: str):
    """SIGKILL the processes running as ``user`` (a test account), one by one by their PID."""
    uid = pwd.getpwnam(user).pw_uid
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                os.kill(int(pid), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            continue


def needs_root(site: dict) -> bool:
    """Whether a hub for ``site`` must run as root: servers as users' own accounts, or containers."""
    return any(p.get("system_users") or p.get("backend") in ("slurm", "container") for p in site["profiles"])


def free_port(privileged: bool = False) -> int:
    """A free loopback port; ``privileged``: one below 1024 (which only root may take), as guarded hubs use."""
    return free_ports(1, privileged)[0]


def free_ports(count: int, privileged: bool = False) -> list[int]:
    """``count`` different free loopback ports (below 1024 when ``privileged``)."""
    candidates = random.sample(range(600, 1024), 424) if privileged else [0] * (count * 4)
    found = []
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in found:
            found.append(port)
        if len(found) == count:
            return found
    raise AssertionError(f"not {count} free ports" + (" below 1024" if privileged else ""))


def guarded(site: dict) -> bool:
    """Whether campushub guards ``site``'s ports (users' code on the hub's host behind single sign-on): its hub then
    listens below 1024."""
    from campushub.ports import guarded as guarded_profiles
    from campushub.site import Site

    return bool(guarded_profiles(Site.model_validate(site)))


def account_environment(account: str | None) -> dict:
    """What a login would give ``account`` (HOME, XDG_RUNTIME_DIR), as its rootless Podman needs."""
    if not account:
        return {}
    pw = pwd.getpwnam(account)
    return {"HOME": pw.pw_dir, "USER": account, "XDG_RUNTIME_DIR": f"/run/user/{pw.pw_uid}"}


def as_account(account: str | None) -> list[str]:
    """The command prefix that runs a program as ``account`` (nothing for root)."""
    if not account:
        return []
    pw = pwd.getpwnam(account)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups"]


def podman(*args, check=True, account: str | None = None) -> str:
    """``podman``: root's, or ``account``'s rootless one."""
    return subprocess.run(
        as_account(account) + ["podman", *args],
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, **account_environment(account)},
    ).stdout.strip()


def remove_volumes(prefix: str, account: str | None = None):
    """Remove the engine's volumes whose names start with ``prefix`` (never touch other runs' volumes)."""
    for volume in podman("volume", "ls", "--format", "{{.Name}}", account=account).split():
        if volume.startswith(prefix):
            podman("volume", "rm", "-f", volume, check=False, account=account)


class SourceAddress(HTTPAdapter):
    """Connect from a chosen loopback address (127.0.0.2 plays an untrusted host)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class HubClient:
    """Clients for a running hub at ``url`` with the site ``site``: SSO sessions, API calls, servers, kernels.

    Sessions send what the site's front door would: its user and groups headers, and the proxy
    secret when the site reads it from :data:`SECRET_ENV`.
    """

    def __init__(self, url: str, site: dict):
        self.url = url
        auth = site.get("auth", {})
        self.user_header = auth.get("user_header", "Cn")
        self.groups_header = auth.get("groups_header", "isMemberOf")
        secret = auth.get("proxy_secret") or {}
        self.secret_header = secret.get("header", "X-Campushub-Proxy-Secret")
        self.secret = PROXY_SECRET if secret.get("env") == SECRET_ENV else None

    def tail(self) -> str:
        """The hub's recent log, for failure messages."""
        return ""

    def session(
        self,
        user: str | None = None,
        groups: str | None = None,
        source: str | None = None,
        extra: dict | None = None,
        secret: bool = True,
    ) -> requests.Session:
        """A client that sends what the SSO proxy sends (user, groups, the secret) on every request."""
        s = requests.Session()
        if source:
            s.mount("http://", SourceAddress(source))
        if user is not None:
            s.headers[self.user_header] = user
        if groups is not None:
            s.headers[self.groups_header] = groups
        if secret and self.secret:
            s.headers[self.secret_header] = self.secret
        s.headers.update(extra or {})
        return s

    def screenshot(self, user: str, path: str, name: str, groups: str = GROUP, wait_for: str = "body") -> None:
        """A Chromium screenshot of the hub's ``path`` as ``user`` sees it, kept as ``ARTIFACTS/name``."""
        from playwright.sync_api import sync_playwright

        headers = {self.user_header: user, self.groups_header: groups}
        if self.secret:
            headers[self.secret_header] = self.secret
        ARTIFACTS.mkdir(exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
            try:
                page = browser.new_context(extra_http_headers=headers).new_page()
                page.goto(urljoin(self.url, path))
                page.locator(wait_for).first.wait_for(timeout=30_000)
                page.screenshot(path=str(ARTIFACTS / name), full_page=True)
            finally:
                browser.close()

    @staticmethod
    def xsrf(session: requests.Session) -> dict:
        """The header that carries the hub's XSRF token, for cookie-authenticated POSTs and API calls."""
        return {"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/") or ""}

    def post_form(self, session: requests.Session, path: str, data: dict) -> requests.Response:
        """POST a hub form (the spawn page) as a browser would; redirects are not followed."""
        return session.post(
            urljoin(self.url, path), data=data, headers=self.xsrf(session), allow_redirects=False, timeout=30
        )

    def get(self, session: requests.Session, path: str, **kwargs) -> requests.Response:
        """GET, following redirects only while they stay on this hub; the last response is returned."""
        url = urljoin(self.url, path)
        for _ in range(10):
            r = session.get(url, allow_redirects=False, timeout=30, **kwargs)
            if r.status_code not in (301, 302, 303, 307) or "Location" not in r.headers:
                return r
            url = urljoin(url, r.headers["Location"])
            if not url.startswith(self.url):
                return r
        raise AssertionError(f"redirect loop at {url}")

    def login(self, user: str, groups: str = GROUP, **kwargs) -> requests.Session:
        s = self.session(user, groups, **kwargs)
        r = self.get(s, "/hub/home")
        assert r.status_code == 200, (r.status_code, r.headers.get("Location"), r.text[:500])
        return s

    def password_login(self, user: str, password: str) -> tuple[requests.Session, requests.Response]:
        """Sign in at the shared-password form; the session, and the form's answer (302 when accepted)."""
        s = self.session()
        self.get(s, "/hub/login")
        r = s.post(
            f"{self.url}/hub/login",
            allow_redirects=False,
            timeout=30,
            data={"username": user, "password": password, "_xsrf": s.cookies.get("_xsrf", path="/hub/")},
        )
        return s, r

    def api(self, session: requests.Session, method: str, path: str, **kwargs) -> requests.Response:
        """A hub API call authenticated by ``session``'s cookie, with its XSRF token."""
        kwargs.setdefault("timeout", 30)
        return session.request(method, urljoin(self.url, "/hub/api/" + path), headers=self.xsrf(session), **kwargs)

    def whoami(self, session: requests.Session) -> dict:
        r = self.api(session, "GET", "user")
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def token(self, session: requests.Session, user: str) -> str:
        r = self.api(session, "POST", f"users/{user}/tokens", json={"note": "tests", "expires_in": 3600})
        assert r.status_code in (200, 201), (r.status_code, r.text)
        return r.json()["token"]

    def start_server(self, session: requests.Session, user: str, timeout: float = 180, **options) -> dict:
        r = self.api(session, "POST", f"users/{user}/server", json=options)
        assert r.status_code in (201, 202), (r.status_code, r.text)
        return self.wait_ready(session, user, timeout)

    def wait_ready(self, session: requests.Session, user: str, timeout: float = 180) -> dict:
        """Follow the hub's progress events for ``user``'s starting server until it is ready (no polling)."""
        path = f"users/{user}/server/progress"
        with self.api(session, "GET", path, stream=True, timeout=timeout) as events:
            for line in events.iter_lines(decode_unicode=True):
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("failed"):
                    raise AssertionError(f"{user}'s server failed to start: {event.get('message')}\n{self.tail()}")
                if event.get("ready"):
                    break
        server = self.whoami_user(session, user)["servers"].get("")
        if not (server and server["ready"]):
            raise AssertionError(f"{user}'s server is not ready after its progress events: {server}\n{self.tail()}")
        return server

    def whoami_user(self, session: requests.Session, user: str) -> dict:
        r = self.api(session, "GET", f"users/{user}")
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def stop_server(self, session: requests.Session, user: str):
        r = self.api(session, "DELETE", f"users/{user}/server")
        assert r.status_code in (202, 204), (r.status_code, r.text)
        deadline = time.monotonic() + 60
        while self.whoami_user(session, user)["servers"].get(""):
            assert time.monotonic() < deadline, "server did not stop"
            time.sleep(0.5)

    def run_code(self, user: str, token: str, code: str, timeout: float = 120) -> str:
        """Start a kernel on ``user``'s server through the proxy, run ``code``, return its text result."""
        return run_in_kernel(self.url, user, token, code, timeout)


class Hub(HubClient):
    """One ``campushub up`` process on free loopback ports, with its own site file and state."""

    def __init__(self, folder: Path, site: dict, env: dict | None = None, as_root: bool | None = None):
        self.folder = folder
        as_root = needs_root(site) if as_root is None else as_root
        self.as_user = HUB_ACCOUNT if os.geteuid() == 0 and not as_root else None
        folder.mkdir(parents=True, exist_ok=True)
        self.port, hub_port, api_port = free_ports(3, privileged=guarded(site))
        super().__init__(f"http://127.0.0.1:{self.port}", site)
        env = {SECRET_ENV: PROXY_SECRET, **(env or {})}
        hub = {
            "bind_url": f"http://127.0.0.1:{self.port}",
            "hub_port": hub_port,
            "proxy_api_port": api_port,
            "state_dir": "state",
        }
        hub.update(site.get("hub", {}))
        self.site = {**site, "hub": hub}
        self.config = folder / "campushub.yaml"
        self.config.write_text(yaml.safe_dump(self.site))
        self.env = {**os.environ, **(env or {})}
        self.log = folder / "hub.log"
        self.process = None

    @property
    def state(self) -> Path:
        return self.folder / "state"

    def start(self, timeout: float = 120):
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "a") as log:
            command = [CAMPUSHUB, "up", "--config", str(self.config)]
            if self.as_user:
                command += ["--as-user", self.as_user]
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while "campushub: ready at" not in self.log.read_text()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"hub did not become ready:\n{self.tail()}")
            time.sleep(0.2)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text().splitlines()[-lines:])


class Compose(HubClient):
    """A compose deployment of this repository's compose.yaml under its own project name, driven as the docs
    say: settings in a ``.env`` file, ``scripts/compose`` (which checks before ``up`` and waits for health).

    ``account``: the unprivileged account whose rootless Podman runs it (``socket`` is then that account's).
    """

    def __init__(
        self,
        folder: Path,
        site: dict,
        project: str,
        socket: str,
        files=("compose.yaml",),
        env: dict | None = None,
        account: str | None = None,
    ):
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}", site)
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "campushub.yaml").write_text(yaml.safe_dump(site))
        self.project = project
        self.account = account
        self.files = [arg for name in files for arg in ("-f", str(REPO / name))]
        self.env_file = folder / ".env"
        variables = {
            "CAMPUSHUB_PORT": str(self.port),
            "CAMPUSHUB_SITE_FILE": str(folder / "campushub.yaml"),
            "LAB_IMAGE": LAB_IMAGE,
            "CONTAINER_SOCKET": socket.removeprefix("unix://"),
            **(env or {}),
        }
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in variables.items()))
        self.env = {**os.environ, "COMPOSE_PROJECT_NAME": project, **account_environment(account)}

    def run(self, *args) -> subprocess.CompletedProcess:
        """``scripts/compose`` with this deployment's files and ``.env`` (as ``account``, if any)."""
        command = [str(REPO / "scripts" / "compose"), "--env-file", str(self.env_file), *self.files, *args]
        return subprocess.run(as_account(self.account) + command, env=self.env, capture_output=True, text=True)

    def compose(self, *args):
        result = self.run(*args)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result

    def podman_compose(self, *args) -> subprocess.CompletedProcess:
        """podman-compose itself, as an admin who skips scripts/compose runs it: no check before ``up``."""
        command = [str(Path(sys.executable).parent / "podman-compose"), "--env-file", str(self.env_file), *self.files]
        return subprocess.run(
            as_account(self.account) + command + list(args), env=self.env, capture_output=True, text=True
        )

    def podman(self, *args, check=True) -> str:
        """``podman`` of the engine this deployment runs on."""
        return podman(*args, check=check, account=self.account)

    @property
    def hub_container(self) -> str:
        return f"{self.project}_hub_1"

    def wait_healthy(self, timeout: float = 180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/hub/health", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the hub did not answer within {timeout} s:\n{self.tail()}")

    def up(self, *services):
        """``scripts/compose up -d``, as the docs say; what it printed is kept in ``started``."""
        self.started = self.compose("up", "-d", *(services or ["hub"]))
        self.wait_healthy()

    def logs(self, *args) -> str:
        """The hub container's output: ``podman logs`` gives its stderr on its own stderr."""
        command = as_account(self.account) + ["podman", "logs", *args, self.hub_container]
        env = {**os.environ, **account_environment(self.account)}
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env).stdout

    def tail(self) -> str:
        return self.logs("--tail", "60")


class Kernel:
    """A kernel on a user's server: REST to start it, then its websocket to run code.

    ``server_url`` is the server's address (``HUB/user/NAME``); ``headers`` authenticate both
    requests (a token, or a browser's cookies with the server's XSRF token); ``verify`` is a CA
    file for HTTPS (a front door with its own CA).
    """

    def __init__(self, server_url: str, headers: dict, timeout: float = 120, verify: str | bool = True):
        self.http = requests.Session()
        self.http.headers.update(headers)
        self.http.verify = verify
        self.http.trust_env = verify is True  # the machine's REQUESTS_CA_BUNDLE would replace a CA file
        self.base = f"{server_url}/api/kernels"
        r = self.http.post(self.base, json={"name": "python3"}, timeout=60)
        assert r.status_code == 201, (r.status_code, r.text[:500])
        self.id = r.json()["id"]
        parts = urlsplit(server_url)
        ws_url = parts._replace(scheme="wss" if parts.scheme == "https" else "ws").geturl()
        sslopt = {"ca_certs": verify} if isinstance(verify, str) else {}
        self.user = parts.path.rstrip("/").rsplit("/", 1)[-1]
        self.ws = websocket.create_connection(
            f"{ws_url}/api/kernels/{self.id}/channels",
            timeout=timeout,
            sslopt=sslopt,
            header=[f"{k}: {v}" for k, v in headers.items() if k.lower() != "x-xsrftoken"],
            origin=f"{parts.scheme}://{parts.netloc}",
        )

    @classmethod
    def with_token(cls, hub_url: str, user: str, token: str, timeout: float = 120) -> Kernel:
        return cls(f"{hub_url}/user/{user}", {"Authorization": f"token {token}"}, timeout)

    def execute(self, code: str, timeout: float = 120) -> dict:
        """Run ``code``: {"result": text/plain or None, "error": "Name: value" or None, "died": bool}.

        ``died``: the kernel restarted or died, or the server closed the connection.
        """
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": self.user,
                        "session": uuid.uuid4().hex,
                        "msg_type": "execute_request",
                        "version": "5.3",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "buffers": [],
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        outcome = {"result": None, "error": None, "died": False}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketConnectionClosedException:  # the server itself is gone
                return {**outcome, "died": True}
            kind, content = msg["msg_type"], msg.get("content", {})
            if kind == "status" and content.get("execution_state") in ("restarting", "dead"):
                return {**outcome, "died": True}
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if kind == "execute_result":
                outcome["result"] = content["data"]["text/plain"]
            elif kind == "error":
                outcome["error"] = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content.get("execution_state") == "idle":
                return outcome
        raise AssertionError(f"no answer from the kernel within {timeout} s")

    def close(self):
        self.ws.close()
        self.http.delete(f"{self.base}/{self.id}", timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_in_kernel(hub_url: str, user: str, token: str, code: str, timeout: float = 120) -> str:
    """Run ``code`` in a new kernel on ``user``'s server; return the ``text/plain`` of its result."""
    with Kernel.with_token(hub_url, user, token, timeout) as kernel:
        outcome = kernel.execute(code, timeout)
    assert outcome["error"] is None and not outcome["died"], outcome
    return outcome["result"]


def last_end(hub, session) -> dict:
    """How the home page says the user's last server ended: words, details (Slurm's or the container's), log."""
    page = hub.get(session, "/hub/home").text
    box = re.search(r'<div class="alert alert-warning mt-4 campushub-last-end".*?</div>', page, re.S)
    assert box, "the home page says nothing about the last server's end"
    box = box.group(0)
    words = re.search(r'<strong class="campushub-end-words">(.*?)</strong>', box, re.S).group(1)
    details = re.search(r"<small class=\"campushub-end-details\">(.*?)</small>", box, re.S)
    log = re.search(r'<pre class="campushub-end-log">(.*?)</pre>', box, re.S)
    found = {"words": words, "details": details.group(1) if details else "", "log": log.group(1) if log else ""}
    return {key: html.unescape(value) for key, value in found.items()}


def proxies_on(port: int) -> list[int]:
    """PIDs of the configurable-http-proxy processes whose API port is ``port``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"configurable-http-proxy" in part for part in command) and str(port).encode() in command:
            found.append(int(pid))
    return found


def slurm(conf: str, *args, check: bool = True) -> str:
    """A Slurm command against the test cluster's ``conf``: its output."""
    return subprocess.run(
        list(args), capture_output=True, text=True, env={**os.environ, "SLURM_CONF": conf}, check=check
    ).stdout.strip()

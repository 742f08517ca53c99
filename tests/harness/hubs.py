"""Hubs started with ``campushub up``, and a client for any running hub."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin

import requests
import yaml

from .accounts import HUB_ACCOUNT
from .browser import ARTIFACTS, CHROMIUM_FLAGS
from .env import CAMPUSHUB
from .kernels import run_in_kernel
from .network import SourceAddress, free_ports
from .sites import GROUP, PROXY_SECRET, SECRET_ENV, guarded, needs_root


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

    def with_server(self, user: str, profile: str = "local") -> tuple[requests.Session, str]:
        """Sign ``user`` in and start their server with ``profile``: the session, and a token of theirs."""
        session = self.login(user)
        self.start_server(session, user, profile=profile)
        return session, self.token(session, user)

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
        self.wait_no_server(session, user)

    def wait_no_server(
        self, session: requests.Session, user: str, timeout: float = 60, why: str = "server did not stop"
    ):
        """Until ``user`` has no server: stopped, ended by itself and noticed, or failed to start."""
        deadline = time.monotonic() + timeout
        while self.whoami_user(session, user)["servers"].get(""):
            assert time.monotonic() < deadline, why
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

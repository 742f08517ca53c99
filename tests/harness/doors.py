"""What the front door's tests share: a browser-like client of a door and its IdP, waiting for a port, raw
requests through the door, a user's own server config, starting a server through the door."""

from __future__ import annotations

import http.client
import os
import pwd
import socket
import ssl
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
from jupyterhub.utils import subdomain_hook_idna

from .hubs import HubClient
from .network import TEST_DOMAIN


class DoorClient:
    """What a test does at a front door (its HTTPS ``url`` and ``https_port``, its folder's CA) and its identity
    provider (at ``idp_url``), as a browser would."""

    folder: Path
    url: str
    https_port: int
    idp_url: str

    @property
    def ca(self) -> str:
        return str(self.folder / "door" / "ca" / "ca.pem")

    def user_url(self, user: str) -> str:
        """``user``'s server: at an origin of its own under the front door's name (JupyterHub's subdomain hook)."""
        return f"https://{subdomain_hook_idna(user, TEST_DOMAIN, 'user')}:{self.https_port}/user/{user}"

    def browser(self) -> requests.Session:
        s = requests.Session()
        s.verify = self.ca
        s.trust_env = False  # the machine's REQUESTS_CA_BUNDLE would replace our CA
        return s

    def ours(self, url: str) -> bool:
        """Whether ``url`` is the front door's (the hub's, or a user's server's) or the IdP's."""
        host = urlsplit(url).hostname or ""
        return url.startswith(self.idp_url) or host == TEST_DOMAIN or host.endswith("." + TEST_DOMAIN)

    def follow(self, s: requests.Session, r: requests.Response) -> requests.Response:
        """Follow redirects between the front door, users' servers and the IdP; stop at any other site."""
        while r.status_code in (301, 302, 303):
            url = urljoin(r.url, r.headers["Location"])
            if not self.ours(url):
                return r
            r = s.get(url, allow_redirects=False)
        return r


def wait_listening(port: int, host: str = "127.0.0.1", timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        assert time.monotonic() < deadline, f"nothing listens on {host}:{port}"
        time.sleep(0.2)


#: a user's own server config that writes down every request's headers and cookies (any user can do this)
HEADER_LOG = """
import json, os
def log_headers(handler):
    with open(os.path.expanduser("~/seen-headers.jsonl"), "a") as f:
        f.write(json.dumps({"path": handler.request.path, "headers": dict(handler.request.headers)}) + "\\n")
c.ServerApp.tornado_settings = {"log_function": log_headers}
"""


def raw_get(door, path: str, headers: dict, host: str = TEST_DOMAIN) -> int:
    """GET ``path`` exactly as written (no client-side clean-up of ``..``) through the front door, at ``host``."""
    context = ssl.create_default_context(cafile=door.ca)
    connection = http.client.HTTPSConnection(host, door.https_port, context=context, timeout=30)
    connection.putrequest("GET", path, skip_accept_encoding=True, skip_host=True)
    connection.putheader("Host", f"{host}:{door.https_port}")
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    status = connection.getresponse().status
    connection.close()
    return status


def own_config(user: str, text: str) -> Path:
    """Write ``user``'s own JupyterLab server config (as the user could); its path."""
    account = pwd.getpwnam(user)
    config = Path(account.pw_dir) / ".jupyter" / "jupyter_server_config.py"
    config.parent.mkdir(exist_ok=True)
    config.write_text(text)
    for path in (config.parent, config):
        os.chown(path, account.pw_uid, account.pw_gid)
    return config


def start_through_door(door, s: requests.Session, user: str):
    """Start ``user``'s server through the front door with the signed-in session ``s``; wait until it is ready."""
    assert s.post(f"{door.url}/hub/api/users/{user}/server", headers=HubClient.xsrf(s), json={}).status_code in (
        201,
        202,
    )
    deadline = time.monotonic() + 120
    while not (s.get(f"{door.url}/hub/api/user").json()["servers"].get("") or {}).get("ready"):
        assert time.monotonic() < deadline, door.hub.tail()
        time.sleep(0.5)

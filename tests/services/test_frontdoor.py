"""The campus front door: real Apache (mod_ssl, mod_auth_openidc), a real OpenID Connect provider, a real hub."""

import json
import os
import pwd
import re
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import jwt
import pytest
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from harness import (
    ARTIFACTS,
    CAMPUSHUB,
    DOOR_CHROMIUM_FLAGS,
    EXTERNAL,
    GROUP,
    HEADER_LOG,
    LAB_IMAGE,
    PROXY_SECRET,
    REPO,
    SECRET_ENV,
    TEST_DOMAIN,
    Compose,
    DoorClient,
    HubClient,
    Kernel,
    free_port,
    own_config,
    raw_get,
    remove_volumes,
    require_root,
    resolve_test_domain,
    start_through_door,
    wait_listening,
)

CLIENT_SECRET = "oidc-client-secret-0123456789"
SITE_NAME = "Campus Research Hub"
HELP = "https://crc.example.edu/help"
ALICE, BOB, ADMIN = "cht-alice", "cht-bob", "cht-admin"
USERS = {
    ALICE: [GROUP, "staff"],
    BOB: ["students"],
    ADMIN: [GROUP, "crc-admins"],
    # accounts whose tokens lack a claim: mod_headers would send the text "(null)" for it
    "cht-noname": {"name": None, "groups": [GROUP]},
    "cht-nogroups": {"name": "cht-nogroups", "groups": None},
}
#: the IdP's signing key, so that tests can make tokens the IdP would have made
IDP_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
IDP_JWKS = {"keys": [{**json.loads(RSAAlgorithm.to_jwk(IDP_KEY)), "kid": "idp-key"}]}
del IDP_JWKS["keys"][0]["key_ops"]  # PyJWT says "sign" only; the IdP also verifies its own tokens (logout hints)
IDENTITY = ("Cn", "isMemberOf", "X-Campushub-Proxy-Secret", "X-Campushub-Id-Token")


class FrontDoor(DoorClient):
    """IdP, hub and Apache on free loopback ports; ``url`` is the HTTPS front door."""

    def __init__(self, folder: Path, hubs=None, idp_host: str = "127.0.0.1"):
        resolve_test_domain()
        self.folder = folder
        self.hubs = hubs
        self.https_port, self.http_port, self.idp_port = free_port(), free_port(), free_port()
        self.url = f"https://{TEST_DOMAIN}:{self.https_port}"
        self.idp_host = idp_host
        self.idp = self.idp_url = f"http://{idp_host}:{self.idp_port}"
        self.env = {SECRET_ENV: PROXY_SECRET, "CH_CLIENT_SECRET": CLIENT_SECRET}
        self.site = {
            "auth": {
                "type": "remote_user",
                "required_groups": [GROUP],
                "admin_groups": ["crc-admins"],
                "trusted_proxies": ["127.0.0.1/32"],
                "missing_group_redirect": f"{EXTERNAL}/no-group",
                "proxy_secret": {"env": SECRET_ENV},
                "logout_url": f"{self.url}/oidc-callback?logout={quote(self.url + '/hub/home', safe='')}",
            },
            "front_door": {
                "server_name": TEST_DOMAIN,
                "http_port": self.http_port,
                "https_port": self.https_port,
                "oidc": {
                    "metadata_url": f"{self.idp}/.well-known/openid-configuration",
                    "client_id": "campushub",
                    "client_secret": {"env": "CH_CLIENT_SECRET"},
                },
            },
            "profiles": [
                {"slug": "local", "name": "JupyterLab", "backend": "local", "system_users": True, "default": True}
            ],
            "culler": {"enabled": False},
            "branding": {"site_name": SITE_NAME, "help_url": HELP},
        }

    def start(self):
        self.hub = self.hubs.start(self.site, "frontdoor-hub", env=self.env)
        self.start_idp()
        door = self.folder / "door"
        subprocess.run(
            [CAMPUSHUB, "frontdoor", "--config", str(self.hub.config), "--out", str(door)],
            check=True,
            env={**os.environ, **self.env},
            capture_output=True,
        )
        self.conf = str(door / "httpd.conf")
        subprocess.run(["apache2", "-f", self.conf, "-k", "start"], check=True)
        wait_listening(self.https_port)
        return self

    def start_idp(self):
        idp_env = {
            **os.environ,
            "IDP_HOST": self.idp_host,
            "IDP_PORT": str(self.idp_port),
            "IDP_ISSUER": self.idp,
            "IDP_CLIENT_ID": "campushub",
            "IDP_CLIENT_SECRET": CLIENT_SECRET,
            "IDP_REDIRECT_URIS": f"{self.url}/oidc-callback",
            "IDP_POST_LOGOUT_URIS": f"{self.url}/hub/home",
            "IDP_USERS": json.dumps(USERS),
            "IDP_JWKS": json.dumps(IDP_JWKS),
        }
        self.idp_process = subprocess.Popen(
            ["node", str(REPO / "tests" / "idp" / "provider.mjs")],
            env=idp_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_listening(self.idp_port, self.idp_host)

    def stop(self):
        subprocess.run(["apache2", "-f", self.conf, "-k", "stop"], capture_output=True)
        self.idp_process.terminate()
        self.hub.stop()

    def sso_login(self, s: requests.Session, user: str, path: str = "/hub/home") -> requests.Response:
        """Open ``path`` at the front door, sign in at the IdP (its login and consent forms), return the end."""
        r = self.follow(s, s.get(self.url + path, allow_redirects=False))
        assert r.url.startswith(self.idp), r.url
        for fields in ({"login": user, "password": "any"}, {}):  # the login form, then the consent form
            r = self.submit(s, r, fields)
        return r

    def submit(self, s: requests.Session, page: requests.Response, fields: dict) -> requests.Response:
        """Submit the IdP page's form with its hidden fields and ``fields``; follow where it leads."""
        action = urljoin(page.url, re.search(r'<form[^>]*action="([^"]+)"', page.text).group(1))
        hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        return self.follow(s, s.post(action, data={**hidden, **fields}, allow_redirects=False))


@pytest.fixture(scope="module")
def door(hub_root, hubs, accounts):
    require_root("running Apache")
    accounts(ALICE)
    door = FrontDoor(hub_root / "frontdoor", hubs).start()
    yield door
    door.stop()


def test_http_redirects_to_https_with_hsts(door):
    r = requests.get(f"http://{TEST_DOMAIN}:{door.http_port}/hub/home", allow_redirects=False)
    assert (r.status_code, r.headers["Location"]) == (301, f"{door.url}/hub/home")
    r = door.browser().get(f"{door.url}/hub/home", allow_redirects=False)
    hsts = dict(part.strip().partition("=")[::2] for part in r.headers["Strict-Transport-Security"].split(";"))
    assert int(hsts["max-age"]) >= 365 * 24 * 3600 and "includeSubDomains" in hsts, hsts


def test_unauthenticated_requests_go_to_the_idp_and_return_logged_in(door):
    s = door.browser()
    r = door.sso_login(s, ALICE)
    assert r.status_code == 200 and r.url == f"{door.url}/hub/home"
    me = s.get(f"{door.url}/hub/api/user").json()
    assert me["name"] == ALICE and set(me["groups"]) == {GROUP, "staff"}


def test_session_cookies_are_secure_and_httponly(door):
    s = door.browser()
    door.sso_login(s, ALICE)
    names = ("mod_auth_openidc_session", "__Host-jupyterhub-hub-login", "jupyterhub-session-id")
    session = [c for c in s.cookies if c.name in names]
    assert len(session) == 3, [c.name for c in s.cookies]
    assert all(c.secure and c.has_nonstandard_attr("HttpOnly") for c in session), session
    # the credentials are for the hub's own name only (no Domain attribute): never sent to NAME.hub.test. JupyterHub
    # shares its session id with users' servers on purpose (logging out then ends their sessions too): it names
    # the browser's session and grants nothing
    where = {c.name: (c.domain, c.domain_specified) for c in session}
    assert where == {
        "mod_auth_openidc_session": (TEST_DOMAIN, False),
        "__Host-jupyterhub-hub-login": (TEST_DOMAIN, False),
        "jupyterhub-session-id": (f".{TEST_DOMAIN}", True),
    }, where


def test_a_user_without_the_group_lands_on_missing_group_redirect(door):
    r = door.sso_login(door.browser(), BOB)
    assert (r.status_code, r.headers["Location"]) == (302, f"{EXTERNAL}/no-group")


def test_forged_identity_is_ignored_on_every_request_of_the_sign_in(door):
    """The client sends another user's identity, the secret and a valid stolen ID token on every request."""
    stolen = token_for(door, preferred_username="mallory", groups=[GROUP, "staff", "crc-admins"])
    forged = {
        "Cn": "mallory",
        "isMemberOf": f"{GROUP};crc-admins",
        "X-Campushub-Proxy-Secret": PROXY_SECRET,
        "X-Campushub-Id-Token": stolen,
    }
    s = door.browser()
    s.headers.update(forged)
    r = door.sso_login(s, ALICE)
    assert r.status_code == 200 and r.url == f"{door.url}/hub/home"
    me = s.get(f"{door.url}/hub/api/user").json()
    assert (me["name"], set(me["groups"])) == (ALICE, {GROUP, "staff"})
    # outside the required group, forging it does not help either
    s = door.browser()
    s.headers.update(forged)
    r = door.sso_login(s, BOB)
    assert (r.status_code, r.headers["Location"]) == (302, f"{EXTERNAL}/no-group")


def test_a_token_without_the_user_or_groups_claim_signs_in_nobody(door):
    """A missing claim is no name (no hub account "(null)") and no groups (no group "(null)")."""
    r = door.sso_login(door.browser(), "cht-noname")
    assert r.status_code == 403 and "did not say who you are" in r.text, (r.status_code, r.url)
    r = door.sso_login(door.browser(), "cht-nogroups")
    assert (r.status_code, r.headers["Location"]) == (302, f"{EXTERNAL}/no-group")
    with sqlite3.connect(door.hub.state / "jupyterhub.sqlite") as db:
        names = {name for (name,) in db.execute("select name from users")}
        groups = {name for (name,) in db.execute("select name from groups")}
    assert not {"(null)", ""} & names and "cht-nogroups" not in names, names
    assert "(null)" not in groups, groups


def test_forged_headers_straight_to_the_hub_never_log_in(door):
    forged = {"Cn": "mallory", "isMemberOf": GROUP}
    s = requests.Session()
    r = s.get(f"{door.hub.url}/hub/home", headers=forged)
    assert r.status_code == 403
    assert not [c for c in s.cookies if c.name.startswith("jupyterhub-")]


def test_users_servers_never_receive_identity_the_secret_or_the_sso_session(door):
    """Identity and the secret go to the hub's paths only, and the SSO's session cookie nowhere behind the door: a
    user's server logs every header it gets, for path tricks sent to the hub's name and to its own. Through the
    hub's name, none reaches the server at all (its proxy routes by name); on main, all of them did, with the SSO's
    session cookie (issue 19)."""
    seen = Path(pwd.getpwnam(ALICE).pw_dir) / "seen-headers.jsonl"
    config = own_config(ALICE, HEADER_LOG)
    seen.unlink(missing_ok=True)
    s = door.browser()
    door.sso_login(s, ALICE)
    xsrf = HubClient.xsrf(s)
    try:
        start_through_door(door, s, ALICE)
        token = s.post(f"{door.url}/hub/api/users/{ALICE}/tokens", headers=xsrf, json={}).json()["token"]
        forged = {
            "Cn": "mallory",
            "isMemberOf": GROUP,
            "X-Campushub-Proxy-Secret": PROXY_SECRET,
            "X-Campushub-Id-Token": "forged",
        }
        sso = "; ".join(f"{c.name}={c.value}" for c in s.cookies if c.name.startswith("mod_auth_openidc"))
        assert sso
        paths = [
            f"/user/{ALICE}/api/status",
            f"/hub/../user/{ALICE}/api/status",
            f"/hub/%2e%2e/user/{ALICE}/api/status",
            f"//hub/../user/{ALICE}/api/status",
        ]
        headers = {**forged, "Cookie": f"{sso}; other=1", "Authorization": f"token {token}"}
        for path in paths:  # the hub's name: nothing of it reaches a user's server
            assert raw_get(door, path, headers) in (302, 404), path
        for path in paths:  # the server's own name: it answers, without any of it
            assert raw_get(door, path, headers, host=f"{ALICE}.{TEST_DOMAIN}") == 200, path
        lab = door.follow(s, s.get(f"{door.user_url(ALICE)}/lab", allow_redirects=False))  # the browser's way
        assert lab.status_code == 200 and "JupyterLab" in lab.text and lab.url == f"{door.user_url(ALICE)}/lab"
        requests_seen = [json.loads(line) for line in seen.read_text().splitlines()]
        assert sum(r["path"] == f"/user/{ALICE}/api/status" for r in requests_seen) == len(paths), requests_seen
        assert any(r["path"] == f"/user/{ALICE}/lab" for r in requests_seen)
        for r in requests_seen:
            names = {name.lower() for name in r["headers"]}
            assert not names & {h.lower() for h in IDENTITY}, r
            assert "mod_auth_openidc" not in r["headers"].get("Cookie", ""), r
        assert PROXY_SECRET not in seen.read_text()
        assert s.get(f"{door.url}/hub/api/user").json()["name"] == ALICE  # and the hub still signs in
    finally:
        s.delete(f"{door.url}/hub/api/users/{ALICE}/server", headers=xsrf)
        config.unlink()


#: a user's own server config that serves, without asking who is there, a page that tries to act on the hub as
#: whoever opens it: the popup of JupyterHub's documented one-origin limit, and a request with their cookies
ATTACK_PAGE = r"""
import sys, types
from tornado import web

PAGE = '''<!DOCTYPE html><html><body><button id="go" onclick="attack()">Open the analysis</button><pre id="out"></pre>
<script>
const report = (what) => { document.getElementById("out").textContent += what + "\\n"; };
async function attack() {
  const popup = window.open("HUB/hub/home", "hub");
  let token = "";
  for (let i = 0; i < 50 && !token; i++) {
    await new Promise((done) => setTimeout(done, 200));
    try { token = (popup.jhdata && popup.jhdata.xsrf_token) || ""; }
    catch (e) { report("read refused: " + e.name); break; }
  }
  if (token) report("read the hub's token");
  try {
    const r = await fetch("HUB/hub/api/users/VICTIM/tokens", {method: "POST", credentials: "include",
      headers: {"X-XSRFToken": token}, body: JSON.stringify({note: "stolen"})});
    report("post: " + r.status);
  } catch (e) { report("post refused: " + e.name); }
  report("done");
}
</script></body></html>'''


class Attack(web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "text/html")
        self.finish(PAGE)


def _load(app):
    app.web_app.add_handlers(".*$", [(app.base_url + "attack", Attack)])


module = types.ModuleType("attack_page")
module._load_jupyter_server_extension = _load
module._jupyter_server_extension_points = lambda: [{"module": "attack_page"}]
sys.modules["attack_page"] = module  # enabled by jupyter_server_config.d/attack_page.json (see enable_attack)
"""


def enable_attack(user: str) -> Path:
    """Enable the extension ATTACK_PAGE defines, as its user can: JupyterHub's server replaces a config file's
    ``jpserver_extensions``, and merges those of ``jupyter_server_config.d``."""
    account = pwd.getpwnam(user)
    folder = Path(account.pw_dir) / ".jupyter" / "jupyter_server_config.d"
    folder.mkdir(exist_ok=True)
    enabling = folder / "attack_page.json"
    enabling.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {"attack_page": True}}}))
    for path in (folder, enabling):
        os.chown(path, account.pw_uid, account.pw_gid)
    return enabling


def browser_login(page, door, user: str, path: str = "/hub/home"):
    """Sign ``user`` in at the IdP in Chromium, starting from ``path`` at the front door."""
    page.goto(f"{door.url}{path}")
    page.fill('input[name="login"]', user)
    page.fill('input[name="password"]', "any")
    page.click('button[type="submit"]')
    page.click('button[type="submit"]')  # consent
    page.wait_for_url(f"{door.url}{path}**", timeout=60_000)


def test_a_page_on_a_users_server_cannot_act_on_the_hub_as_its_visitor(door):
    """Alice's server serves a page (her own extension: no auth, no CSP); an admin opens it and clicks once. Its
    popup of the hub cannot be read and its request with the admin's cookies is refused, since the page is at
    cht-alice.hub.test and the hub at hub.test. On main, one origin: the page read the admin's XSRF token from the
    popup and made itself an admin token (issue 19)."""
    from playwright.sync_api import expect, sync_playwright

    config = own_config(ALICE, ATTACK_PAGE.replace("HUB", door.url).replace("VICTIM", ADMIN))
    enabling = enable_attack(ALICE)
    s = door.browser()
    door.sso_login(s, ALICE)
    try:
        start_through_door(door, s, ALICE)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=DOOR_CHROMIUM_FLAGS)
            context = browser.new_context(ignore_https_errors=True)
            page = context.new_page()
            try:
                browser_login(page, door, ADMIN)
                page.goto(f"{door.user_url(ALICE)}/attack")
                page.click("#go")
                expect(page.locator("#out")).to_contain_text("done", timeout=60_000)
                outcome = page.locator("#out").inner_text()
                page.screenshot(path=str(ARTIFACTS / "attack-page.png"))
                admin = page.goto(f"{door.url}/hub/api/users/{ADMIN}/tokens")  # the admin's own, as the hub has them
                assert admin.status == 200, admin.status
                notes = [t.get("note") for t in admin.json()["api_tokens"]]
            finally:
                browser.close()
        assert "read refused: SecurityError" in outcome and "read the hub's token" not in outcome, outcome
        assert "post: 201" not in outcome and "post: 200" not in outcome, outcome
        assert "stolen" not in notes, notes
    finally:
        s.delete(f"{door.url}/hub/api/users/{ALICE}/server", headers=HubClient.xsrf(s))
        config.unlink()
        enabling.unlink()


#: listens, as an unprivileged account, on every port given whenever it is free; writes down what it received
SQUATTER = r"""
import socket, sys, time
ports, record, until = [int(p) for p in sys.argv[1].split(",")], sys.argv[2], time.monotonic() + float(sys.argv[3])
listeners = []
while time.monotonic() < until:
    for port in list(ports):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        s.listen(8)
        s.settimeout(0.05)
        listeners.append(s)
        ports.remove(port)
        open(record, "a").write(f"bound {port}\n")
    for s in listeners:
        try:
            connection, _ = s.accept()
        except OSError:
            continue
        connection.settimeout(2)
        data = connection.recv(65536)
        open(record, "ab").write(b"received " + data + b"\n")
        connection.close()
    time.sleep(0.01)
"""


def test_a_process_waiting_on_the_hubs_ports_while_it_restarts_receives_nothing(door, hub_root):
    """A user's leftover process tries to take the hub's three ports while the hub is down and restarting; then a
    user signs in through the front door. The ports are below 1024, so it never listens and receives nothing. On
    main they were free ports above 1023: it took the proxy's and received users' identities, ID tokens and the
    secret (issue 19)."""
    hub = door.hub.site["hub"]
    ports = [int(hub["bind_url"].rsplit(":", 1)[1]), hub["hub_port"], hub["proxy_api_port"]]
    assert max(ports) < 1024, ports
    account = pwd.getpwnam(ALICE)
    folder = Path(tempfile.mkdtemp(prefix="squatter-", dir=hub_root))  # where alice's process can read and write
    folder.chmod(0o755)
    record = folder / "squatter.log"
    record.touch()
    os.chown(record, account.pw_uid, -1)
    (folder / "squatter.py").write_text(SQUATTER)
    door.hub.stop()
    squatter = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={account.pw_uid}",
            f"--regid={account.pw_gid}",
            "--init-groups",
            "/usr/bin/python3",
            str(folder / "squatter.py"),
            ",".join(map(str, ports)),
            str(record),
            "90",
        ]
    )
    try:
        time.sleep(1)
        door.hub.start()
        s = door.browser()
        r = door.sso_login(s, ALICE)
        assert r.status_code == 200 and r.url == f"{door.url}/hub/home"
        assert squatter.poll() is None  # it tried all along
    finally:
        squatter.kill()
        squatter.wait()
    assert record.read_text() == "", record.read_text()


def test_failed_requests_leave_no_secret_in_any_log(door):
    """A 5xx through the front door (alice's own server config ends her server at once): JupyterHub writes the
    request's headers to its log, where the proxy secret and her ID token were in the clear on main; and the front
    door's logs, which name users and what they open, were 0644 (issue 19)."""
    config = own_config(ALICE, "raise SystemExit(3)\n")
    s = door.browser()
    door.sso_login(s, ALICE)
    xsrf = HubClient.xsrf(s)
    try:
        r = s.post(f"{door.url}/hub/api/users/{ALICE}/server", headers=xsrf, json={})
        deadline = time.monotonic() + 60
        while r.status_code < 500 and time.monotonic() < deadline:  # a start that fails later: the next one answers
            time.sleep(1)
            r = s.post(f"{door.url}/hub/api/users/{ALICE}/server", headers=xsrf, json={})
        assert r.status_code >= 500, (r.status_code, r.text[:300])
    finally:
        config.unlink()
    # JupyterHub writes the request's log line (and its headers) once the answer has gone out
    deadline = time.monotonic() + 10
    while '"X-Campushub-Id-Token"' not in (hub_log := door.hub.log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert '"X-Campushub-Proxy-Secret": "[secret]"' in hub_log and '"X-Campushub-Id-Token": "[secret]"' in hub_log
    folder = door.folder / "door"
    for log in (door.hub.log, folder / "access.log", folder / "error.log"):
        text = log.read_text()
        assert PROXY_SECRET not in text, log
        assert not re.search(r"eyJ[\w-]+\.eyJ[\w-]+\.", text), log  # no JSON web token (an ID token)
    for log in (folder / "access.log", folder / "error.log"):
        mode = log.stat().st_mode & 0o777
        assert mode & 0o007 == 0 and log.stat().st_uid == 0, (log, oct(mode))


def token_for(door, key=IDP_KEY, algorithm="RS256", **changes) -> str:
    """An ID token with ``changes`` to what the IdP would issue for a user "mallory" in the group."""
    now = int(time.time())
    claims = {
        "iss": door.idp,
        "aud": "campushub",
        "sub": "mallory",
        "iat": now,
        "exp": now + 300,
        "preferred_username": "mallory",
        "groups": [GROUP],
        **changes,
    }
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "idp-key"})


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # a weak key on purpose
def test_the_hub_believes_only_id_tokens_the_idp_signed_for_it(door):
    """Even with the front door's secret (leaked) from its address, identity needs a valid ID token."""
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    refused = {
        "no token": None,
        "another key": token_for(door, key=attacker),
        "another client": token_for(door, aud="other-client"),
        "another issuer": token_for(door, iss="https://idp.example.org"),
        "no expiry": token_for(door, exp=None),
        "unsigned": jwt.encode(
            {
                "iss": door.idp,
                "aud": "campushub",
                "iat": now,
                "exp": now + 300,
                "preferred_username": "mallory",
                "groups": [GROUP],
            },
            None,
            algorithm="none",
        ),
        "signed with the client secret": token_for(door, key=CLIENT_SECRET, algorithm="HS256"),
        # several audiences: it must have been issued to this client (azp), not to the other one
        "issued to another audience": token_for(door, aud=["campushub", "other-client"], azp="other-client"),
        "several audiences, no azp": token_for(door, aud=["campushub", "other-client"]),
        "azp of another client": token_for(door, azp="other-client"),
    }
    for why, token in refused.items():
        s = door.hub.session("mallory", GROUP, extra={"X-Campushub-Id-Token": token} if token else {})
        r = door.hub.get(s, "/hub/home")
        assert r.status_code == 403, (why, r.status_code)
        assert not [c for c in s.cookies if c.name.startswith("jupyterhub-session")], why
    # expired: the session is older than its token; sent to sign in again (the SSO's logout)
    s = door.hub.session(
        "mallory", GROUP, extra={"X-Campushub-Id-Token": token_for(door, iat=now - 7200, exp=now - 3600)}
    )
    r = door.hub.get(s, "/hub/home")
    assert (r.status_code, r.headers.get("Location")) == (302, door.site["auth"]["logout_url"])
    # the control: a token the IdP's key signed for this hub is believed, claims and all (headers not)
    s = door.hub.session("someone-else", "students", extra={"X-Campushub-Id-Token": token_for(door)})
    r = s.get(f"{door.hub.url}/hub/login", allow_redirects=False)
    assert r.status_code == 302
    # the hub's cookies are Secure (public_url is https): send them by hand over this plain-HTTP hop
    cookies = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    me = s.get(f"{door.hub.url}/hub/api/user", headers={"Cookie": cookies}).json()
    assert (me["name"], me["groups"]) == ("mallory", [GROUP])


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")  # old TLS on purpose
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_is_refused(door, version):
    """Refused by the front door's SSLProtocol (a protocol-version alert), not only by OpenSSL 3's
    default security level, which would answer with an internal-error alert."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.minimum_version = context.maximum_version = version
    with socket.create_connection(("127.0.0.1", door.https_port)) as raw, pytest.raises(ssl.SSLError) as refused:
        context.wrap_socket(raw, server_hostname="localhost")
    assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION", refused.value
    modern = ssl.create_default_context(cafile=door.ca)
    with (
        socket.create_connection(("127.0.0.1", door.https_port)) as raw,
        modern.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_logout_goes_through_the_sso_and_asks_again(door):
    s = door.browser()
    door.sso_login(s, ALICE)
    r = door.follow(s, s.get(f"{door.url}/hub/logout", allow_redirects=False))
    assert r.url.startswith(f"{door.idp}/session/end"), r.url  # the IdP confirms the sign-out
    r = door.submit(s, r, {"logout": "yes"})
    # back at the hub, which now asks the IdP to sign in again
    assert r.url.startswith(f"{door.idp}/interaction/") and 'name="login"' in r.text, r.url


def test_the_first_execute_through_the_front_door_is_answered(door):
    """A kernel run by script with the browser's cookies (the OIDC session, the server's OAuth
    cookie): Apache's websocket proxying loses nothing, the first execute_request answers."""
    s = door.browser()
    door.sso_login(s, ALICE)
    xsrf = HubClient.xsrf(s)
    start_through_door(door, s, ALICE)
    try:
        lab = door.follow(s, s.get(f"{door.user_url(ALICE)}/lab", allow_redirects=False))  # the server's OAuth
        assert lab.status_code == 200
        server_host = urlsplit(door.user_url(ALICE)).hostname
        # what the browser sends there: its cookies and the session id JupyterHub shares with servers (.hub.test)
        sent = [c for c in s.cookies if c.domain in (server_host, f".{TEST_DOMAIN}")]
        cookies = "; ".join(f"{c.name}={c.value}" for c in sent)
        server_xsrf = next(c.value for c in s.cookies if c.name == "_xsrf" and c.domain == server_host)
        headers = {"Cookie": cookies, "X-XSRFToken": server_xsrf}
        with Kernel(door.user_url(ALICE), headers, timeout=30, verify=door.ca) as kernel:
            outcome = kernel.execute("6 * 7", timeout=30)
        assert outcome == {"result": "42", "error": None, "died": False}, outcome
    finally:
        s.delete(f"{door.url}/hub/api/users/{ALICE}/server", headers=xsrf)


def test_a_browser_signs_in_runs_a_cell_and_logs_out(door):
    """Debian's Chromium, driven by Playwright: IdP sign-in, JupyterLab at the user's own name, a cell, logout."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=DOOR_CHROMIUM_FLAGS)
        context = browser.new_context(ignore_https_errors=True)  # the local CA is checked by the TLS tests
        page = context.new_page()
        try:
            page.goto(f"{door.url}/hub/")
            page.fill('input[name="login"]', ALICE)
            page.fill('input[name="password"]', "any")
            page.click('button[type="submit"]')
            page.click('button[type="submit"]')  # consent
            page.wait_for_url(f"{door.user_url(ALICE)}/lab**", timeout=180_000)
            page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click(timeout=120_000)
            # JupyterLab drops a run made before the notebook's kernel is attached (status bar
            # "No Kernel", "Initializing", "Connecting"); the cell's execution indicator already says
            # idle then: wait for the kernel itself, as a person watches the status bar
            expect(page.locator(".jp-StatusBar-Widget").filter(has_text="Python 3 (ipykernel) | Idle")).to_be_visible(
                timeout=120_000
            )
            cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
            cell.click(timeout=60_000)
            page.keyboard.type("6 * 7")
            page.keyboard.press("Shift+Enter")  # once: the first run must answer
            output = page.locator(".jp-OutputArea-output").first
            expect(output).to_have_text("42", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "jupyterlab.png"))

            page.goto(f"{door.url}/hub/logout")  # the hub's own name
            page.wait_for_url(f"{door.idp}/session/end**")
            page.click('button[value="yes"]')
            page.wait_for_url(f"{door.idp}/interaction/**")  # back at the hub, which asks for a sign-in again
            expect(page.locator('input[name="login"]')).to_be_visible()
        finally:
            page.screenshot(path=str(ARTIFACTS / "last-page.png"))
            browser.close()


def test_while_the_hub_is_down_users_see_the_sites_own_page(door):
    """Apache's generic 503 is replaced by the site's page (name, help link), also before signing in."""
    from playwright.sync_api import expect, sync_playwright

    s = door.browser()
    door.sso_login(s, ALICE)
    door.hub.stop()
    try:
        r = s.get(f"{door.url}/hub/home")
        assert r.status_code == 503 and r.headers["Content-Type"].startswith("text/html"), (r.status_code, r.headers)
        assert f"<h1>{SITE_NAME} is not answering right now</h1>" in r.text and f'href="{HELP}"' in r.text
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=DOOR_CHROMIUM_FLAGS)
            page = browser.new_context(ignore_https_errors=True).new_page()
            try:
                page.goto(f"{door.url}/hub/")
                page.fill('input[name="login"]', ALICE)
                page.fill('input[name="password"]', "any")
                page.click('button[type="submit"]')
                page.click('button[type="submit"]')  # consent
                expect(page.locator("h1")).to_have_text(f"{SITE_NAME} is not answering right now")
                page.screenshot(path=str(ARTIFACTS / "503.png"), full_page=True)
            finally:
                browser.close()
    finally:
        door.hub.start()
    assert s.get(f"{door.url}/hub/home").status_code == 200  # the same session, once the hub is back


def frontdoor_for(door, tmp_path, certificate: dict, **ports) -> Path:
    """``campushub frontdoor`` for the door's site with another certificate (and ports); its folder."""
    site = {
        **door.site,
        "hub": {**door.site.get("hub", {}), "state_dir": str(tmp_path / "state")},
        "front_door": {**door.site["front_door"], "certificate": certificate, **ports},
    }
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    out = tmp_path / certificate["source"]
    subprocess.run(
        [CAMPUSHUB, "frontdoor", "--config", str(tmp_path / "site.yaml"), "--out", str(out)],
        check=True,
        capture_output=True,
        env={**os.environ, **door.env},
    )
    return out


def test_acme_gives_a_valid_apache_config(door, tmp_path):
    """mod_md (Let's Encrypt, staging by default): Apache accepts the config (no ACME server is reachable here)."""
    certificate = {"source": "acme", "acme_email": "hpc@example.edu", "acme_dns01_command": "/bin/true"}
    out = frontdoor_for(door, tmp_path, certificate)
    vhost = (out / "campushub-vhost.conf").read_text()
    assert f"MDomain {TEST_DOMAIN} *.{TEST_DOMAIN}" in vhost and "acme-staging-v02" in vhost
    assert "MDChallengeDns01 /bin/true" in vhost  # a wildcard name: only DNS-01 can prove it
    checked = subprocess.run(["apache2", "-t", "-f", str(out / "httpd.conf")], capture_output=True, text=True)
    assert checked.returncode == 0 and "Syntax OK" in checked.stderr, checked.stderr


def test_a_certificate_from_files_is_the_one_served(door, tmp_path):
    from cryptography import x509

    from campushub.ops.frontdoor.tls import local_ca

    _ca, cert, key = local_ca(tmp_path / "given", TEST_DOMAIN, wildcard=True)  # not the door's own CA
    https_port = free_port()
    out = frontdoor_for(
        door,
        tmp_path,
        {"source": "file", "cert": str(cert), "key": str(key)},
        http_port=free_port(),
        https_port=https_port,
    )
    assert not (out / "ca").exists()  # no local CA made
    subprocess.run(["apache2", "-f", str(out / "httpd.conf"), "-k", "start"], check=True)
    try:
        wait_listening(https_port)
        served = ssl.get_server_certificate(("127.0.0.1", https_port))
    finally:
        subprocess.run(["apache2", "-f", str(out / "httpd.conf"), "-k", "stop"], capture_output=True)
    given = x509.load_pem_x509_certificate(cert.read_bytes())
    assert x509.load_pem_x509_certificate(served.encode()) == given


def test_a_certificate_that_does_not_cover_users_names_is_refused(door, tmp_path):
    """Per-user origins need *.hub.test: a certificate for the hub's name alone is named, and nothing is written."""
    from campushub.ops.frontdoor.tls import local_ca

    _ca, cert, key = local_ca(tmp_path / "given", TEST_DOMAIN)
    with pytest.raises(subprocess.CalledProcessError) as refused:
        frontdoor_for(door, tmp_path, {"source": "file", "cert": str(cert), "key": str(key)})
    assert f"front_door.certificate.cert: {cert} does not cover *.{TEST_DOMAIN}" in refused.value.stderr.decode()


class ComposeFrontDoor(FrontDoor):
    """compose.yaml + compose.frontdoor.yaml on Podman: the hub and Apache in containers, the IdP on the host.

    The IdP listens on the compose network's gateway (the host's address on it), so that the
    browser, Apache and the hub reach it at the same address, as a campus IdP is reached by all.
    Apache and the hub meet on the front door's own network (campushub-door).
    """

    PROJECT = f"chdoor{os.getpid()}"

    def __init__(self, folder: Path, socket_url: str):
        super().__init__(folder, idp_host="10.89.77.1")
        self.socket_url = socket_url
        hub, door = self.site.setdefault("hub", {}), self.site["front_door"]
        hub.update(
            bind_url="http://0.0.0.0:8000",
            hub_ip="0.0.0.0",
            hub_connect_ip="10.89.77.2",
            state_dir="/srv/campushub/state",
        )
        self.site["auth"].update(trusted_proxies=["10.89.78.3/32"], proxy_secret={"env": "CAMPUSHUB_PROXY_SECRET"})
        door.update(address="0.0.0.0", upstream="http://10.89.78.2:8000")
        self.site["container"] = {"volume": self.PROJECT + "-user-{username}", "image": LAB_IMAGE}
        self.site["profiles"] = [
            {"slug": "lab", "name": "JupyterLab", "backend": "container", "cpu": 0.5, "memory": "512M", "default": True}
        ]
        self.env = {"CAMPUSHUB_PROXY_SECRET": PROXY_SECRET, "CH_CLIENT_SECRET": CLIENT_SECRET}

    def start(self):
        door_dir = self.folder / "door"
        self.hub = Compose(
            self.folder / "compose",
            self.site,
            self.PROJECT,
            self.socket_url,
            files=("compose.yaml", "compose.frontdoor.yaml"),
            env={
                **self.env,
                "CAMPUSHUB_FRONTDOOR_DIR": str(door_dir),
                "CAMPUSHUB_HTTP_PORT": str(self.http_port),
                "CAMPUSHUB_HTTPS_PORT": str(self.https_port),
            },
        )
        subprocess.run(
            [
                CAMPUSHUB,
                "frontdoor",
                "--config",
                str(self.folder / "compose" / "campushub.yaml"),
                "--out",
                str(door_dir),
                "--root",
                "/etc/campushub/frontdoor",
            ],
            check=True,
            env={**os.environ, **self.env},
            capture_output=True,
        )
        self.hub.up("hub", "frontdoor")
        self.start_idp()  # the gateway address exists once the network does
        wait_listening(self.https_port)
        return self

    def stop(self):
        self.hub.compose("down")
        self.idp_process.terminate()
        remove_volumes(self.PROJECT)


@pytest.fixture(scope="module")
def compose_door(engine, hub_root):
    door = ComposeFrontDoor(hub_root / "compose-frontdoor", engine).start()
    yield door
    door.stop()


def test_compose_front_door_signs_in_and_serves_a_container(compose_door):
    door = compose_door
    s = door.browser()
    r = door.sso_login(s, ALICE)
    assert r.status_code == 200 and r.url == f"{door.url}/hub/home"
    me = s.get(f"{door.url}/hub/api/user").json()
    assert me["name"] == ALICE and GROUP in me["groups"]
    xsrf = HubClient.xsrf(s)
    assert s.post(f"{door.url}/hub/api/users/{ALICE}/server", headers=xsrf, json={}).status_code in (201, 202)
    deadline = time.monotonic() + 180
    while not (s.get(f"{door.url}/hub/api/user").json()["servers"].get("") or {}).get("ready"):
        assert time.monotonic() < deadline, door.hub.tail()
        time.sleep(1)
    # JupyterLab in the container at the user's own name, through Apache and the hub's proxy (and the hub's OAuth)
    lab = door.follow(s, s.get(f"{door.user_url(ALICE)}/lab", allow_redirects=False))
    assert lab.status_code == 200 and lab.url == f"{door.user_url(ALICE)}/lab" and "JupyterLab" in lab.text
    r = s.get(f"{door.user_url(ALICE)}/api/status")
    assert r.status_code == 200 and "kernels" in r.json(), r.text[:300]
    assert s.delete(f"{door.url}/hub/api/users/{ALICE}/server", headers=xsrf).status_code in (202, 204)


def test_compose_hub_port_trusts_only_the_front_door(compose_door):
    """The hub's own published port: forged headers, even with the secret, come from the wrong address."""
    for extra in ({}, {"X-Campushub-Proxy-Secret": PROXY_SECRET}):
        r = requests.get(f"{compose_door.hub.url}/hub/home", headers={"Cn": "mallory", "isMemberOf": GROUP, **extra})
        assert r.status_code == 403, (extra, r.status_code)

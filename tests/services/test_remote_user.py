"""Header login from the campus SSO proxy, against a real hub and configurable-http-proxy."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import EXTERNAL, GROUP, PROXY_SECRET, SECRET_ENV, base_site

SECRET = PROXY_SECRET


@pytest.fixture(scope="module")
def hub(hubs):
    """Redirects configured; identity re-checked every second."""
    site = base_site()
    site["auth"].update(refresh_seconds=1, logout_url=f"{EXTERNAL}/logout")
    hub = hubs.start(site, "redirects")
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def strict_hub(hubs):
    """No redirects (403 pages), only 127.0.0.1/32 trusted, and the proxy secret from the environment."""
    site = base_site(
        auth={
            "type": "remote_user",
            "required_groups": [GROUP],
            "trusted_proxies": ["127.0.0.1/32"],
            "proxy_secret": {"env": SECRET_ENV},
        }
    )
    hub = hubs.start(site, "strict")
    yield hub
    hub.stop()


def logged_in(session) -> bool:
    return any(c.name.startswith("jupyterhub-session-id") or c.name == "jupyterhub-hub-login" for c in session.cookies)


def test_login_from_trusted_proxy_lands_on_the_deep_link(hub):
    s = hub.session("alice", GROUP)
    r = hub.get(s, "/hub/token")
    assert r.status_code == 200
    assert r.url == f"{hub.url}/hub/token"
    assert hub.whoami(s)["name"] == "alice"


@pytest.mark.parametrize(
    "forged",
    [
        {},
        {"X-Forwarded-For": "127.0.0.1"},
        {"X-Real-Ip": "127.0.0.1"},
        {"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1"},
    ],
)
def test_headers_from_an_untrusted_address_never_log_in(strict_hub, forged):
    s = strict_hub.session("mallory", GROUP, source="127.0.0.2", extra=forged)  # with the secret
    r = strict_hub.get(s, "/hub/home")
    assert r.status_code == 403
    assert "not trusted" in r.text
    assert not logged_in(s)
    assert strict_hub.api(s, "GET", "user").status_code == 403


@pytest.mark.parametrize(
    "secret, allowed", [(SECRET, True), (None, False), ("wrong", False), (SECRET + "x", False), ("", False)]
)
def test_proxy_secret_is_required_when_set(strict_hub, secret, allowed):
    extra = {} if secret is None else {strict_hub.secret_header: secret}
    s = strict_hub.session("bob", GROUP, extra=extra, secret=False)
    r = strict_hub.get(s, "/hub/home")
    if allowed:
        assert r.status_code == 200 and strict_hub.whoami(s)["name"] == "bob"
    else:
        assert r.status_code == 403 and "did not come through the campus single sign-on" in r.text, r.status_code
    assert logged_in(s) is allowed


def test_missing_user_and_group_redirect_when_configured(hub):
    r = hub.get(hub.session(None, GROUP), "/hub/home")
    assert (r.status_code, r.headers["Location"]) == (302, f"{EXTERNAL}/no-user")
    r = hub.get(hub.session("", GROUP), "/hub/home")
    assert (r.status_code, r.headers["Location"]) == (302, f"{EXTERNAL}/no-user")
    s = hub.session("carol", "students;staff")
    r = hub.get(s, "/hub/home")
    assert (r.status_code, r.headers["Location"]) == (302, f"{EXTERNAL}/no-group")
    assert not logged_in(s)


def test_missing_user_and_group_get_a_403_page_when_no_redirect(strict_hub):
    r = strict_hub.get(strict_hub.session(None, GROUP), "/hub/home")
    assert r.status_code == 403 and "did not say who you are" in r.text
    r = strict_hub.get(strict_hub.session("carol", "students"), "/hub/home")
    assert r.status_code == 403 and "not in a group that may use this hub" in r.text
    assert "<html" in r.text.lower()  # the hub's own error page, not a bare status


def test_the_text_null_is_no_name_and_no_group(hub):
    """What Apache's mod_headers sends for a claim that is not there: never a shared account "(null)"."""
    r = hub.get(hub.session("(null)", GROUP), "/hub/home")
    assert (r.status_code, r.headers["Location"]) == (302, f"{EXTERNAL}/no-user")
    r = hub.get(hub.session("carl", "(null)"), "/hub/home")
    assert (r.status_code, r.headers["Location"]) == (302, f"{EXTERNAL}/no-group")
    assert set(hub.whoami(hub.login("carl", f"(null);{GROUP}"))["groups"]) == {GROUP}


def test_names_a_shell_or_a_path_would_read_are_refused(hub):
    for name in ("a;id", "../etc", "a b", "$(id)", "-rf", "x" * 65):
        r = hub.get(hub.session(name, GROUP), "/hub/home")
        assert r.status_code == 403 and "not allowed to use this hub" in r.text, name


def test_groups_are_split_and_stripped_and_admin_groups_make_admins(hub):
    s = hub.login("dana", f"students ;{GROUP} ;  crc-admins ;;")
    me = hub.whoami(s)
    assert me["admin"] is True
    assert set(me["groups"]) == {GROUP, "crc-admins", "students"}
    plain = hub.whoami(hub.login("erin", f"students; {GROUP}"))
    assert plain["admin"] is False
    assert "crc-admins" not in plain["groups"]


def test_a_burst_of_sign_ins_each_lands_as_its_own_user(hub):
    """Twenty at once (the hub works on a few at a time; the others wait their turn): each is signed in as itself."""
    names = [f"burst-{i}" for i in range(20)]
    with ThreadPoolExecutor(len(names)) as pool:
        assert list(pool.map(lambda name: hub.whoami(hub.login(name))["name"], names)) == names


def test_losing_the_required_group_is_noticed_on_refresh(hub):
    s = hub.login("frank")
    time.sleep(1.5)
    s.headers["isMemberOf"] = "students"
    r = hub.get(s, "/hub/home")
    assert (r.status_code, r.headers.get("Location")) == (302, f"{EXTERNAL}/no-group")


def test_a_change_of_identity_is_noticed_on_refresh(hub):
    s = hub.login("grace")
    time.sleep(1.5)
    s.headers["Cn"] = "heidi"
    assert hub.get(s, "/hub/home").status_code == 200
    assert hub.whoami(s)["name"] == "heidi"


def test_an_admin_starts_another_users_server_as_the_admin_page_does(hub_factory, accounts):
    """With the admin's cookie, for a user who never signed in: the admin's headers say nothing of that user (this
    was a 500, from JupyterHub's refresh of the user the request is about)."""
    hub = hub_factory(base_site())
    (user,) = accounts("cht-ivan")
    admin = hub.login("cht-admin", f"{GROUP};crc-admins")
    assert hub.api(admin, "POST", "users", json={"usernames": [user]}).status_code == 201
    r = hub.api(admin, "POST", f"users/{user}/server")
    assert r.status_code in (201, 202), (r.status_code, r.text[:300])
    assert hub.wait_ready(admin, user)["ready"]
    assert hub.whoami(admin)["name"] == "cht-admin"  # the admin's own session is kept
    hub.stop_server(admin, user)


def test_logout_ends_the_hub_session_then_goes_to_the_sso_logout(hub, strict_hub):
    s = hub.login("ivan")
    r = s.get(f"{hub.url}/hub/logout", allow_redirects=False, headers={"Cn": "", "isMemberOf": ""})
    assert (r.status_code, r.headers["Location"]) == (302, f"{EXTERNAL}/logout")
    assert hub.api(s, "GET", "user").status_code == 403
    # without a logout_url, the hub's own logout page
    s = strict_hub.session("judy", GROUP)
    strict_hub.get(s, "/hub/home")
    assert strict_hub.whoami(s)["name"] == "judy"  # signed in before
    r = s.get(f"{strict_hub.url}/hub/logout", allow_redirects=False)
    assert r.status_code == 200 and "logged out" in r.text.lower()
    assert strict_hub.api(s, "GET", "user").status_code == 403  # and not after
    assert not logged_in(s)


def test_cookies_are_httponly_and_secure_behind_an_https_public_url(hub_factory):
    hub = hub_factory(base_site(hub={"public_url": "https://hub.example.edu/"}))
    s = hub.session("kate", GROUP)
    r = s.get(f"{hub.url}/hub/login", allow_redirects=False)
    cookies = r.raw.headers.getlist("Set-Cookie")
    session = [c for c in cookies if c.startswith(("jupyterhub-hub-login", "jupyterhub-session-id"))]
    assert len(session) == 2, cookies
    assert all("HttpOnly" in c and "Secure" in c for c in session), session


IMPERSONATE = """
import os, urllib.request, urllib.error
def status(url, headers):
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code
forged = {"Cn": "mallory-admin", "isMemberOf": f"{GROUP};crc-admins"}
tried = [status(f"{PROXY}/hub/login", forged),
         status(f"{HUB}/hub/login", {**forged, "X-Forwarded-For": "127.0.0.1"})]
readable = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        if SECRET.encode() in open(f"/proc/{pid}/environ", "rb").read():
            readable.append(pid)
    except OSError:
        pass
for folder in STATE:
    try:
        readable.append(os.listdir(folder))
    except OSError:
        pass
tried, readable
"""


def test_a_users_own_kernel_cannot_sign_in_as_anyone_else(hub_factory, accounts):
    """The attack of issue 14: a signed-in user's code on the hub host sends identity headers."""
    hub = hub_factory(base_site())
    (user,) = accounts("cht-mallory")
    s = hub.login(user)
    hub.start_server(s, user)
    code = (
        f"PROXY, HUB, SECRET, GROUP = {hub.url!r}, 'http://127.0.0.1:{hub.site['hub']['hub_port']}',"
        f" {PROXY_SECRET!r}, {GROUP!r}\n"
        f"STATE = [{str(hub.state)!r}]\n" + IMPERSONATE
    )
    # from loopback without the secret, through the proxy or straight to the hub: refused; and the
    # secret is in no process environment, no file the user can read
    assert hub.run_code(user, hub.token(s, user), code) == "([403, 403], [])"
    admin = hub.login("cht-admin", f"{GROUP};crc-admins")
    assert "mallory-admin" not in {u["name"] for u in hub.api(admin, "GET", "users").json()}
    hub.stop_server(s, user)

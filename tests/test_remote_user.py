"""Header login from the campus SSO proxy, against a real hub and configurable-http-proxy."""

import time

import pytest

from conftest import EXTERNAL, Hub, base_site

GROUP = "SAM-SSLVPNSAMUsers"
SECRET = "s3cret-from-the-front-door-0123456789"


@pytest.fixture(scope="module")
def hub(hub_root):
    """Redirects configured; identity re-checked every second."""
    site = base_site()
    site["auth"].update(refresh_seconds=1, logout_url=f"{EXTERNAL}/logout")
    hub = Hub(hub_root / "redirects", site).start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def strict_hub(hub_root):
    """No redirects (403 pages), only 127.0.0.1/32 trusted, and a proxy secret from the environment."""
    site = base_site(auth={"type": "remote_user", "required_groups": [GROUP],
                           "trusted_proxies": ["127.0.0.1/32"],
                           "proxy_secret": {"env": "CAMPUSHUB_TEST_PROXY_SECRET"}})
    hub = Hub(hub_root / "strict", site, env={"CAMPUSHUB_TEST_PROXY_SECRET": SECRET}).start()
    yield hub
    hub.stop()


def logged_in(session) -> bool:
    return any(c.name.startswith("jupyterhub-session-id") or c.name == "jupyterhub-hub-login"
               for c in session.cookies)


def test_login_from_trusted_proxy_lands_on_the_deep_link(hub):
    s = hub.session("alice", GROUP)
    r = hub.get(s, "/hub/token")
    assert r.status_code == 200
    assert r.url == f"{hub.url}/hub/token"
    assert hub.whoami(s)["name"] == "alice"


@pytest.mark.parametrize("forged", [{}, {"X-Forwarded-For": "127.0.0.1"}, {"X-Real-Ip": "127.0.0.1"},
                                    {"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1"}])
def test_headers_from_an_untrusted_address_never_log_in(strict_hub, forged):
    s = strict_hub.session("mallory", GROUP, source="127.0.0.2",
                           extra={**forged, "X-Campushub-Proxy-Secret": SECRET})
    r = strict_hub.get(s, "/hub/home")
    assert r.status_code == 403
    assert "not trusted" in r.text
    assert not logged_in(s)
    assert strict_hub.api(s, "GET", "user").status_code == 403


@pytest.mark.parametrize("secret, allowed", [(SECRET, True), (None, False), ("wrong", False),
                                             (SECRET + "x", False), ("", False)])
def test_proxy_secret_is_required_when_set(strict_hub, secret, allowed):
    extra = {} if secret is None else {"X-Campushub-Proxy-Secret": secret}
    s = strict_hub.session("bob", GROUP, extra=extra)
    r = strict_hub.get(s, "/hub/home")
    assert (r.status_code == 200) is allowed, r.status_code
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
    extra = {"X-Campushub-Proxy-Secret": SECRET}
    r = strict_hub.get(strict_hub.session(None, GROUP, extra=extra), "/hub/home")
    assert r.status_code == 403 and "did not say who you are" in r.text
    r = strict_hub.get(strict_hub.session("carol", "students", extra=extra), "/hub/home")
    assert r.status_code == 403 and "not in a group that may use this hub" in r.text
    assert "<html" in r.text.lower()  # the hub's own error page, not a bare status


def test_groups_are_split_and_stripped_and_admin_groups_make_admins(hub):
    s = hub.login("dana", f"students ;{GROUP} ;  crc-admins ;;")
    me = hub.whoami(s)
    assert me["admin"] is True
    assert {GROUP, "crc-admins", "students"} <= set(me["groups"])
    plain = hub.whoami(hub.login("erin", f"students; {GROUP}"))
    assert plain["admin"] is False
    assert "crc-admins" not in plain["groups"]


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


def test_logout_ends_the_hub_session_then_goes_to_the_sso_logout(hub, strict_hub):
    s = hub.login("ivan")
    r = s.get(f"{hub.url}/hub/logout", allow_redirects=False, headers={"Cn": "", "isMemberOf": ""})
    assert (r.status_code, r.headers["Location"]) == (302, f"{EXTERNAL}/logout")
    assert hub.api(s, "GET", "user").status_code == 403
    # without a logout_url, the hub's own logout page
    s = strict_hub.session("judy", GROUP, extra={"X-Campushub-Proxy-Secret": SECRET})
    strict_hub.get(s, "/hub/home")
    r = s.get(f"{strict_hub.url}/hub/logout", allow_redirects=False)
    assert r.status_code == 200 and "logged out" in r.text.lower()


def test_cookies_are_httponly_and_secure_behind_an_https_public_url(hub_factory):
    hub = hub_factory(base_site(hub={"public_url": "https://hub.example.edu/"}))
    s = hub.session("kate", GROUP)
    r = s.get(f"{hub.url}/hub/login", allow_redirects=False)
    cookies = r.raw.headers.getlist("Set-Cookie")
    session = [c for c in cookies if c.startswith(("jupyterhub-hub-login", "jupyterhub-session-id"))]
    assert len(session) == 2, cookies
    assert all("HttpOnly" in c and "Secure" in c for c in session), session

"""The state directory on the embedded default: private secrets, made once, reused across restarts."""

import re
import stat

from conftest import base_site

SITE = base_site(auth={"type": "shared_password"})
SECRETS = ["jupyterhub_cookie_secret", "proxy_auth_token", "shared_password", "jupyterhub.sqlite"]


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def password_login(hub, name, password):
    s = hub.session()
    hub.get(s, "/hub/login")
    return s, s.post(f"{hub.url}/hub/login", data={"username": name, "password": password,
                                                    "_xsrf": s.cookies.get("_xsrf", path="/hub/")},
                     allow_redirects=False)


def test_secrets_are_private_and_survive_a_restart_with_the_login(hub_factory):
    hub = hub_factory(SITE)
    assert mode(hub.state) == 0o700
    for name in SECRETS:
        assert mode(hub.state / name) == 0o600, name
    before = {name: (hub.state / name).read_text() for name in SECRETS[:3]}

    printed = re.findall(r"the shared password for this hub is (\S+)", hub.log.read_text())
    assert printed == [before["shared_password"].strip()]

    s, wrong = password_login(hub, "ada", "not-the-password")
    assert wrong.status_code == 403 and hub.api(s, "GET", "user").status_code == 403
    s, r = password_login(hub, "ada", printed[0])
    assert r.status_code == 302, r.text[:300]
    assert hub.whoami(s)["name"] == "ada"

    hub.stop()
    hub.start()
    assert {name: (hub.state / name).read_text() for name in SECRETS[:3]} == before
    assert len(re.findall(r"the shared password for this hub is", hub.log.read_text())) == 1  # printed once
    assert hub.whoami(s)["name"] == "ada"  # the old cookie still logs ada in

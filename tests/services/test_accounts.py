"""Users who passed the SSO but have no account on this cluster (issue 13): a page in words, never a 500."""

import pwd
import re
import subprocess

import pytest

from harness import EXTERNAL, LAB_IMAGE, base_site, free_port, kill_processes_of

MINE = {"slug": "mine", "name": "JupyterLab as you", "backend": "local", "system_users": True, "default": True}
NO_ACCOUNT = "no account on this cluster yet"


def without_account(name: str) -> str:
    subprocess.run(["userdel", "--remove", name], capture_output=True)
    return name


@pytest.fixture(scope="module")
def hub(engine, hubs):
    """A profile as the user's own account, and a container profile that needs no account of theirs."""
    port = free_port(privileged=True)  # users' code runs on the hub's host: its ports are below 1024
    auth = {**base_site()["auth"], "missing_account_redirect": f"{EXTERNAL}/accounts"}
    site = base_site(
        auth=auth,
        hub={"hub_ip": "0.0.0.0", "hub_port": port},
        container={"socket": engine, "hub_connect_url": f"http://host.containers.internal:{port}"},
        profiles=[
            MINE,
            {"slug": "lab", "name": "JupyterLab in a container", "backend": "container", "image": LAB_IMAGE},
        ],
    )
    hub = hubs.start(site, "accounts")
    yield hub
    hub.stop()


def test_a_user_without_an_account_gets_words_and_the_profiles_they_can_use(hub):
    user = without_account("cht-noaccount")
    s = hub.login(user)
    form = hub.get(s, "/hub/spawn")
    assert form.status_code == 200 and NO_ACCOUNT in form.text
    assert f'href="{EXTERNAL}/accounts"' in form.text
    assert re.search(r'value="mine"\s+disabled', form.text) and re.search(r'value="lab"\s+checked', form.text)
    r = hub.api(s, "POST", f"users/{user}/server", json={"profile": "mine"})
    assert r.status_code == 403 and r.json()["message"].startswith(f"You ({user}) have no account"), r.text
    page = hub.post_form(s, f"/hub/spawn/{user}", {"profile": "mine"})
    assert page.status_code == 403 and NO_ACCOUNT in page.text and f'href="{EXTERNAL}/accounts"' in page.text
    assert hub.whoami_user(s, user)["servers"] == {}
    hub.start_server(s, user, profile="lab")  # containers need no account of the user's
    assert hub.run_code(user, hub.token(s, user), "1+1") == "2"
    hub.stop_server(s, user)


def test_an_account_made_later_works_without_a_restart(hub):
    user = without_account("cht-later")
    s = hub.login(user)
    assert hub.api(s, "POST", f"users/{user}/server", json={"profile": "mine"}).status_code == 403
    subprocess.run(["useradd", "--create-home", user], check=True)
    try:
        assert NO_ACCOUNT not in hub.get(s, "/hub/spawn").text
        hub.start_server(s, user, profile="mine")
        uid = hub.run_code(user, hub.token(s, user), "import os; os.getuid()")
        assert uid == str(pwd.getpwnam(user).pw_uid)
        hub.stop_server(s, user)
    finally:
        kill_processes_of(user)
        without_account(user)


def test_a_site_with_one_profile_shows_the_words_instead_of_starting(hub_factory):
    hub = hub_factory(base_site(profiles=[MINE]))
    user = without_account("cht-single")
    s = hub.login(user)
    form = hub.get(s, "/hub/spawn")  # the only profile needs an account: a page, not an automatic start
    assert form.status_code == 200 and NO_ACCOUNT in form.text
    assert hub.whoami_user(s, user)["servers"] == {}


def test_accounts_are_made_when_the_site_says_so_for_valid_names_only(hub_factory):
    hub = hub_factory(base_site(profiles=[MINE], accounts={"create": True}))
    user = without_account("cht-made")
    s = hub.login(user)
    try:
        hub.start_server(s, user)
        assert hub.run_code(user, hub.token(s, user), "import os; os.getuid()") == str(pwd.getpwnam(user).pw_uid)
        hub.stop_server(s, user)
    finally:
        kill_processes_of(user)
        without_account(user)
    dotted = "cht.dotted"  # a name the hub accepts, and no system account can have
    s = hub.login(dotted)
    r = hub.api(s, "POST", f"users/{dotted}/server", json={})
    assert r.status_code == 403 and "is not a name a system account can have" in r.json()["message"], r.text
    assert subprocess.run(["id", dotted], capture_output=True).returncode != 0


def test_names_that_are_system_accounts_never_get_a_server(hub_factory):
    """SSO names that are accounts of the system or of its services (root, daemon, postgres, munge, the hub's own
    campushub, an account below the uid floor, one on the site's deny list): a 403 in words on the form and the API,
    no server, and no account made for them. On main, `Cn: postgres` got a kernel running as uid 101 (issue 20)."""
    from campushub.backends.accounts import SERVICE_ACCOUNTS

    subprocess.run(["useradd", "--system", "--no-create-home", "chsys-svc"], capture_output=True)
    assert pwd.getpwnam("chsys-svc").pw_uid < 1000
    deny = [*SERVICE_ACCOUNTS, "chdeny-svc"]
    hub = hub_factory(base_site(profiles=[MINE], accounts={"create": True, "deny": deny}))
    try:
        for name in ("root", "daemon", "postgres", "munge", "campushub", "chsys-svc", "chdeny-svc"):
            s = hub.login(name)
            form = hub.get(s, "/hub/spawn")
            assert form.status_code == 200 and "not a person&#39;s" in form.text, (name, form.text[-2000:])
            r = hub.api(s, "POST", f"users/{name}/server", json={})
            assert r.status_code == 403 and "not a person's" in r.json()["message"], (name, r.text)
            assert hub.whoami_user(s, name)["servers"] == {}, name
        assert subprocess.run(["id", "chdeny-svc"], capture_output=True).returncode != 0  # never made
    finally:
        subprocess.run(["userdel", "chsys-svc"], capture_output=True)


def test_a_site_whose_profiles_need_no_account_never_says_one_is_missing(engine, hub_factory):
    """Issue 21: on a container-only deployment the spawn page told every user "You have no account on this
    cluster yet", though no profile needs one."""
    port = free_port()
    lab = {"slug": "lab", "name": "JupyterLab", "backend": "container", "image": LAB_IMAGE, "default": True}
    site = base_site(
        hub={"hub_ip": "0.0.0.0", "hub_port": port},
        container={"socket": engine, "hub_connect_url": f"http://host.containers.internal:{port}"},
        profiles=[lab, {**lab, "slug": "big", "name": "Bigger", "default": False, "memory": "1G"}],
    )
    hub = hub_factory(site)
    user = without_account("cht-containers-only")
    form = hub.get(hub.login(user), "/hub/spawn")
    assert form.status_code == 200 and 'value="big"' in form.text
    assert NO_ACCOUNT not in form.text and "campushub-no-account" not in form.text

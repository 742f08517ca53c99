"""Profiles on the `local` backend: real JupyterLab servers and kernels through the proxy."""

import html
import pwd
import sqlite3

import psutil
import pytest
import requests

from harness import GROUP, base_site

LOCAL = {"backend": "local", "system_users": True}

SITE = base_site(
    spawner={"environment": {"SITE_VAR": "site", "SHARED": "from-spawner"}},
    branding={"request_access_url": "https://crc.example.edu/access"},
    profiles=[
        {"slug": "local", "name": "Small", **LOCAL, "default": True, "environment": {"PROFILE_VAR": "local"}},
        {
            "slug": "big",
            "name": "Big",
            **LOCAL,
            "environment": {"PROFILE_VAR": "big"},
            "choices": {"cpu": {"min": 1, "max": 2, "default": 1}, "memory": {"max": "2G", "default": "1G"}},
        },
        {
            "slug": "gpu",
            "name": "GPU",
            **LOCAL,
            "groups": ["gpu-users"],
            "environment": {"PROFILE_VAR": "gpu", "SHARED": "from-profile"},
        },
    ],
)

ENV_PROBE = "import os; '|'.join(os.environ.get(k, '-') for k in ('SITE_VAR', 'PROFILE_VAR', 'SHARED'))"


@pytest.fixture(scope="module")
def hub(hubs, accounts):
    accounts("cht-alice", "cht-carol", "cht-dave")
    hub = hubs.start(SITE, "profiles")
    yield hub
    hub.stop()


def test_default_profile_runs_a_kernel_through_the_proxy(hub):
    s = hub.login("cht-alice")
    hub.start_server(s, "cht-alice")  # no profile named: the default
    token = hub.token(s, "cht-alice")
    assert hub.run_code("cht-alice", token, "1+1") == "2"
    # shared settings are merged into the profile, not replaced by it
    assert hub.run_code("cht-alice", token, ENV_PROBE) == "'site|local|from-spawner'"
    # the server runs as the user, in the user's home
    account = pwd.getpwnam("cht-alice")
    assert hub.run_code("cht-alice", token, "import os; os.getuid(), os.getcwd()") == repr(
        (account.pw_uid, account.pw_dir)
    )
    hub.stop_server(s, "cht-alice")


def test_forbidden_and_unknown_profiles_are_refused_by_the_api(hub):
    s = hub.login("bob")
    r = hub.api(s, "POST", "users/bob/server", json={"profile": "gpu"})
    assert r.status_code == 403, r.text
    assert "may not use the profile 'gpu'" in r.json()["message"]
    r = hub.api(s, "POST", "users/bob/server", json={"profile": "nope"})
    assert r.status_code == 400 and r.json()["message"] == "There is no profile 'nope'.", r.text
    assert hub.whoami_user(s, "bob")["servers"] == {}


def test_the_form_offers_only_allowed_profiles_and_refuses_the_others(hub):
    s = hub.login("cht-carol")
    form = hub.get(s, "/hub/spawn")
    assert form.status_code == 200
    assert 'value="local" checked' in form.text and 'value="big"' in form.text  # the default, first time
    assert 'value="gpu"' not in form.text
    r = hub.post_form(s, "/hub/spawn/cht-carol", {"profile": "gpu"})
    assert r.status_code == 403
    assert "may not use the profile" in r.text
    assert hub.whoami_user(s, "cht-carol")["servers"] == {}


def test_a_refused_start_says_why_on_the_form_itself(hub):
    """Issue 21: `/hub/spawn?profile=gpu` gave a 403 page saying "Failed to start your server on the last attempt.
    Please contact admin", and a crafted form POST printed "Error: HTTP 403: ..." above an empty form. Now both
    answer on the form, in words, with the user's name and where to go next."""
    s = hub.login("cht-carol")
    for page in (
        hub.get(s, "/hub/spawn?profile=gpu"),
        hub.post_form(s, "/hub/spawn/cht-carol", {"profile": "gpu"}),
    ):
        assert page.status_code == 403
        words = html.escape("You (cht-carol) may not use the profile 'gpu': it is for some groups only.")
        link = '<a href="https://crc.example.edu/access">Ask for access.</a>'
        assert f'<p class="spawn-error-msg alert alert-danger">{words} {link}</p>' in page.text, page.text[-3000:]
        assert "Error: HTTP" not in page.text and "Failed to start your server" not in page.text
        assert 'name="profile" value="local"' in page.text  # the form, to choose another
    page = hub.post_form(s, "/hub/spawn/cht-carol", {"profile": "big", "big.memory": "64"})
    assert page.status_code == 400 and "memory: must be from " in page.text and "Error: HTTP" not in page.text
    assert hub.whoami_user(s, "cht-carol")["servers"] == {}


def test_a_group_member_starts_a_restricted_profile(hub):
    s = hub.login("cht-dave", f"{GROUP};gpu-users")
    assert 'value="gpu"' in hub.get(s, "/hub/spawn").text
    hub.start_server(s, "cht-dave", profile="gpu")
    token = hub.token(s, "cht-dave")
    assert hub.run_code("cht-dave", token, ENV_PROBE) == "'site|gpu|from-profile'"
    hub.stop_server(s, "cht-dave")


def test_local_choices_reach_the_server_as_its_limits(hub):
    s = hub.login("cht-alice")
    r = hub.api(s, "POST", "users/cht-alice/server", json={"profile": "big", "cpu": 3})
    assert r.status_code == 400 and r.json()["message"] == "cpu: must be from 1 to 2, not 3", r.text
    hub.start_server(s, "cht-alice", profile="big", cpu=2, memory="1536M")
    probe = "import os; os.environ['CPU_LIMIT'], os.environ['MEM_LIMIT']"
    assert hub.run_code("cht-alice", hub.token(s, "cht-alice"), probe) == repr(("2.0", str(1536 * 2**20)))
    hub.stop_server(s, "cht-alice")


def hub_process(hub):
    """The JupyterHub process that ``campushub up`` runs."""
    return next(p for p in psutil.Process(hub.process.pid).children() if "jupyterhub" in " ".join(p.cmdline()))


def stored_options(hub, user: str):
    with sqlite3.connect(hub.state / "jupyterhub.sqlite") as db:
        row = db.execute(
            "select spawners.user_options from spawners join users on spawners.user_id = users.id where users.name = ?",
            (user,),
        ).fetchone()
    return row and row[0]


def test_a_refused_start_request_leaves_nothing_behind(hub):
    """Start requests are judged before JupyterHub keeps them: on main a refused 20 MB option was stored anyway
    (the database grew to 42 MB, the hub's memory by 110 MB; issue 20). Bodies over 1 MiB are not even read."""
    user = "cht-dave"
    s = hub.login(user)
    hub.start_server(s, user, profile="big", cpu=2)  # what a user chose last, kept for the next form
    hub.stop_server(s, user)
    kept = stored_options(hub, user)
    database = (hub.state / "jupyterhub.sqlite").stat().st_size
    memory = hub_process(hub).memory_info().rss
    for method, body in (
        ("POST", {"profile": "big", "notes": "x" * 100_000}),  # within the hub's body limit: judged, refused
        ("PATCH", {"user_options": {"profile": "big", "notes": "x" * 100_000}}),
        ("POST", {"profile": "big", "cpu": 2, "prologue": "id"}),
    ):
        r = hub.api(s, method, f"users/{user}/server", json=body)
        assert r.status_code == 400, (method, r.status_code, r.text[:300])
    try:  # 20 MB: the hub refuses it before reading it (400), which its proxy passes on as 503, or closes on it
        r = hub.api(s, "POST", f"users/{user}/server", json={"profile": "big", "notes": "x" * 20 * 2**20})
        assert r.status_code in (400, 503), r.status_code
    except requests.ConnectionError:
        pass
    assert "Content-Length too long" in hub.log.read_text()  # tornado's refusal, before the body was read
    page = hub.post_form(s, f"/hub/spawn/{user}", {"profile": "big", "big.cpu": "2", "prologue": "x" * 100_000})
    assert page.status_code == 400 and "The options are larger than 16 KiB" in page.text, page.status_code
    assert stored_options(hub, user) == kept
    assert (hub.state / "jupyterhub.sqlite").stat().st_size - database < 64 * 1024
    assert hub_process(hub).memory_info().rss - memory < 40 * 2**20
    assert hub.whoami_user(s, user)["servers"] == {}

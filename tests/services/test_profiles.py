"""Profiles on the `local` backend: real JupyterLab servers and kernels through the proxy."""

import pwd

import pytest

from harness import GROUP, base_site

LOCAL = {"backend": "local", "system_users": True}

SITE = base_site(
    spawner={"environment": {"SITE_VAR": "site", "SHARED": "from-spawner"}},
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

"""The profiles spawner's logic, without a hub: what a start request may ask (the API's JSON and the form), what
it becomes, and what a saved state may bring back. The same boundary, driven through a real hub, is in
tests/services/test_profiles.py; here each rule is one fast case.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from traitlets.config import Config

from campushub.hub import configurer
from campushub.hub.options import MAX_OPTIONS_BYTES, MissingAccount, Refused
from campushub.hub.spawner import CampusProfilesSpawner
from campushub.sitefile.model import Site
from harness import EMBEDDED, PROXY_SECRET, SECRET_ENV, StubUser

LOCAL = {
    "slug": "small",
    "name": "Small",
    "backend": "local",
    "default": True,
    "choices": {"cpu": {"min": 0.5, "max": 4, "default": 1, "step": 0.5}, "memory": {"max": "8G", "default": "2G"}},
}
CONTAINER = {
    "slug": "images",
    "name": "Images",
    "backend": "container",
    "image": "localhost/campushub-lab-slim:latest",
    "choices": {"image": {"options": ["localhost/campushub-lab-slim:latest", "localhost/other:1"]}},
}
GPU = {"slug": "gpu", "name": "GPU", "backend": "local", "groups": ["gpu-users"]}
PLAIN = {"slug": "plain", "name": "Plain", "backend": "local"}
GIB = 2**30
# wrapspawner hands its child the wrapper's server, None here without a hub; traitlets warns of the keyword
pytestmark = pytest.mark.filterwarnings("ignore:Passing unrecognized arguments to super:DeprecationWarning")


@pytest.fixture(autouse=True)
def unprivileged_hub(monkeypatch):
    """As in test_config: profiles run as the hub's own account are refused when the hub is root (CI is), which
    tests/services/test_up.py tests for real; here the hub's account looks unprivileged."""
    monkeypatch.setattr("campushub.backends.local.os.geteuid", lambda: 1000)
    monkeypatch.setenv(SECRET_ENV, PROXY_SECRET)


def spawner(*profiles: dict, user: StubUser | None = None, **site) -> CampusProfilesSpawner:
    """The profiles spawner the site with ``profiles`` configures, for ``user`` (ada, in no group)."""
    config = Config()
    configurer.configure(config, Site.model_validate({**EMBEDDED, "profiles": list(profiles), **site}))
    return CampusProfilesSpawner(config=config, user=user or StubUser(), orm_spawner=None)


def run(coroutine):
    return asyncio.run(coroutine)


def refusal(coroutine) -> Refused:
    with pytest.raises(Refused) as refused:
        run(coroutine)
    return refused.value


# ---------------------------------------------------------------- the API's start request


def test_a_request_naming_nothing_gets_the_default_profile_and_its_defaults():
    s = spawner(LOCAL, CONTAINER)
    run(s.choose_profile({}))
    assert s.child_profile == "small"
    assert s.chosen == {"cpu": 1.0, "memory": 2 * GIB}
    assert s.user_options == {"profile": "small", "cpu": 1.0, "memory": "2G"}


def test_chosen_values_become_typed_and_are_kept_as_the_api_writes_them():
    s = spawner(LOCAL, CONTAINER)
    run(s.choose_profile({"profile": "small", "cpu": "2.5", "memory": "1536M"}))
    assert s.chosen == {"cpu": 2.5, "memory": 1536 * 2**20}
    assert s.user_options == {"profile": "small", "cpu": 2.5, "memory": "1536M"}
    assert s.last_choices == {"small": {"cpu": 2.5, "memory": "1536M"}}
    run(s.choose_profile({"profile": "images", "image": "localhost/other:1"}))
    assert s.child_profile == "images" and s.chosen == {"image": "localhost/other:1"}
    assert set(s.last_choices) == {"small", "images"}  # each profile's last choices, for its form


def test_the_child_gets_settings_from_the_site_and_the_typed_values_never_user_options():
    s = spawner(LOCAL)
    run(s.choose_profile({"cpu": 2, "memory": "4G"}))
    s.select_profile("small")
    assert s.child_config["user_options"] == {}
    assert (s.child_config["cpu_limit"], s.child_config["mem_limit"]) == (2.0, 4 * GIB)


@pytest.mark.parametrize(
    ("options", "status", "words"),
    [
        ([], 400, "Send the options as a JSON object."),
        ({"profile": "nope"}, 400, "There is no profile 'nope'."),
        ({"profile": ["small"]}, 400, "There is no profile"),
        ({"cmd": "/bin/sh"}, 400, "cmd: not a choice the profile 'small' offers (it offers cpu, memory)"),
        ({"cpu": 8}, 400, "cpu: must be from 0.5 to 4, not 8"),
        ({"cpu": True}, 400, "cpu: must be a number"),
        ({"cpu": "nan"}, 400, "cpu: must be a number"),
        ({"memory": "16G"}, 400, "memory: must be from 1G to 8G, not 16G"),
        ({"memory": "lots"}, 400, "memory: must be a size such as 4G or 512M, not 'lots'"),
        ({"profile": "images", "image": "docker.io/evil:latest"}, 400, "image: must be one of"),
        ({"profile": "images", "image": {"$ne": 1}}, 400, "image: must be one of"),
        ({"profile": "gpu"}, 403, "You (ada) may not use the profile 'gpu': it is for some groups only."),
        ({"profile": "plain", "cpu": 1}, 400, "cpu: not a choice the profile 'plain' offers (it offers none)"),
    ],
)
def test_what_the_api_refuses_in_words(options, status, words):
    refused = refusal(spawner(LOCAL, CONTAINER, GPU, PLAIN).judge(options))
    assert refused.status_code == status and words in refused.words, refused.words


def test_a_group_gets_its_profile_and_a_refusal_links_to_asking_for_access():
    site = {"branding": {"request_access_url": "https://crc.example.edu/access"}}
    refused = refusal(spawner(LOCAL, GPU, **site).judge({"profile": "gpu"}))
    assert (refused.url, refused.link) == ("https://crc.example.edu/access", "Ask for access.")
    member = spawner(LOCAL, GPU, user=StubUser(groups=("gpu-users",)), **site)
    assert run(member.judge({"profile": "gpu"})) == ("gpu", {})


def test_an_oversized_request_is_refused_before_it_is_read_further():
    options = {"profile": "small", "cpu": 1, "padding": "x" * MAX_OPTIONS_BYTES}
    refused = refusal(spawner(LOCAL).judge(options))
    assert refused.status_code == 400 and "larger than 16 KiB" in refused.words
    assert len(json.dumps(options)) > MAX_OPTIONS_BYTES


def test_a_refused_key_is_cut_short_in_the_message():
    refused = refusal(spawner(LOCAL).judge({"k" * 5000: 1}))
    assert len(refused.words) < 200 and refused.words.startswith("k" * 40 + ":")


# ---------------------------------------------------------------- the form


def test_the_form_sends_gibibytes_and_drops_other_profiles_fields():
    s = spawner(LOCAL, CONTAINER)
    form = {
        "profile": ["small"],
        "small.cpu": ["1.5"],
        "small.memory": ["2.5"],
        "images.image": ["localhost/other:1"],
        "_xsrf": ["token"],
    }
    assert run(s.options_from_form(form)) == {"profile": "small", "cpu": "1.5", "memory": "2560M"}


@pytest.mark.parametrize("memory", ["inf", "nan", "1e400", "-1"])
def test_a_form_number_that_is_no_size_is_refused_not_crashed(memory):
    refused = refusal(spawner(LOCAL).options_from_form({"profile": ["small"], "small.memory": [memory]}))
    assert refused.status_code == 400 and "memory:" in refused.jupyterhub_html_message


def test_a_field_the_form_never_had_is_refused_by_name_on_the_form():
    refused = refusal(spawner(LOCAL).options_from_form({"profile": ["small"], "cmd": ["/bin/sh"]}))
    assert refused.jupyterhub_message is None  # the form shows the HTML message, not "HTTP 400: Bad Request"
    assert refused.jupyterhub_html_message.startswith("cmd: not a choice the profile")


def test_the_form_offers_last_times_values_within_bounds_and_escapes_names():
    s = spawner(LOCAL, {**PLAIN, "name": "<b>Plain</b>"})
    s.last_choices = {"small": {"cpu": 2.5, "memory": "3G"}}
    form = run(s.options_form())
    assert 'name="small.cpu"' in form and 'value="2.5"' in form and 'value="3"' in form
    assert "&lt;b&gt;Plain&lt;/b&gt;" in form and "<b>Plain</b>" not in form
    s.last_choices = {"small": {"cpu": 64}}  # no longer allowed (the site lowered its bounds): the default
    assert 'value="1"' in run(s.options_form())


def test_one_profile_without_choices_needs_no_form():
    assert run(spawner(PLAIN).options_form()) == ""
    assert run(spawner(LOCAL).options_form()) != ""


# ---------------------------------------------------------------- saved state


def test_the_state_keeps_the_profile_and_the_typed_values_and_never_the_settings():
    s = spawner(LOCAL)
    run(s.choose_profile({"cpu": 3, "memory": "4G"}))
    state = s.get_state()
    assert state["profile"] == "small" and state["chosen"] == {"cpu": 3.0, "memory": 4 * GIB}
    assert "child_conf" not in state
    again = spawner(LOCAL)
    again.load_state(state)
    assert (again.child_profile, again.chosen) == ("small", {"cpu": 3.0, "memory": 4 * GIB})


def test_a_tampered_state_brings_back_nothing_the_profile_does_not_offer():
    s = spawner(LOCAL, CONTAINER)
    s.load_state(
        {
            "profile": "small",
            "chosen": {"cpu": 64, "memory": 4 * GIB, "cmd": "/bin/sh"},
            "child_conf": {"cmd": ["/bin/sh", "-c", "id"]},
            "last_end": "not a dict",
        }
    )
    assert s.chosen == {"memory": 4 * GIB}
    assert s.child_spawner.cmd != ["/bin/sh", "-c", "id"] and s.last_end == {}
    s.load_state({"profile": "images", "chosen": {"image": "docker.io/evil:latest"}})
    assert s.chosen == {}


def test_a_profile_the_site_no_longer_has_falls_back_to_the_default():
    s = spawner(LOCAL, PLAIN)
    s.load_state({"profile": "removed-gpu", "chosen": {"cpu": 2}})
    assert s.child_profile == "small" and s.chosen == {}


def test_a_stopped_server_keeps_its_last_choices_and_how_it_ended():
    s = spawner(LOCAL)
    run(s.choose_profile({"cpu": 2}))
    s.last_end = {"words": "Your server ran out of memory."}
    s.clear_state()
    assert s.chosen == {} and s.last_choices["small"]["cpu"] == 2.0 and s.last_end["words"].startswith("Your")


# ---------------------------------------------------------------- accounts


def test_a_profile_run_as_the_users_account_refuses_a_system_name_and_a_missing_account():
    site = {
        "auth": {"type": "remote_user", "proxy_secret": {"env": SECRET_ENV}},
        "accounts": {"deny": ["postgres"]},
    }
    own = {**PLAIN, "system_users": True}
    refused = refusal(spawner(own, user=StubUser("postgres"), **site).judge({}))
    assert isinstance(refused, MissingAccount) and "not a person's" in refused.words
    refused = refusal(spawner(own, user=StubUser("nobody-has-this-name"), **site).choose_profile({}))
    assert isinstance(refused, MissingAccount) and "no account on this cluster yet" in refused.words


def test_a_slurm_accounts_choice_reaches_the_batch_script_and_the_ledger(monkeypatch):
    monkeypatch.setattr("campushub.hub.spawner.has_account", lambda name: True)  # ada's account: not this test's
    batch = {"slug": "batch", "name": "Batch", "backend": "slurm", "account": "crc-teach"}
    batch["choices"] = {"account": {"options": ["crc-teach", "crc-other"]}}
    s = spawner(batch, slurm={"conf": "/etc/slurm/test.conf"})
    run(s.choose_profile({"account": "crc-other"}))
    s.select_profile("batch")
    assert "--account=crc-other" in s.child_config["req_options"].split()  # batchspawner's script has no account
    assert s.child_config["req_account"] == "crc-other"  # what the ledger records (usage_facts)

"""docs/architecture.md's recipe for a fourth backend, followed for a made-up one: the slice below, listed with the
others, is all it takes for the site file, ``check``, the config, the start form and API, the start page, the
doctor and the generated docs to know it. A part of campushub that still needed an edit elsewhere fails here.

The backend is a fake (there is no ``batchqueue`` service): its spawner class is JupyterHub's own local one, and
nothing is started.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import pytest
import yaml
from pydantic import Field
from traitlets.config import Config

from campushub.backends import BACKENDS, used
from campushub.backends.base import Backend, ProfileBase, limits
from campushub.hub import configurer
from campushub.hub.spawner import CampusProfilesSpawner
from campushub.ops import doctor
from campushub.sitefile import docs, read
from campushub.sitefile.choices import Choices, NumberChoice
from campushub.sitefile.errors import SiteError
from campushub.sitefile.fields import Model, Name
from campushub.sitefile.model import site_model
from harness import EMBEDDED, StubUser, free_port

# ---------------------------------------------------------------- step 1 and 2: the slice


class QueueDefaults(Model):
    """Defaults for every ``batchqueue`` profile."""

    queue: Name = Field("short", description="the queue servers wait in")


class QueueChoices(Choices):
    """What users of a ``batchqueue`` profile may choose."""

    cpu: NumberChoice | None = Field(None, description="CPUs")


class QueueProfile(ProfileBase):
    """A server that waits in a queue."""

    backend: Literal["batchqueue"]
    choices: QueueChoices | None = Field(None, description="what users choose when they start it, within bounds")
    queue: Name | None = Field(None, description="the queue; default `batchqueue.queue`")
    priority: Annotated[int, Field(ge=0, le=9)] = Field(0, description="its priority in the queue")


class BatchQueue(Backend):
    name = "batchqueue"
    profile = QueueProfile
    defaults = QueueDefaults
    choices = QueueChoices
    persistent = True

    def card(self, site, profile):
        return {"gets": "what the queue gives", "runs": "in the queue", "keeps": "nothing"}

    def stops(self, profile):
        return ["when the queue says so"]

    def problems(self, site, index, profile):
        found = super().problems(site, index, profile)
        if profile.priority > 5 and not profile.groups:
            found.append(f"profiles.{index}.priority: above 5 only for some groups (set groups)")
        return found

    def choice_settings(self, settings, chosen):
        return limits(chosen)

    def doctor(self, site, known):
        return [f"batchqueue: {len(known.servers) if known else 0} servers known to the hub, 1 orphan job"]

    def spawner_class(self, profile):
        return "jupyterhub.spawner.SimpleLocalProcessSpawner"

    def spawner(self, site, index, profile, config):
        config["environment"] = {**config["environment"], "QUEUE": profile.queue or site.batchqueue.queue}
        return self.spawner_class(profile), config


FOURTH = BatchQueue()
PROFILE = {
    "slug": "queued",
    "name": "Queued",
    "backend": "batchqueue",
    "priority": 3,
    "choices": {"cpu": {"max": 8, "default": 2}},
}


# ---------------------------------------------------------------- step 3: listed with the others


@pytest.fixture(autouse=True)
def listed(monkeypatch):
    """The fourth backend in ``backends/__init__.py``'s list (and the site model built from that list)."""
    monkeypatch.setitem(BACKENDS, FOURTH.name, FOURTH)
    monkeypatch.setattr(read, "Site", site_model(BACKENDS))
    monkeypatch.setattr(docs, "Site", read.Site)


def site_file(tmp_path, *profiles, **sections):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({**EMBEDDED, "profiles": list(profiles), **sections}))
    return path


def test_the_site_file_takes_its_profiles_and_its_section(tmp_path):
    site = read.load_site(site_file(tmp_path, PROFILE, batchqueue={"queue": "long"}))
    assert site.profiles[0].priority == 3 and site.batchqueue.queue == "long"
    assert used(site) == [FOURTH]


def test_check_names_its_problems_and_lists_it_among_the_backends(tmp_path):
    with pytest.raises(SiteError) as refused:
        read.load_site(site_file(tmp_path, {**PROFILE, "priority": 7}))
    assert refused.value.problems == ["profiles.0.priority: above 5 only for some groups (set groups)"]
    with pytest.raises(SiteError) as refused:
        read.load_site(site_file(tmp_path, {**PROFILE, "backend": "batchqeue"}))
    assert "must be one of local, container, slurm, batchqueue" in refused.value.problems[0]
    assert configurer.class_problems(read.load_site(site_file(tmp_path, PROFILE))) == []


def test_the_config_the_start_page_and_the_start_request_know_it(tmp_path, monkeypatch):
    monkeypatch.setattr("campushub.backends.local.os.geteuid", lambda: 1000)  # as in test_config
    site = read.load_site(site_file(tmp_path, PROFILE, {"slug": "lab", "name": "Lab", "backend": "local"}))
    c = Config()
    configurer.configure(c, site)
    ((_name, slug, spawner, settings), _lab) = c.CampusProfilesSpawner.profiles
    assert (slug, spawner) == ("queued", "jupyterhub.spawner.SimpleLocalProcessSpawner")
    assert settings["environment"]["QUEUE"] == "short"
    assert c.JupyterHub.cleanup_servers is False  # its servers outlive the hub
    card = c.CampusProfilesSpawner.profile_cards["queued"]
    assert card["runs"] == "in the queue" and card["stops"] == "when the queue says so"
    s = CampusProfilesSpawner(config=c, user=StubUser(), orm_spawner=None)
    assert asyncio.run(s.judge({"profile": "queued", "cpu": 4})) == ("queued", {"cpu": 4.0})
    form = asyncio.run(s.options_form())
    assert 'name="queued.cpu"' in form and "CPUs" in form
    s.chosen = {"cpu": 4.0}
    s.select_profile("queued")
    assert s.child_config["cpu_limit"] == 4.0


def test_the_doctor_asks_it_and_the_docs_have_its_tables(tmp_path):
    site = read.load_site(site_file(tmp_path, PROFILE, hub={"bind_url": f"http://127.0.0.1:{free_port()}"}))
    findings = doctor.examine(site)
    assert findings[0].startswith("hub: nothing answers")  # no hub runs here
    assert findings[-1] == "batchqueue: 0 servers known to the hub, 1 orphan job"
    tables = docs.models()
    assert tables["profiles.batchqueue"][0] is QueueProfile and tables["batchqueue"][0] is QueueDefaults

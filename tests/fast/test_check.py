"""`campushub check`: the command's own code, on good and bad site files.

Most tests call the command line's ``main`` in this process (the same code the ``campushub``
program runs, a second each faster); a few run the installed program itself.
"""

import subprocess
from dataclasses import dataclass

import pytest
import yaml

from campushub.cli import main
from harness import CAMPUSHUB, EMBEDDED, REPO, base_site

EXAMPLES = REPO / "examples"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def check(tmp_path, capsys):
    """``check(site)``: run ``campushub check --offline`` on ``site`` (a dict, or ``text``)."""

    def run(site, text=None) -> Result:
        path = tmp_path / "site.yaml"
        path.write_text(text if text is not None else yaml.safe_dump(site))
        code = main(["check", "--offline", "--config", str(path)])
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def with_profiles(*profiles, **sections):
    return base_site(profiles=list(profiles), **sections)


SAML = {"idp_entity_id": "https://idp.example.edu/idp/shibboleth", "idp_metadata_file": "/etc/hostname"}
SLURM_NODE = {"slug": "batch", "name": "Batch", "backend": "slurm"}
LOCAL = {"slug": "local", "name": "Local", "backend": "local", "system_users": True}


def test_valid_site_prints_ok(check):
    result = check(base_site())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize(
    "site, path, reason",
    [
        pytest.param(
            base_site(hub={"bind_ulr": "http://127.0.0.1:8000"}), "hub.bind_ulr", "unknown key", id="unknown-key"
        ),
        pytest.param(base_site(culler={"timeout": "an hour"}), "culler.timeout", "integer", id="wrong-type"),
        pytest.param(
            base_site(auth={"type": "remote_user", "trusted_proxies": ["10.0.0.1/8"]}),
            "auth.trusted_proxies.0",
            "network",
            id="bad-cidr",
        ),
        pytest.param(with_profiles({**LOCAL, "memory": "4 gigs"}), "profiles.0.memory", "size", id="bad-memory"),
        pytest.param(
            with_profiles(LOCAL, {**LOCAL, "name": "Again"}), "profiles.1.slug", "already used", id="duplicate-slug"
        ),
        pytest.param(with_profiles(), "profiles", "at least 1", id="no-profiles"),
        pytest.param(
            base_site(auth={"type": "remote_user", "missing_user_redirect": "ftp://x.edu/"}),
            "auth.missing_user_redirect",
            "http",
            id="redirect-not-http",
        ),
        pytest.param(
            with_profiles({**LOCAL, "default": True}, {**LOCAL, "slug": "other", "default": True}),
            "profiles.1.default",
            "only one",
            id="two-defaults",
        ),
        pytest.param(
            with_profiles({"slug": "x", "name": "X", "backend": "cloud"}),
            "profiles.0.backend",
            "local",
            id="unknown-backend",
        ),
        pytest.param(
            base_site(auth={"type": "remote_user", "proxy_secret": {"env": "A", "file": "b"}}),
            "auth.proxy_secret",
            "exactly one",
            id="two-secret-sources",
        ),
        pytest.param(
            with_profiles({**LOCAL, "groups": ["staff"]}), "profiles.0.groups", "default", id="closed-default-profile"
        ),
        pytest.param(
            base_site(
                auth={"type": "remote_user"},
                front_door={
                    "oidc": {
                        "metadata_url": "https://idp.example.edu/.well-known/x",
                        "client_id": "c",
                        "client_secret": {"env": "S"},
                    }
                },
            ),
            "front_door",
            "proxy_secret",
            id="front-door-without-proxy-secret",
        ),
        pytest.param(
            base_site(front_door={"certificate": {"source": "acme"}, "oidc": {}}),
            "front_door.certificate",
            "acme_email",
            id="acme-without-email",
        ),
        pytest.param(base_site(front_door={}), "front_door", "oidc (OpenID Connect) or saml", id="door-without-sso"),
        # Slurm on other hosts: a hub API the nodes would reach as themselves, or one the hub does not listen at
        pytest.param(
            with_profiles(SLURM_NODE, slurm={"hub_host_runs_jobs": False}),
            "hub.hub_ip",
            "which a compute node cannot",
            id="nodes-reach-a-loopback-hub",
        ),
        pytest.param(
            with_profiles(SLURM_NODE, slurm={"hub_host_runs_jobs": False, "hub_connect_url": "http://10.0.0.2:8081"}),
            "hub.hub_ip",
            "listens on loopback only",
            id="hub-not-listening-where-nodes-reach-it",
        ),
        pytest.param(
            base_site(
                front_door={
                    "oidc": {"metadata_url": "https://i.edu/x", "client_id": "c", "client_secret": {"env": "S"}},
                    "saml": SAML,
                }
            ),
            "front_door",
            "one of them",
            id="door-with-two-sign-ins",
        ),
        pytest.param(
            base_site(
                front_door={"saml": {**SAML, "idp_metadata_file": None, "idp_metadata_url": "https://md.x.org/e"}}
            ),
            "front_door.saml",
            "idp_metadata_certificate",
            id="saml-metadata-url-unsigned",
        ),
        pytest.param(
            base_site(front_door={"saml": {**SAML, "idp_entity_id": 'https://idp.edu/"><x'}}),
            "front_door.saml.idp_entity_id",
            "pattern",
            id="saml-entity-id-with-markup",
        ),
        pytest.param(
            base_site(auth={**base_site()["auth"], "groups_separator": ","}, front_door={"saml": SAML}),
            "auth.groups_separator",
            "joins a user's groups with ';'",
            id="saml-groups-separator",
        ),
        # choices: bounds that cannot hold, and a choice beside the profile's own value
        pytest.param(
            with_profiles({**LOCAL, "choices": {"cpu": {"min": 1, "max": 4, "default": 8}}}),
            "profiles.0.choices.cpu.default",
            "from 1 to 4",
            id="choice-default-out-of-bounds",
        ),
        pytest.param(
            with_profiles({**LOCAL, "choices": {"memory": {"min": "8G", "max": "4G", "default": "4G"}}}),
            "profiles.0.choices.memory.default",
            "8G",
            id="choice-min-above-max",
        ),
        pytest.param(
            with_profiles({**LOCAL, "cpu": 2, "choices": {"cpu": {"max": 4, "default": 2}}}),
            "profiles.0.cpu",
            "either cpu or choices.cpu",
            id="choice-beside-the-value",
        ),
        pytest.param(
            with_profiles({**LOCAL, "choices": {"runtime": {"max": "01:00:00", "default": "00:30:00"}}}),
            "profiles.0.choices.runtime",
            "unknown key",
            id="choice-the-backend-lacks",
        ),
        pytest.param(
            with_profiles({"slug": "s", "name": "S", "backend": "slurm", "choices": {"partition": {"options": []}}}),
            "profiles.0.choices.partition.options",
            "at least 1",
            id="choice-empty-list",
        ),
        pytest.param(
            with_profiles(
                {
                    "slug": "s",
                    "name": "S",
                    "backend": "slurm",
                    "choices": {"partition": {"options": ["a"], "default": "b"}},
                }
            ),
            "profiles.0.choices.partition",
            "not one of the options",
            id="choice-default-not-listed",
        ),
        *(
            pytest.param(
                with_profiles({**SLURM_NODE, "runtime": runtime}), "profiles.0.runtime", reason, id=f"slurm-runtime-{i}"
            )
            for runtime, reason, i in (
                ("00:30", "not a time limit in HH:MM:SS or D-HH:MM:SS", "read-as-seconds-by-slurm"),
                ("1-02", "not a time limit in HH:MM:SS", "days-hours"),
                ("30", "not a time limit in HH:MM:SS", "bare-minutes"),
                ("02:75:00", "not a time limit in HH:MM:SS", "minutes-past-59"),
                ("00:00:00", "is none", "zero"),
            )
        ),
        pytest.param(
            with_profiles(
                {
                    "slug": "s",
                    "name": "S",
                    "backend": "slurm",
                    "gres": "gpu:1",
                    "choices": {"gpus": {"max": 2, "default": 0}},
                }
            ),
            "profiles.0.gres",
            "choices.gpus",
            id="choice-gpus-beside-gres",
        ),
        pytest.param(
            with_profiles(
                {"slug": "s", "name": "S", "backend": "slurm", "choices": {"cpu": {"min": 0, "max": 2, "default": 1}}}
            ),
            "profiles.0.choices.cpu.min",
            "at least 1 CPU",
            id="choice-no-cpus",
        ),
        pytest.param(
            with_profiles(
                {
                    "slug": "s",
                    "name": "S",
                    "backend": "slurm",
                    "choices": {"partition": {"options": ["campus --uid=0"]}},
                }
            ),
            "profiles.0.choices.partition.options.0",
            "pattern",
            id="choice-option-a-shell-reads",
        ),
        # issue 14: combinations in which a user's own code could sign in as someone else
        pytest.param(
            with_profiles({**LOCAL, "system_users": False}),
            "profiles.0.system_users",
            "hub's account",
            id="sso-with-servers-as-the-hub",
        ),
        pytest.param(
            base_site(auth={"type": "remote_user"}), "auth.proxy_secret", "hub's host", id="sso-local-without-secret"
        ),
        pytest.param(
            with_profiles({"slug": "s", "name": "S", "backend": "slurm"}, auth={"type": "remote_user"}),
            "auth.proxy_secret",
            "Slurm node",
            id="sso-slurm-without-secret",
        ),
        pytest.param(
            {**EMBEDDED, "hub": {"bind_url": "http://0.0.0.0:8000"}},
            "hub.bind_url",
            "not loopback",
            id="shared-password-on-the-network",
        ),
        pytest.param(
            {**EMBEDDED, "profiles": [{**LOCAL, "system_users": True}]},
            "profiles.0.system_users",
            "any name",
            id="shared-password-with-system-users",
        ),
        pytest.param(
            {**EMBEDDED, "profiles": [{"slug": "s", "name": "S", "backend": "slurm"}]},
            "profiles.0.backend",
            "any name",
            id="shared-password-with-slurm",
        ),
    ],
)
def test_invalid_site_names_field_and_exits_2(check, site, path, reason):
    result = check(site)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith(f"{path}: ") and reason in line for line in lines), result.stderr


def test_every_problem_is_reported(check):
    site = base_site(culler={"timeout": -1, "every": "x"}, hub={"colour": "red"})
    lines = check(site).stderr.strip().splitlines()
    assert {line.split(":")[0] for line in lines} == {"culler.timeout", "culler.every", "hub.colour"}


def test_not_yaml_and_missing_file(check, tmp_path):
    result = check(None, text="hub: [unclosed")
    assert result.returncode == 2 and "not valid YAML" in result.stderr
    missing = subprocess.run(
        [CAMPUSHUB, "check", "--config", str(tmp_path / "nope.yaml")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no such site file" in missing.stderr


def test_seed_environment_variables_override_the_file(tmp_path):
    from campushub.sitefile.read import load_site

    site = base_site(
        hub={"hub_ip": "127.0.0.1"},
        container={"image": "localhost/lab:file"},
        profiles=[{"slug": "c", "name": "C", "backend": "container", "default": True}],
    )
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site))
    env = {
        "HUB_IP": "jupyterhub",
        "DOCKER_JUPYTER_CONTAINER": "localhost/lab:env",
        "DOCKER_NETWORK_NAME": "jupyterhub-net",
        "DOCKER_NOTEBOOK_DIR": "/home/jovyan/data",
    }
    loaded = load_site(path, environ=env)
    assert loaded.hub.hub_ip == "jupyterhub"
    assert (loaded.container.image, loaded.container.network, loaded.container.notebook_dir) == (
        "localhost/lab:env",
        "jupyterhub-net",
        "/home/jovyan/data",
    )
    assert load_site(path, environ={}).container.image == "localhost/lab:file"


def test_container_profile_needs_an_image_from_file_or_environment(check, monkeypatch):
    site = base_site(profiles=[{"slug": "c", "name": "C", "backend": "container", "default": True}])
    monkeypatch.delenv("DOCKER_JUPYTER_CONTAINER", raising=False)
    result = check(site)
    assert result.returncode == 2 and result.stderr.startswith("profiles.0.image: no image"), result.stderr
    monkeypatch.setenv("DOCKER_JUPYTER_CONTAINER", "localhost/lab:1")
    result = check(site)
    assert result.returncode == 0, result.stderr


def test_local_limits_are_a_warning_not_an_error(check):
    result = check(with_profiles({**LOCAL, "cpu": 1, "memory": "4G"}))
    assert result.returncode == 0 and result.stdout.strip() == "ok"
    assert "profiles.0.cpu: the local backend cannot enforce" in result.stderr
    assert "profiles.0.memory: the local backend cannot enforce" in result.stderr


def test_sharing_identical_pages_warns_when_it_would_share_nothing_here(check, tmp_path, monkeypatch):
    from campushub.backends import local

    run = tmp_path / "ksm_run"
    monkeypatch.setattr(local, "KSM_RUN", run)
    shared = {**LOCAL, "share_identical_pages": True}
    field = "profiles.0.share_identical_pages"
    result = check(with_profiles(shared))  # a kernel without KSM
    assert result.returncode == 0 and f"{field}: this host's kernel has no KSM" in result.stderr, result.stderr
    run.write_text("0\n")
    result = check(with_profiles(shared))
    assert f"{field}: the host's KSM is stopped" in result.stderr and f"echo 1 > {run}" in result.stderr
    run.write_text("1\n")
    assert "share_identical_pages" not in check(with_profiles(shared)).stderr
    result = check(with_profiles({**shared, "fast_start": False}))
    assert f"{field}: only servers forked from the pre-imported parent share pages" in result.stderr
    assert "share_identical_pages" not in check(with_profiles(LOCAL)).stderr  # off: nothing to say


def test_starter_file_from_init_is_valid_and_never_overwritten(tmp_path):
    config = tmp_path / "campushub.yaml"
    made = subprocess.run([CAMPUSHUB, "init", "--config", str(config)], capture_output=True, text=True, check=True)
    assert made.stdout.strip() == f"campushub: wrote {config}"
    result = subprocess.run([CAMPUSHUB, "check", "--config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    edited = config.read_text().replace("timeout: 3600", "timeout: 1800")
    assert edited != config.read_text()
    config.write_text(edited)
    again = subprocess.run([CAMPUSHUB, "init", "--config", str(config)], capture_output=True, text=True, check=True)
    assert config.read_text() == edited  # the admin's edit survives
    assert "already exists" in again.stderr and again.stdout == ""


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(check, example):
    result = check(None, text=example.read_text())
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_a_secret_file_others_can_read_is_refused_when_users_run_code_here(check, tmp_path):
    secret = tmp_path / "proxy-secret"
    secret.write_text("a-secret-of-at-least-16-characters\n")
    secret.chmod(0o644)
    site = base_site(auth={"type": "remote_user", "proxy_secret": {"file": str(secret)}})
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    up = subprocess.run(
        [CAMPUSHUB, "up", "--config", str(tmp_path / "site.yaml")], capture_output=True, text=True, timeout=60
    )
    assert up.returncode == 2
    assert up.stderr.startswith("auth.proxy_secret.file: ") and "chmod 600" in up.stderr, up.stderr
    loose = check(site)  # check may run elsewhere than the hub: it warns
    assert loose.returncode == 0 and "auth.proxy_secret.file: " in loose.stderr and "chmod 600" in loose.stderr
    secret.chmod(0o600)
    tight = check(site)
    assert tight.returncode == 0 and "auth.proxy_secret" not in tight.stderr, tight.stderr


@pytest.mark.parametrize(
    "metrics, path, reason",
    [
        pytest.param({"enabled": True}, "metrics.token", "required when metrics are enabled", id="no-token"),
        pytest.param(
            {"enabled": True, "token": "in-clear-0123456789"}, "metrics.token", "valid dictionary", id="clear"
        ),
        pytest.param({"token": {"env": "A", "file": "b"}}, "metrics.token", "exactly one of", id="two-sources"),
        pytest.param({"enable": True}, "metrics.enable", "did you mean enabled?", id="typo"),
    ],
)
def test_metrics_section_problems(check, metrics, path, reason):
    result = check(base_site(metrics=metrics))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}: ") and reason in result.stderr, result.stderr


def test_a_metrics_token_missing_here_is_a_warning(check, tmp_path):
    site = base_site(metrics={"enabled": True, "token": {"env": "CAMPUSHUB_TEST_UNSET_TOKEN"}})
    result = check(site)
    assert result.returncode == 0
    assert "metrics.token.env: CAMPUSHUB_TEST_UNSET_TOKEN is not set here" in result.stderr, result.stderr
    result = check(base_site(metrics={"enabled": True, "token": {"file": str(tmp_path / "none")}}))
    assert result.returncode == 0 and "metrics.token.file: " in result.stderr, result.stderr


SLURM_CHOOSING = {"slug": "s", "name": "S", "backend": "slurm"}


@pytest.mark.parametrize(
    "profile, choice, spec, field, reason",
    [
        # issue 21: check said ok, and the spawn page was a 500 (the form read the step as a value in bounds)
        (SLURM_CHOOSING, "runtime", {"min": "00:03:00", "max": "02:00:00", "default": "00:30:00", "step": "00:07:00"},
         "step", "00:07:00 does not divide the range 00:03:00 to 02:00:00"),
        (SLURM_CHOOSING, "runtime", {"min": "00:03:00", "max": "02:00:00", "default": "00:30:00", "step": "00:01:00"},
         "default", None),
        (LOCAL, "cpu", {"min": 1, "max": 4, "default": 3, "step": 2}, "step", "2 does not divide the range 1 to 4"),
        (LOCAL, "cpu", {"min": 0.5, "max": 4.5, "default": 1.25, "step": 0.5}, "default", "1.25 is not 0.5 plus"),
        (LOCAL, "memory", {"min": "1G", "max": "8G", "default": "2G", "step": "3G"}, "step", "3G does not divide"),
        (LOCAL, "memory", {"min": "1G", "max": "9G", "default": "2G", "step": "2G"}, "default", "2G is not 1G plus"),
    ],
    ids=["runtime-step", "runtime-minute-steps-ok", "cpu-step", "cpu-default", "memory-step", "memory-default"],
)  # fmt: skip
def test_choices_the_form_could_not_offer_are_refused(check, profile, choice, spec, field, reason):
    result = check(with_profiles({**profile, "choices": {choice: spec}}))
    if reason is None:  # the control: a step of a minute divides any range of minutes
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2, result.stdout
    assert f"profiles.0.choices.{choice}.{field}: " in result.stderr and reason in result.stderr, result.stderr

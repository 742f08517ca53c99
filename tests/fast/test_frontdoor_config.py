"""The front door's Apache configuration against golden files (as Open OnDemand tests its generated config).

A change to what ``campushub frontdoor`` writes shows as a diff here; when it is meant, rewrite
the golden files with ``UPDATE_GOLDEN=1 scripts/test tests/fast/test_frontdoor_config.py`` and
review the diff. Apache itself checks the syntax in tests/services/test_frontdoor.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from campushub.ops import frontdoor
from campushub.sitefile.read import load_site
from harness import PROXY_SECRET, SECRET_ENV, base_site

GOLDEN = Path(__file__).parent / "golden"
OIDC = {
    "metadata_url": "https://login.example.edu/.well-known/openid-configuration",
    "client_id": "campushub",
    "client_secret": {"env": "CAMPUSHUB_TEST_CLIENT_SECRET"},
}
CASES = {
    "loopback": {"front_door": {"oidc": OIDC}},
    "campus": {
        "hub": {"bind_url": "http://127.0.0.1:800/jupyter/", "public_url": "https://hub.example.edu:8443/jupyter/"},
        "front_door": {
            "server_name": "hub.example.edu",
            "address": "0.0.0.0",
            "http_port": 8080,
            "https_port": 8443,
            "certificate": {
                "source": "acme",
                "acme_email": "hpc@example.edu",
                "acme_staging": False,
                "acme_dns01_command": "/usr/local/sbin/campus-dns01",
            },
            "oidc": {
                **OIDC,
                "user_claim": "eppn",
                "groups_claim": "memberOf",
                "redirect_path": "/sso/callback",
                "logout_to": "https://www.example.edu/",
            },
        },
    },
    "compose": {"front_door": {"address": "0.0.0.0", "upstream": "http://10.89.78.2:8000", "oidc": OIDC}},
    # one origin for the hub and every server: what a site without wildcard DNS gets (check warns)
    "one-origin": {"front_door": {"server_name": "jupyter.example.edu", "user_origins": False, "oidc": OIDC}},
    # the campus's SAML identity provider, its metadata from a federation's signed URL
    "saml": {
        "front_door": {
            "server_name": "hub.example.edu",
            "saml": {
                "idp_entity_id": "https://login.example.edu/idp/shibboleth",
                "idp_metadata_url": "https://md.example.org/entities/https%3A%2F%2Flogin.example.edu%2Fidp%2Fshibboleth",
                "idp_metadata_certificate": "SIGNER",
                "user_attribute": "eppn",
            },
        }
    },
}
#: what each case writes besides Apache's two files (the SAML SP's)
FILES = {"saml": ["shibboleth/shibboleth2.xml", "shibboleth/attribute-map.xml", "run"]}


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_apache_config_matches_the_golden_files(case, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, PROXY_SECRET)
    monkeypatch.setenv("CAMPUSHUB_TEST_CLIENT_SECRET", "client-secret-0123456789")
    site = base_site(**CASES[case])
    signer = tmp_path / "signer.pem"
    signer.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    if "saml" in site["front_door"]:
        site["front_door"]["saml"]["idp_metadata_certificate"] = str(signer)
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    out = tmp_path / "door"
    out.mkdir()
    (out / "oidc_passphrase").write_text("golden-passphrase\n")  # made once and kept; fixed here
    frontdoor.write(load_site(tmp_path / "site.yaml"), out, "/etc/campushub/frontdoor")
    for name in ("httpd.conf", "campushub-vhost.conf", *FILES.get(case, [])):
        golden = GOLDEN / f"{case}-{name.replace('/', '-')}"
        written = (out / name).read_text()
        if os.environ.get("UPDATE_GOLDEN"):
            golden.write_text(written)
        assert written == golden.read_text(), f"{name} differs from {golden} (UPDATE_GOLDEN=1 rewrites it)"
    for name in ("httpd.conf", "campushub-vhost.conf"):
        assert (out / name).stat().st_mode & 0o077 == 0  # both hold secrets

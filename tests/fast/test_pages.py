"""The pages' settings: branding checked as hostile input, the profile cards' words, the front door's 503 page.

The pages themselves, rendered by a real hub and seen by Chromium, are tested in
tests/services/test_pages.py.
"""

from __future__ import annotations

import itertools
import stat

import pytest
import yaml
from traitlets.config import Config

from campushub.hub import branding, configurer
from campushub.ops import frontdoor
from campushub.sitefile.errors import SiteError
from campushub.sitefile.read import load_site
from harness import PROXY_SECRET, SECRET_ENV, base_site


def load(tmp_path, **sections):
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(base_site(**sections)))
    return load_site(tmp_path / "site.yaml")


def problems(tmp_path, **sections) -> list[str]:
    with pytest.raises(SiteError) as refused:
        load(tmp_path, **sections)
    return refused.value.problems


@pytest.mark.parametrize(
    "branding, expected",
    [
        ({"primary_color": "red; } body { display: none"}, "branding.primary_color: String should match pattern"),
        ({"header_color": "#12345"}, "branding.header_color: String should match pattern"),
        ({"help_url": "javascript:alert(1)"}, "branding.help_url: 'javascript:alert(1)' is not an http://"),
        ({"request_access_url": "mailto:crc@example.edu"}, "branding.request_access_url: "),
        ({"announcement": "x" * 501}, "branding.announcement: String should have at most 500 characters"),
        ({"site_name": ""}, "branding.site_name: String should have at least 1 character"),
        ({"logo": "missing.png"}, "branding.logo: no such file: "),
        ({"logo": "site.yaml"}, "branding.logo: "),
        ({"colour": "#ffffff"}, "branding.colour: unknown key"),
    ],
)
def test_branding_refuses_what_could_break_a_page(tmp_path, branding, expected):
    found = problems(tmp_path, branding=branding)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_logo_is_found_beside_the_site_file_and_served_as_the_hub_logo(tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, PROXY_SECRET)
    (tmp_path / "crc.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    site = load(tmp_path, branding={"logo": "crc.svg", "help_url": "mailto:crc@example.edu"})
    assert site.branding.logo == tmp_path / "crc.svg"
    c = Config()
    configurer.configure(c, site)
    assert c.JupyterHub.logo_file == str(tmp_path / "crc.svg")
    page = c.JupyterHub.template_vars["campushub"](None)
    assert page["help_url"] == "mailto:crc@example.edu" and page["announcement"] == ""


@pytest.mark.parametrize("background, text", [("#003594", "#ffffff"), ("#ffb81c", "#000000"), ("#777777", "#000000")])
def test_the_top_bars_text_is_black_or_white_whichever_reads_better(background, text):
    assert branding.text_color(background) == text


CULLER = {"enabled": True, "timeout": 3600, "max_age": 86400}


def cards(tmp_path, profile: dict, **sections) -> dict:
    site = load(tmp_path, **{"profiles": [profile], "culler": CULLER, **sections})
    return configurer.card(site, site.profiles[0])


def test_a_local_card_says_its_limits_are_not_enforced(tmp_path):
    card = cards(
        tmp_path,
        {"slug": "l", "name": "L", "backend": "local", "system_users": True, "cpu": 1, "memory": "2G"},
    )
    assert card == {
        "description": "",
        "gets": "1 CPU, 2 GiB of memory (a guide: not enforced on this machine)",
        "runs": "on the hub's machine, as your own account",
        "keeps": "your home folder on that machine",
        "stops": "after 1 hour without activity; 1 day after it started",
    }


def test_a_container_card_names_its_volume_and_chosen_resources(tmp_path):
    choice = {"min": 1, "max": 4, "default": 2}
    card = cards(
        tmp_path,
        {
            "slug": "c",
            "name": "C",
            "backend": "container",
            "description": "Python with the campus stack",
            "image": "localhost/lab:1",
            "gpus": 1,
            "choices": {"cpu": choice, "memory": {"max": "8G", "default": "2G"}},
        },
    )
    assert card["description"] == "Python with the campus stack"
    assert card["gets"] == "1 GPU, CPUs and memory as you choose below"
    assert card["runs"] == "in a container of its own (localhost/lab:1)"
    assert card["keeps"].startswith("/home/jovyan/work, your own volume, kept when the server stops")


def test_a_slurm_card_says_its_time_limit_ends_it(tmp_path):
    card = cards(
        tmp_path,
        {"slug": "s", "name": "S", "backend": "slurm", "partition": "campus", "runtime": "2:00:00", "cpu": 2},
        culler={"enabled": False},
    )
    assert card["gets"] == "2 CPUs, partition campus, up to 2 hours"
    assert card["runs"].startswith("as a batch job on the cluster, as your own cluster account")
    assert card["stops"] == "when its time limit runs out"
    short = {"slug": "s", "name": "S", "backend": "slurm", "runtime": "00:00:30"}
    assert cards(tmp_path, short, culler={"enabled": False})["gets"] == "up to 1 minute"  # rounded up, never 0


def test_without_culler_or_limit_a_server_stops_when_its_user_stops_it(tmp_path):
    card = cards(
        tmp_path, {"slug": "l", "name": "L", "backend": "local", "system_users": True}, culler={"enabled": False}
    )
    assert card["stops"] == "only when you stop it"
    assert card["gets"] == "no fixed limits: it shares the machine with others"


def test_the_front_door_503_page_is_the_sites_escaped_and_readable_by_apache(tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, PROXY_SECRET)
    monkeypatch.setenv("CH_CLIENT_SECRET", "client-secret-0123456789")
    oidc = {
        "metadata_url": "https://login.example.edu/.well-known/x",
        "client_id": "c",
        "client_secret": {"env": "CH_CLIENT_SECRET"},
    }
    site = load(
        tmp_path,
        front_door={"oidc": oidc},
        branding={"site_name": "CRC <script>alert(1)</script>", "help_url": "https://crc.example.edu/help?a=1&b=2"},
    )
    out = tmp_path / "door"
    frontdoor.write(site, out)
    page = (out / "errors" / "503.html").read_text()
    assert "<title>CRC &lt;script&gt;alert(1)&lt;/script&gt;: back soon</title>" in page
    assert "<script>" not in page
    assert 'href="https://crc.example.edu/help?a=1&amp;b=2"' in page
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (out, out / "errors", out / "errors" / "503.html")}
    assert modes == {"door": 0o711, "errors": 0o755, "503.html": 0o644}
    assert stat.S_IMODE((out / "campushub-vhost.conf").stat().st_mode) == 0o600  # the secrets stay private


def test_every_text_colour_drawn_from_the_brand_is_readable():
    """Issue 21: with Pitt's blue bar and gold buttons, the logo's "jupyter", Logout and the theme toggle were dark
    on dark blue, buttons white on gold, and the 503 page's heading gold on white. Every text colour is now derived
    to meet WCAG AA (4.5:1) on its background, for any pair of colours."""
    from campushub.hub.branding import AA, DARK_PAGE, WHITE, BrandingSettings, colors, contrast

    pitt = colors(BrandingSettings(header_color="#003594", primary_color="#ffb81c"))
    assert pitt["header_text"] == "#ffffff" and pitt["header_dark"]
    assert pitt["button_text"] == "#000000"
    assert contrast(pitt["link"], WHITE) >= AA > contrast("#ffb81c", WHITE)  # a darker gold for text on white
    for red, green, blue in itertools.product(range(0, 256, 51), repeat=3):
        color = f"#{red:02x}{green:02x}{blue:02x}"
        found = colors(BrandingSettings(header_color=color, primary_color=color))
        assert contrast(found["header_text"], color) >= AA, color
        assert contrast(found["button_text"], color) >= AA, color
        assert contrast(found["link"], WHITE) >= AA and contrast(found["link_dark"], DARK_PAGE) >= AA, color

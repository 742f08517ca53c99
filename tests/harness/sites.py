"""The site files the tests start hubs with."""

from __future__ import annotations

#: the group the test sites require (the seed's)
GROUP = "SAM-SSLVPNSAMUsers"
#: the front door's secret in tests: sites read it with proxy_secret: {env: SECRET_ENV}
PROXY_SECRET = "test-front-door-secret-0123456789"
SECRET_ENV = "CAMPUSHUB_TEST_PROXY_SECRET"
EXTERNAL = "https://sso.example.edu"  # redirect targets in tests: never contacted


def base_site(**sections) -> dict:
    """A remote_user site (with the front door's secret) whose one open local profile runs servers
    as the users' own accounts, and no culler; ``sections`` replace parts."""
    site = {
        "auth": {
            "type": "remote_user",
            "required_groups": [GROUP],
            "missing_user_redirect": f"{EXTERNAL}/no-user",
            "missing_group_redirect": f"{EXTERNAL}/no-group",
            "admin_groups": ["crc-admins"],
            "proxy_secret": {"env": SECRET_ENV},
        },
        "profiles": [
            {"slug": "local", "name": "On the hub host", "backend": "local", "system_users": True, "default": True}
        ],
        "culler": {"enabled": False},
    }
    site.update(sections)
    return site


#: the embedded default: a shared password, servers as the hub's own account
EMBEDDED = {
    "auth": {"type": "shared_password"},
    "profiles": [{"slug": "local", "name": "JupyterLab", "backend": "local", "default": True}],
    "culler": {"enabled": False},
}


def needs_root(site: dict) -> bool:
    """Whether a hub for ``site`` must run as root: servers as users' own accounts, or containers."""
    return any(p.get("system_users") or p.get("backend") in ("slurm", "container") for p in site["profiles"])


def guarded(site: dict) -> bool:
    """Whether campushub guards ``site``'s ports (users' code on the hub's host behind single sign-on): its hub then
    listens below 1024."""
    from campushub.sitefile.model import Site

    return bool(Site.model_validate(site).guarded())

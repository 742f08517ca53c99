"""The front door's OpenID Connect sign-in (mod_auth_openidc): what the virtual host says of it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from ...auth.remote_user import id_token_of
from ...sitefile.fields import read_secret
from ...sitefile.sections import FrontDoorSettings, OidcSettings
from .. import state

if TYPE_CHECKING:
    from ...sitefile.model import Site


def sign_in(site: Site, door: FrontDoorSettings, oidc: OidcSettings, folder: Path, public: str) -> dict:
    """The template's ``sso``: the provider, its secrets, the headers set from the session on the hub's paths,
    the paths Apache answers itself, the cookies it keeps from what it proxies, and its logout."""
    auth = site.auth
    id_token = id_token_of(site)
    assert id_token is not None  # the OpenID Connect door always sends one
    return {
        "name": "oidc",
        "oidc": oidc,
        "server_name": door.server_name,
        "client_secret": read_secret(oidc.client_secret, "front_door.oidc.client_secret"),
        "passphrase": state.secret(folder / "oidc_passphrase")[0],
        # header, the variable it comes from (a claim the session lacks sends no header)
        "headers": [
            (auth.user_header, f"OIDC_CLAIM_{oidc.user_claim}"),
            (auth.groups_header, f"OIDC_CLAIM_{oidc.groups_claim}"),
            (id_token.header, "OIDC_id_token"),
        ],
        "headers_extra": [id_token.header],
        "paths": [oidc.redirect_path],
        "cookies": "mod_auth_openidc_",
        "cookie_condition": "",  # mod_auth_openidc reads its cookies before Apache edits the request's
        "logout": f"{public}{oidc.redirect_path}?logout={quote(oidc.logout_to or f'{public}/', safe='')}",
    }

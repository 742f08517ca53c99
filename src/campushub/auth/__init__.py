"""How users sign in: one slice per module, listed here; the site file's ``auth`` union is built from them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from . import remote_user, shared_password
from .base import Login

#: every login, by the name the site file gives in ``auth.type``
LOGINS: dict[str, Login] = {a.name: a for a in (shared_password.LOGIN, remote_user.LOGIN)}

if TYPE_CHECKING:
    Auth = Any  # one of the logins' settings models: the union below is built at run time
else:
    Auth = Annotated[Union[tuple(a.settings for a in LOGINS.values())], Field(discriminator="type")]


def login_of(site) -> Login:
    return LOGINS[site.auth.type]

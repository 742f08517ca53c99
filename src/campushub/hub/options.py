"""The options of a start request, judged: the profile must exist and be allowed to the user, and the only other
keys accepted are the choices that profile declares, each parsed into a typed value within its bounds
(:mod:`campushub.sitefile.choices`). Anything else is refused, in words, with where to go next.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any, NamedTuple

from tornado import web
from traitlets import Dict, List, Unicode
from traitlets.config import LoggingConfigurable

from ..backends import BACKENDS
from ..backends.accounts import refusal
from ..backends.base import Backend
from ..sitefile.choices import TOKEN, AssociationChoice, Choice, ChoiceRefused, ListChoice

#: the largest options (as JSON) a start request may hold: a profile and its choices fit in far less
MAX_OPTIONS_BYTES = 16 * 1024


class Refused(web.HTTPError):
    """A start request refused, in words, with where to go next: the API answers with the words."""

    #: what JupyterHub's pages show of an HTTPError
    jupyterhub_message: str | None
    jupyterhub_html_message: str

    def __init__(self, status: int, message: str, url: str = "", link: str = ""):
        super().__init__(status, message)
        self.words, self.url, self.link = message, url, link

    def on_the_form(self) -> Refused:
        """The same refusal for the start form, which shows its words and link above itself, not JupyterHub's
        "Error: HTTP 403: Forbidden (...)"."""
        shown = Refused(self.status_code, self.words, self.url, self.link)
        shown.jupyterhub_message = None  # the form then shows the HTML message
        more = f' <a href="{html.escape(self.url)}">{html.escape(self.link)}</a>' if self.url else ""
        shown.jupyterhub_html_message = html.escape(self.words) + more
        return shown


class MissingAccount(Refused):
    """403: the profile runs as the user's own system account, which does not exist (yet), or is not a person's."""

    def __init__(self, message: str, url: str = ""):
        super().__init__(403, message, url, "Request an account.")


class Offer(NamedTuple):
    """A profile as wrapspawner holds it."""

    display: str
    slug: str
    spawner_class: type
    settings: dict


class Options(LoggingConfigurable):
    """What a user may ask of a start, and the judging of what they asked (the spawner's ``user_options``).

    A part of :class:`~campushub.hub.spawner.CampusProfilesSpawner`: reads its ``profiles`` (wrapspawner's),
    ``user`` and account floor (:class:`~campushub.backends.accounts.OwnAccount`).
    """

    default_profile = Unicode(config=True, help="Slug of the profile used when a request names none.")
    if TYPE_CHECKING:  # the spawner's (JupyterHub's, wrapspawner's, OwnAccount's)
        user: Any
        profiles: list
        min_uid: int
        denied_accounts: list[str]

    profile_groups = Dict(
        value_trait=List(Unicode()),
        config=True,
        help="Slug -> groups allowed to use it; a slug not listed is open to all.",
    )
    profile_choices = Dict(
        config=True,
        help="Slug -> {'backend': name, 'choices': the profile's choices section} for profiles that offer choices.",
    )
    account_profiles = List(
        Unicode(), config=True, help="Slugs of the profiles whose servers run as the user's own system account."
    )
    missing_account_url = Unicode("", config=True, help="Where users without a system account request one.")
    request_access_url = Unicode("", config=True, help="Where users ask for access to a profile of some groups only.")

    @property
    def offers(self) -> list[Offer]:
        return [Offer(*p) for p in self.profiles]

    def offer(self, slug: str) -> Offer | None:
        return next((o for o in self.offers if o.slug == slug), None)

    def allowed(self, slug: str) -> bool:
        groups = self.profile_groups.get(slug)
        if not groups:
            return True
        return bool({g.name for g in self.user.groups} & set(groups))

    def offered(self) -> list[Offer]:
        return [o for o in self.offers if self.allowed(o.slug)]

    def choices_of(self, slug: str) -> tuple[Backend | None, dict[str, Choice]]:
        """The backend of a profile that offers choices, and its choices by name; (None, {}) for one that offers
        none."""
        spec = self.profile_choices.get(slug) if isinstance(slug, str) else None
        if not spec:
            return None, {}
        backend = BACKENDS[spec["backend"]]
        return backend, backend.choices.model_validate(spec["choices"]).declared()

    async def options_of(self, backend: Backend | None, slug: str, name: str, spec: Choice) -> list[str] | None:
        """A choice's options, the user's own ones read from the backend (Slurm's associations)."""
        if isinstance(spec, AssociationChoice) and spec.options == "user" and backend is not None:
            offer = self.offer(slug)
            return await backend.user_options_for(offer.settings if offer else {}, self.user.name, name)
        return spec.options if isinstance(spec, ListChoice) else None

    async def judge(self, user_options) -> tuple[str, dict]:
        """The profile and the typed choices a start request asks for, or a 4xx in words.

        Judged before anything is kept: JupyterHub stores a start request's options in its database as they
        come, so its API handlers (:mod:`campushub.hub.start_api`) and the form ask here first.
        """
        if not isinstance(user_options, dict):
            raise Refused(400, "Send the options as a JSON object.")
        if len(json.dumps(user_options)) > MAX_OPTIONS_BYTES:
            raise Refused(400, f"The options are larger than {MAX_OPTIONS_BYTES // 1024} KiB; send only the choices.")
        slug = user_options.get("profile") or self.default_profile
        if not isinstance(slug, str) or self.offer(slug) is None:
            raise Refused(400, f"There is no profile {str(slug)[:40]!r}.")
        if not self.allowed(slug):
            raise Refused(
                403,
                f"You ({self.user.name}) may not use the profile {slug!r}: it is for some groups only.",
                self.request_access_url,
                "Ask for access.",
            )
        if slug in self.account_profiles and (refused := self.account_refusal()):
            raise MissingAccount(refused)
        return slug, await self.parse_choices(slug, user_options)

    async def parse_choices(self, slug: str, user_options: dict) -> dict:
        """The typed values for ``slug``'s choices: the user's within bounds, else the defaults; refuse the rest."""
        backend, declared = self.choices_of(slug)
        for key in user_options:
            if key != "profile" and key not in declared:
                offers = ", ".join(declared) or "none"
                raise Refused(400, f"{str(key)[:40]}: not a choice the profile {slug!r} offers (it offers {offers})")
        chosen = {}
        for name, spec in declared.items():
            try:
                if isinstance(spec, ListChoice):
                    try:
                        options = await self.options_of(backend, slug, name, spec)
                    except Exception as e:  # noqa: BLE001 (sacctmgr failed: say so, start nothing)
                        raise ChoiceRefused(f"{name}: cannot read your options now ({e})") from None
                    chosen[name] = spec.parse(name, user_options.get(name, spec.first(options)), options)
                else:
                    chosen[name] = spec.parse(name, user_options.get(name, spec.default))
            except ChoiceRefused as e:
                raise Refused(400, str(e)) from None
        return chosen

    def as_api(self, slug: str, chosen: dict) -> dict:
        """Typed values as the API takes them (sizes like 4G, times like 02:00:00), for ``user_options``."""
        declared = self.choices_of(slug)[1]
        return {name: declared[name].api_text(value) for name, value in chosen.items()}

    def saved_choices(self, slug: str, saved) -> dict:
        """A running server's chosen values from its saved state, checked again: only what the profile offers."""
        declared = self.choices_of(slug)[1]
        if not isinstance(saved, dict):
            return {}
        kept = {}
        for name, spec in declared.items():
            value = saved.get(name)
            if value is None:
                continue
            try:
                if isinstance(spec, ListChoice):
                    own = [value] if isinstance(value, str) and TOKEN.match(value) else []
                    kept[name] = spec.parse(name, value, own if spec.options == "user" else spec.options)
                else:
                    kept[name] = spec.parse(name, value)
            except ChoiceRefused:
                self.log.warning("Ignoring a saved choice %s=%r for %s", name, value, self.user.name)
        return kept

    def account_refusal(self) -> str:
        """Why this user's name may not run servers as its own account (a system or service account); "" if it may."""
        return refusal(self.user.name, self.min_uid, self.denied_accounts)

    def no_account_text(self) -> str:
        where = "" if self.missing_account_url else " from your research computing center"
        return (
            f"You ({self.user.name}) have no account on this cluster yet, and this profile runs as your own"
            f" account. Request one{where}; you can start it as soon as the account exists."
        )

"""The start form: the profiles a user may start, each with its card and its choices' fields, and the reading
of what the form sends back into a start request's options (judged like the API's, by
:meth:`~campushub.hub.options.Options.judge`)."""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

import jinja2
from traitlets import Bool, Dict

from ..backends.accounts import has_account
from ..sitefile.choices import ChoiceRefused, ListChoice, form_label
from .options import MissingAccount, Options, Refused

TEMPLATES = jinja2.Environment(
    loader=jinja2.FunctionLoader(lambda name: resources.files("campushub").joinpath("templates", name).read_text()),
    autoescape=True,
)


class Form(Options):
    """The spawner's ``options_form`` and ``options_from_form``."""

    profile_cards = Dict(
        value_trait=Dict(),
        config=True,
        help="Slug -> what the start page says about it: description, gets, runs, keeps, stops.",
    )
    create_accounts = Bool(False, config=True, help="Make a missing account (for valid system names) at start.")
    last_choices = Dict(help="Slug -> the values this user chose last time, as the API takes them; kept after a stop.")

    async def options_form(self, spawner=None):
        """Profiles (and their choices) on offer; no form when one profile without choices is all there is.

        Profiles that run as the user's own account are shown unavailable, with why, to users without one.
        """
        offered = self.offered()
        own = self.create_accounts or await asyncio.to_thread(has_account, self.user.name)
        refused = self.account_refusal()
        simple = len(offered) < 2 and not any(self.choices_of(o.slug)[1] for o in offered)
        if simple and ((own and not refused) or not (offered and offered[0].slug in self.account_profiles)):
            return ""
        last = (self.user_options or {}).get("profile", self.default_profile)
        profiles = []
        for offer in offered:
            backend, declared = self.choices_of(offer.slug)
            fields = [await self._field(backend, offer.slug, name, spec) for name, spec in declared.items()]
            unavailable = ""
            if offer.slug in self.account_profiles:
                unavailable = refused or ("" if own else self.no_account_text())
            profiles.append(
                {
                    "slug": offer.slug,
                    "name": offer.display,
                    "card": self.profile_cards.get(offer.slug, {}),
                    "fields": fields,
                    "unavailable": unavailable,
                    "selected": offer.slug == last and not unavailable,
                }
            )
        available = [p for p in profiles if not p["unavailable"]]
        if available and not any(p["selected"] for p in profiles):
            available[0]["selected"] = True
        # the banner only where a profile this user may use needs their account
        needs_one = any(o.slug in self.account_profiles for o in offered)
        return TEMPLATES.get_template("spawn_form.html").render(
            profiles=profiles, request_url=self.missing_account_url, no_account=needs_one and not own
        )

    async def _field(self, backend, slug: str, name: str, spec) -> dict:
        """One form field: its value (last time's, if still allowed), its bounds in the form's units, and help."""
        last = self.last_choices.get(slug, {}).get(name)
        field: dict[str, Any] = {"name": f"{slug}.{name}", "id": f"choice-{slug}-{name}", "label": form_label(name)}
        if isinstance(spec, ListChoice):
            try:
                options = await self.options_of(backend, slug, name, spec) or []
                field["help"] = ""
            except Exception as e:  # noqa: BLE001 (shown in the form; the start refuses the same way)
                options, field["help"] = [], f"cannot read your options now ({e})"
            field.update(options=options, value=last if last in options else spec.first(options))
            return field
        try:
            value = spec.parse(name, spec.default if last is None else last)
        except ChoiceRefused:
            value = spec.parse(name, spec.default)
        return {**field, **spec.form_field(name, value)}

    async def options_from_form(self, formdata):
        """The chosen profile and its fields, in the API's units; other profiles' fields are dropped.

        Anything the form never had is passed on, so that :meth:`judge` refuses it by name, before JupyterHub
        stores the options (the spawn form, and ``/hub/spawn?profile=...``, come this way).
        """
        slug = formdata.get("profile", [self.default_profile])[0]
        options = {"profile": slug}
        offered_fields = {f"{o.slug}.{name}" for o in self.offered() for name in self.choices_of(o.slug)[1]}
        declared = self.choices_of(slug)[1]
        for key, values in formdata.items():
            value = values[0] if values else ""
            prefix, _, name = key.partition(".")
            if key in ("profile", "_xsrf"):
                continue
            if prefix == slug and name in declared:
                options[name] = declared[name].from_form(value)
            elif key not in offered_fields:
                options[key] = value
        try:
            slug, _chosen = await self.judge(options)
            needs_one = slug in self.account_profiles and not self.create_accounts
            if needs_one and not await asyncio.to_thread(has_account, self.user.name):
                raise MissingAccount(self.no_account_text(), self.missing_account_url)
        except Refused as refused:
            raise refused.on_the_form() from None
        return options

"""wrapspawner's ProfilesSpawner, with a default profile, per-group access and bounded choices.

Everything a user sends when starting a server (the API's JSON body, the spawn form) is
checked in ``apply_user_options``, which JupyterHub calls before every start: the profile must
exist and be allowed to the user, and the only other keys accepted are the choices that
profile declares, each parsed into a typed value within its bounds (:mod:`campushub.choices`).
The child spawner gets its settings from the site file and those typed values only; it never
sees ``user_options``.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
from importlib import resources

import jinja2
from jupyterhub.spawner import Spawner, SpawnException
from sqlalchemy.orm import object_session
from tornado import web
from traitlets import Bool, Dict, List, Unicode, default
from wrapspawner import ProfilesSpawner

from . import metrics
from .accounts import SYSTEM_NAME, has_account, refusal
from .backends import BACKENDS
from .backends.base import OwnAccount
from .choices import (
    LABELS,
    TOKEN,
    AssociationChoice,
    ChoiceRefused,
    DurationChoice,
    ListChoice,
    SizeChoice,
    clock,
    duration_text,
    size_text,
    size_words,
    words,
)
from .fields import byte_count

TEMPLATES = jinja2.Environment(
    loader=jinja2.FunctionLoader(lambda name: resources.files("campushub").joinpath("templates", name).read_text()),
    autoescape=True,
)
#: how the form names a choice, where its field takes a unit
FORM_LABELS = {**LABELS, "memory": "Memory (GiB)"}


class Admission:
    """At most ``slots`` servers start at once on this machine, first come, first served.

    A burst of starts then finishes half its users in half the time, instead of all of them
    at the end; whoever waits sees their place in line on the spawn page.
    """

    def __init__(self, slots: int):
        self.slots = slots
        self.starting = 0
        self.waiting: list[tuple[object, asyncio.Future]] = []

    async def enter(self, who):
        turn = asyncio.get_running_loop().create_future()
        self.waiting.append((who, turn))
        self._next()
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.leave()  # our turn came as we were cancelled: pass it on
            self.waiting = [(w, t) for w, t in self.waiting if t is not turn]
            raise

    def leave(self):
        self.starting -= 1
        self._next()

    def _next(self):
        while self.starting < self.slots and self.waiting:
            _who, turn = self.waiting.pop(0)
            if not turn.done():
                self.starting += 1
                turn.set_result(None)

    def place(self, who) -> int | None:
        """1 for the next to start, None for someone not waiting."""
        return next((i + 1 for i, (w, _t) in enumerate(self.waiting) if w is who), None)


ADMISSION = Admission(os.cpu_count() or 2)
#: the largest options (as JSON) a start request may hold: a profile and its choices fit in far less
MAX_OPTIONS_BYTES = 16 * 1024


class Refused(web.HTTPError):
    """A start request refused, in words, with where to go next: the API answers with the words."""

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


class ServerStopped(SpawnException):
    """The server stopped while it started: fail now, rather than after the hub's http_timeout."""

    def __init__(self, status):
        super().__init__(
            f"Your server stopped while it started ({status}); your home page shows its last words.",
            reason="stopped-while-starting",  # also campushub_server_start_failures_total's label
            status_code=500,
        )


async def listening(ip: str, port: int, timeout: float, spawner) -> bool:
    """Return once ``ip:port`` accepts connections (so that the hub's first check succeeds: True), or
    ``timeout`` has passed (False: the hub then judges, as it always did); raise :class:`ServerStopped`
    if the server stops first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_poll = loop.time() + 1
    while loop.time() < deadline:
        try:
            _reader, writer = await asyncio.open_connection(ip or "127.0.0.1", port)
            writer.close()
            return True
        except OSError:
            if loop.time() > next_poll:  # a poll can be a command (squeue, the engine): once a second
                status = await spawner.poll()
                if status is not None:
                    raise ServerStopped(status) from None
                next_poll = loop.time() + 1
            await asyncio.sleep(0.05)
    return False


class CampusProfilesSpawner(ProfilesSpawner, OwnAccount):
    """Offers each user the profiles their groups allow with their choices, and refuses anything else."""

    default_profile = Unicode(config=True, help="Slug of the profile used when a request names none.")
    profile_groups = Dict(
        value_trait=List(Unicode()),
        config=True,
        help="Slug -> groups allowed to use it; a slug not listed is open to all.",
    )
    profile_cards = Dict(
        value_trait=Dict(),
        config=True,
        help="Slug -> what the start page says about it: description, gets, runs, keeps, stops.",
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
    create_accounts = Bool(False, config=True, help="Make a missing account (for valid system names) at start.")
    account_command = List(
        Unicode(),
        ["useradd", "--create-home"],
        config=True,
        help="The command that makes an account; the user name is its last argument.",
    )
    admitted_profiles = List(
        Unicode(), config=True, help="Slugs of the profiles whose starts use this machine's CPUs: they take turns."
    )
    profile_backends = Dict(
        value_trait=Unicode(), config=True, help="Slug -> the profile's backend (a label of campushub's metrics)."
    )
    chosen = Dict(help="The typed values chosen for the running server (CPUs, bytes, minutes, names).")
    last_choices = Dict(help="Slug -> the values this user chose last time, as the API takes them; kept after a stop.")
    last_end = Dict(help="How the last server ended by itself, or failed to start (the backend's words); kept.")
    listened = Bool(False, help="Whether the last start's server listened (else it ended, or never answered).")

    def allowed(self, slug: str) -> bool:
        groups = self.profile_groups.get(slug)
        if not groups:
            return True
        return bool({g.name for g in self.user.groups} & set(groups))

    def offered(self):
        return [p for p in self.profiles if self.allowed(p[1])]

    def _settings(self, slug: str) -> dict:
        return next(p[3] for p in self.profiles if p[1] == slug)

    def _choices(self, slug: str):
        """(backend, its choices model) of a profile that offers choices, else None."""
        spec = self.profile_choices.get(slug)
        if not spec:
            return None
        backend = BACKENDS[spec["backend"]]
        return backend, backend.choices.model_validate(spec["choices"])

    async def _options(self, backend, slug: str, name: str, spec) -> list[str] | None:
        """A choice's options, the user's own ones read from the backend (Slurm's associations)."""
        if isinstance(spec, AssociationChoice) and spec.options == "user":
            return await backend.user_options_for(self._settings(slug), self.user.name, name)
        return spec.options if isinstance(spec, ListChoice) else None

    async def parse_choices(self, slug: str, user_options: dict) -> dict:
        """The typed values for ``slug``'s choices: the user's within bounds, else the defaults; refuse the rest."""
        found = self._choices(slug)
        declared = found[1].declared() if found else {}
        for key in user_options:
            if key != "profile" and key not in declared:
                offers = ", ".join(declared) or "none"
                key = str(key)[:40]
                raise Refused(400, f"{key}: not a choice the profile {slug!r} offers (it offers {offers})")
        chosen = {}
        for name, spec in declared.items():
            try:
                if isinstance(spec, ListChoice):
                    try:
                        options = await self._options(found[0], slug, name, spec)
                    except Exception as e:  # sacctmgr failed: say so, start nothing
                        raise ChoiceRefused(f"{name}: cannot read your options now ({e})") from None
                    value = user_options.get(name, spec.first(options))
                    chosen[name] = spec.parse(name, value, options)
                else:
                    chosen[name] = spec.parse(name, user_options.get(name, spec.default))
            except ChoiceRefused as e:
                raise Refused(400, str(e)) from None
        return chosen

    def _as_api(self, slug: str, chosen: dict) -> dict:
        """Typed values as the API takes them (sizes like 4G, times like 02:00:00), for ``user_options``."""
        declared = self._choices(slug)[1].declared() if chosen else {}
        shown = {}
        for name, value in chosen.items():
            spec = declared[name]
            shown[name] = (
                size_text(value)
                if isinstance(spec, SizeChoice)
                else duration_text(value)
                if isinstance(spec, DurationChoice)
                else value
            )
        return shown

    # ------------------------------------------------------------------ the form

    async def options_form(self, spawner=None):
        """Profiles (and their choices) on offer; no form when one profile without choices is all there is.

        Profiles that run as the user's own account are shown unavailable, with why, to users without one.
        """
        offered = self.offered()
        own = self.create_accounts or await asyncio.to_thread(has_account, self.user.name)
        refused = self.account_refusal()
        simple = len(offered) < 2 and not any(self._choices(p[1]) for p in offered)
        if simple and ((own and not refused) or not (offered and offered[0][1] in self.account_profiles)):
            return ""
        last = (self.user_options or {}).get("profile", self.default_profile)
        profiles = []
        for display, slug, _cls, _conf in offered:
            found = self._choices(slug)
            fields = []
            for name, spec in found[1].declared().items() if found else ():
                fields.append(await self._field(found[0], slug, name, spec))
            unavailable = (refused or ("" if own else self.no_account_text())) if slug in self.account_profiles else ""
            profiles.append(
                {
                    "slug": slug,
                    "name": display,
                    "card": self.profile_cards.get(slug, {}),
                    "fields": fields,
                    "unavailable": unavailable,
                    "selected": slug == last and not unavailable,
                }
            )
        available = [p for p in profiles if not p["unavailable"]]
        if available and not any(p["selected"] for p in profiles):
            available[0]["selected"] = True
        # the banner only where a profile this user may use needs their account
        needs_one = any(p[1] in self.account_profiles for p in offered)
        return TEMPLATES.get_template("spawn_form.html").render(
            profiles=profiles, request_url=self.missing_account_url, no_account=needs_one and not own
        )

    async def _field(self, backend, slug: str, name: str, spec) -> dict:
        """One form field: its value (last time's, if still allowed), its bounds in the form's units, and help."""
        last = self.last_choices.get(slug, {}).get(name)
        field = {"name": f"{slug}.{name}", "id": f"choice-{slug}-{name}", "label": FORM_LABELS.get(name, name)}
        if isinstance(spec, ListChoice):
            try:
                options = await self._options(backend, slug, name, spec)
                field["help"] = ""
            except Exception as e:  # noqa: BLE001 (shown in the form; the start refuses the same way)
                options, field["help"] = [], f"cannot read your options now ({e})"
            field.update(options=options, value=last if last in options else spec.first(options))
            return field
        try:
            value = spec.parse(name, last) if last is not None else spec.parse(name, spec.default)
        except ChoiceRefused:
            value = spec.parse(name, spec.default)
        if isinstance(spec, DurationChoice):  # hours:minutes, or minutes, as people write a time
            low, high = spec.read(name, spec.min), spec.read(name, spec.max)
            field.update(
                text=clock(value),
                help=f"from {clock(low)} to {clock(high)} (hours:minutes, such as 1:30, or minutes, such as 90)",
            )
            return field
        if isinstance(spec, SizeChoice):  # the form asks in GiB
            low, high, step = (byte_count(x) / 2**30 for x in (spec.min, spec.max, spec.step))
            value = value / 2**30
            words = f"from {size_words(byte_count(spec.min))} to {size_words(byte_count(spec.max))}"
        else:
            low, high, step = spec.min, spec.max, spec.step
            words = f"from {low:g} to {high:g}"
        field.update(min=f"{low:g}", max=f"{high:g}", step=f"{step:g}", value=f"{value:g}", help=words)
        return field

    async def options_from_form(self, formdata):
        """The chosen profile and its fields, in the API's units; other profiles' fields are dropped.

        Anything the form never had is passed on, so that :meth:`judge` refuses it by name, before JupyterHub
        stores the options (the spawn form, and ``/hub/spawn?profile=...``, come this way).
        """
        slug = formdata.get("profile", [self.default_profile])[0]
        options = {"profile": slug}
        offered_fields = {
            f"{s}.{name}"
            for _d, s, _c, _conf in self.offered()
            if (found := self._choices(s))
            for name in found[1].declared()
        }
        found = self._choices(slug) if isinstance(slug, str) else None
        declared = found[1].declared() if found else {}
        for key, values in formdata.items():
            value = values[0] if values else ""
            prefix, _, name = key.partition(".")
            if key in ("profile", "_xsrf"):
                continue
            if prefix == slug and name in declared:
                options[name] = _from_form(declared[name], value)
            elif key not in offered_fields:
                options[key] = value
        try:
            slug, _chosen = await self.judge(options)
            if slug in self.account_profiles and not self.create_accounts:
                if not await asyncio.to_thread(has_account, self.user.name):
                    raise MissingAccount(self.no_account_text(), self.missing_account_url)
        except Refused as refused:
            raise refused.on_the_form() from None
        return options

    # ------------------------------------------------------------------ starting

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return type(self).choose_profile

    async def judge(self, user_options) -> tuple[str, dict]:
        """The profile and the typed choices a start request asks for, or a 4xx in words.

        Judged before anything is kept: JupyterHub stores a start request's options in its database as they
        come, so its API handlers (:mod:`campushub.start_api`) and the form ask here first.
        """
        if not isinstance(user_options, dict):
            raise Refused(400, "Send the options as a JSON object.")
        if len(json.dumps(user_options)) > MAX_OPTIONS_BYTES:
            raise Refused(400, f"The options are larger than {MAX_OPTIONS_BYTES // 1024} KiB; send only the choices.")
        slug = user_options.get("profile") or self.default_profile
        if not isinstance(slug, str) or slug not in {p[1] for p in self.profiles}:
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

    async def choose_profile(self, user_options: dict):
        """Pick the requested profile (or the default) and its choices; refuse anything else."""
        slug, self.chosen = await self.judge(user_options)
        if slug in self.account_profiles and not await asyncio.to_thread(has_account, self.user.name):
            await self.make_account()
        shown = self._as_api(slug, self.chosen)
        self.user_options = {"profile": slug, **shown}
        if self.chosen:
            self.last_choices = {**self.last_choices, slug: shown}
        self.child_profile = slug
        # a server started before keeps its old child: start afresh with this profile
        self.child_spawner = None

    def account_refusal(self) -> str:
        """Why this user's name may not run servers as its own account (a system or service account); "" if it may."""
        return refusal(self.user.name, self.min_uid, self.denied_accounts)

    def no_account_text(self) -> str:
        where = "" if self.missing_account_url else " from your research computing center"
        return (
            f"You ({self.user.name}) have no account on this cluster yet, and this profile runs as your own"
            f" account. Request one{where}; you can start it as soon as the account exists."
        )

    async def make_account(self):
        """Make the user's system account when the site allows it, or refuse the start (403) in words."""
        name = self.user.name
        if not self.create_accounts:
            raise MissingAccount(self.no_account_text(), self.missing_account_url)
        if not SYSTEM_NAME.match(name):
            raise MissingAccount(
                f"{name} is not a name a system account can have (letters a-z, digits, _ and -, 32 at most):"
                " this cluster cannot make you one.",
                self.missing_account_url,
            )
        process = await asyncio.create_subprocess_exec(
            *self.account_command, name, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _out, err = await process.communicate()
        if process.returncode:
            self.log.error("Making the account %s failed (%s): %s", name, process.returncode, err.decode()[-500:])
            raise MissingAccount(
                "This cluster could not make your account; the hub's log says why.", self.missing_account_url
            )
        self.log.info("Made the system account %s", name)

    def select_profile(self, profile):
        """The profile's settings from the site file, with the chosen values; never ``user_options``."""
        super().select_profile(profile)
        found = self._choices(profile) if self.chosen else None
        extra = found[0].choice_settings(self.child_config, self.chosen) if found else {}
        # the child sees no user_options: batchspawner would merge them into its batch script
        self.child_config = {**self.child_config, **extra, "user_options": {}}
        metrics.SPAWNERS.add(self)  # it has a profile now: counted in campushub_active_users while ready

    @metrics.timed_start
    async def start(self):
        """Start the chosen profile's server, taking turns with others on this machine; return once it listens.

        A start that fails is remembered, with what the backend knows of why, for the home page.
        """
        admitted = self.child_profile in self.admitted_profiles
        if admitted:
            await ADMISSION.enter(self)
        self.last_end = {}
        try:
            ip, port = await super().start()
            self.keep_state(ip, port)
            self.listened = await listening(ip, port, self.child_spawner.http_timeout, self.child_spawner)
            return ip, port
        except Exception as e:
            self.last_end = {"words": "Your server did not start.", "advice": str(getattr(e, "message", e))[:500]}
            self.last_end.update(await self._end_reason(failed_start=True))
            raise
        finally:
            if admitted:
                ADMISSION.leave()

    async def poll(self):
        """The child's status; a server that ended by itself (a job's time limit, its memory) is remembered."""
        status = await super().poll()
        if status is not None and self.child_spawner is not None:
            ended = await self._end_reason()
            if ended:
                self.last_end = ended
            if self.pending in (None, "check"):  # noticed here, not polled again by the stop that follows
                metrics.session_ended(self, ended)
        return status

    async def _end_reason(self, failed_start: bool = False) -> dict:
        """What the child's backend knows of how its server ended (Slurm: sacct and the job's log)."""
        ask = getattr(self.child_spawner, "end_reason", None)
        if ask is None:
            return {}
        try:
            return await ask(failed_start=failed_start)
        except Exception as e:  # noqa: BLE001 (the end is recorded without details, and the log says why)
            self.log.warning("Could not read how %s's server ended: %s", self.user.name, e)
            return {}

    def session_card(self) -> dict:
        """What the home page says about this server: its profile, resources, where it runs, its time left."""
        slug = self.child_profile or (self.user_options or {}).get("profile", "")
        display = next((p[0] for p in self.profiles if p[1] == slug), "")
        child = self.child_spawner
        info = child.session_info() if child is not None and hasattr(child, "session_info") else {}
        if not info.get("where") and child is not None:
            if getattr(child, "container_name", ""):
                info["where"] = f"in a container of its own ({child.container_name})"
            elif getattr(child, "pid", 0):
                info["where"] = "on the hub's machine"
        started = self.orm_spawner.started if self.orm_spawner is not None else None
        gets = self.profile_cards.get(slug, {}).get("gets", "")
        return {
            "profile": display,
            # what was chosen, in words (the card's "as you choose below" means nothing here)
            "gets": ", ".join(words(name, value) for name, value in self.chosen.items()) or gets,
            "since": started.strftime("%Y-%m-%d %H:%M UTC") if started else "",
            **info,
            "last_end": self.last_end,
        }

    async def progress(self):
        """The place in line while waiting for a turn, then the backend's own progress."""
        while (place := ADMISSION.place(self)) is not None:
            ahead = "you are next" if place == 1 else f"{place - 1} ahead of you"
            yield {
                "progress": 5,
                "message": f"Waiting for a turn: {ADMISSION.starting} servers are starting on this machine, {ahead}",
            }
            await asyncio.sleep(0.5)
        if self.child_spawner:
            async for event in self.child_spawner.progress():
                yield event

    def construct_child(self):
        # the profile was chosen in choose_profile (start) or load_state (restore)
        self.select_profile(self.child_profile or self.default_profile)
        child = super(ProfilesSpawner, self).construct_child()
        child.keep_state = self.keep_state
        return child

    def keep_state(self, ip: str | None = None, port: int | None = None):
        """Save the state now, in the middle of a start, once the child has made something (a process, a
        container, a job), and where its server will listen when known.

        JupyterHub saves a spawner's state only when its start has ended: a hub killed before then would
        restart without the process's pid or the job's id, and leave them running for nobody. With them
        saved, the next hub finds the server and keeps it (it answers) or stops it.
        """
        if self.orm_spawner is None:
            return
        if self.server is not None and port:
            self.server.port = port
            if ip:
                self.server.ip = ip
        self.orm_spawner.state = self.get_state()
        object_session(self.orm_spawner).commit()  # the hub's own session (Spawner.db is deprecated)

    # ------------------------------------------------------------------ state

    def get_state(self):
        """The profile's slug, the chosen values and the child's own state, never the profile's settings.

        wrapspawner saves the child's whole config (``child_conf``) and restores it over the
        site's at the next start; anything that could set an attribute of a spawner could then
        make the hub run commands of its choosing. Settings always come from the site file.
        """
        state = Spawner.get_state(self)
        state["profile"] = self.child_profile
        if self.chosen:
            state["chosen"] = self.chosen
        if self.last_choices:
            state["last_choices"] = self.last_choices
        if self.last_end:
            state["last_end"] = self.last_end
        if self.child_spawner:
            self.child_state = state["child_state"] = self.child_spawner.get_state()
        return state

    def load_state(self, state):
        Spawner.load_state(self, state)
        self.last_choices = state.get("last_choices", {})
        self.last_end = state.get("last_end", {}) if isinstance(state.get("last_end"), dict) else {}
        self.child_profile = state.get("profile", "")
        if self.child_profile not in {p[1] for p in self.profiles}:
            if self.child_profile:
                self.log.warning(
                    "%s's server ran on profile %r, which the site file no longer has; using %r",
                    self.user.name,
                    self.child_profile,
                    self.default_profile,
                )
            self.child_profile = self.default_profile
        self.chosen = self._saved_choices(state.get("chosen", {}))
        self.child_state = state.get("child_state", {})
        self.construct_child()

    def _saved_choices(self, saved) -> dict:
        """The running server's chosen values from the saved state, checked again: only what the profile offers."""
        found = self._choices(self.child_profile)
        if not found or not isinstance(saved, dict):
            return {}
        kept = {}
        for name, spec in found[1].declared().items():
            value = saved.get(name)
            try:
                if value is None:
                    continue
                if isinstance(spec, ListChoice):
                    own = [value] if isinstance(value, str) and TOKEN.match(value) else []
                    kept[name] = spec.parse(name, value, own if spec.options == "user" else spec.options)
                else:
                    kept[name] = spec.parse(name, value)
            except ChoiceRefused:
                self.log.warning("Ignoring a saved choice %s=%r for %s", name, value, self.user.name)
        return kept

    def clear_state(self):
        """What a stopped server leaves: its last choices (for the next form) and how it ended (for the home page)."""
        last, end = self.last_choices, self.last_end
        super().clear_state()
        self.chosen = {}
        self.last_choices, self.last_end = last, end


def _from_form(spec, value: str):
    """A form field's text in the API's units: GiB to ``NM``; anything else (times too) as typed."""
    try:
        number = float(value)
    except ValueError:
        return value
    if isinstance(spec, SizeChoice):
        return f"{round(number * 1024)}M"
    return value

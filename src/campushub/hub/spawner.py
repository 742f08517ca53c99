"""wrapspawner's ProfilesSpawner, with a default profile, per-group access and bounded choices.

Everything a user sends when starting a server (the API's JSON body, the spawn form) is judged in
``apply_user_options`` (:mod:`campushub.hub.options`), which JupyterHub calls before every start. The
child spawner gets its settings from the site file and the typed values of the choices only; it never
sees ``user_options``. This module holds the start itself, its state and the home page's card; the form
is :mod:`campushub.hub.form`, turn-taking :mod:`campushub.hub.turns`. Each session is recorded in the
ledger (:mod:`campushub.ledger.record`) as it happens.
"""

from __future__ import annotations

import asyncio
import datetime

from jupyterhub.spawner import Spawner, SpawnException
from sqlalchemy.orm import object_session
from traitlets import Bool, Dict, Integer, List, Unicode, default
from wrapspawner import ProfilesSpawner

from ..backends.accounts import OwnAccount, has_account, make_account
from ..ledger import record
from ..sitefile.choices import words
from ..sitefile.model import AccountSettings
from . import metrics
from .form import Form
from .options import MissingAccount
from .turns import ADMISSION, check_memory, listening

#: how many ports a start tries when another process holds the one its server was given
PORT_TRIES = 3
#: the home page's words for a server that ended by itself, when its backend has only its log
ENDED_BY_ITSELF = {"words": "Your server ended by itself.", "advice": "The last lines of its log below say why."}
#: Slurm accountings the ledger waits for
RECONCILING: set[asyncio.Future] = set()


class CampusProfilesSpawner(Form, ProfilesSpawner, OwnAccount):
    """Offers each user the profiles their groups allow with their choices, and refuses anything else."""

    account_command = List(
        Unicode(),
        AccountSettings.default_of("command"),
        config=True,
        help="The command that makes an account; the user name is its last argument.",
    )
    reserve_memory = Integer(
        0, config=True, help="Bytes the hub's machine keeps free: a start that takes turns finds at least this."
    )
    admitted_profiles = List(
        Unicode(), config=True, help="Slugs of the profiles whose starts use this machine's CPUs: they take turns."
    )
    profile_backends = Dict(
        value_trait=Unicode(), config=True, help="Slug -> the profile's backend (a label of campushub's metrics)."
    )
    chosen = Dict(help="The typed values chosen for the running server (CPUs, bytes, minutes, names).")
    last_end = Dict(help="How the last server ended by itself, or failed to start (the backend's words); kept.")
    listened = Bool(False, help="Whether the last start's server listened (else it ended, or never answered).")
    ledger = Bool(True, config=True, help="Record each session in the sessions ledger.")
    ledger_id = Integer(None, allow_none=True, help="The ledger's row of the current session; kept in the state.")
    stopped_by = Unicode("", help="Who asked the hub to stop the server (a ledger outcome: user, admin, culled).")
    restored = Bool(False, help="The server was found in the saved state at the hub's start, not yet polled.")
    reconciled = Integer(None, allow_none=True, help="The last ledger row whose Slurm accounting was asked for.")
    #: where the last save of the state in this start said the server listens (None: not saved in this start)
    saved_at: tuple[str | None, int | None] | None = None

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return type(self).choose_profile

    async def choose_profile(self, user_options: dict):
        """Pick the requested profile (or the default) and its choices; refuse anything else."""
        slug, self.chosen = await self.judge(user_options)
        if slug in self.account_profiles and not await asyncio.to_thread(has_account, self.user.name):
            await self.make_account()
        shown = self.as_api(slug, self.chosen)
        self.user_options = {"profile": slug, **shown}
        if self.chosen:
            self.last_choices = {**self.last_choices, slug: shown}
        self.child_profile = slug
        # a server started before keeps its old child: start afresh with this profile
        self.child_spawner = None

    async def make_account(self):
        """Make the user's system account when the site allows it, or refuse the start (403) in words."""
        if not self.create_accounts:
            raise MissingAccount(self.no_account_text(), self.missing_account_url)
        failed = await make_account(self.user.name, self.account_command, self.log)
        if failed:
            raise MissingAccount(failed, self.missing_account_url)

    def select_profile(self, profile):
        """The profile's settings from the site file, with the chosen values; never ``user_options``."""
        super().select_profile(profile)
        backend = self.choices_of(profile)[0] if self.chosen else None
        extra = backend.choice_settings(self.child_config, self.chosen) if backend else {}
        # the child sees no user_options: batchspawner would merge them into its batch script
        self.child_config = {**self.child_config, **extra, "user_options": {}}
        metrics.SPAWNERS.add(self)  # it has a profile now: counted in campushub_active_users while ready

    @metrics.timed_start
    async def start(self):
        """Start the chosen profile's server, taking turns with others on this machine; return once it listens.

        A start that fails is remembered, with what the backend knows of why, for the home page.
        """
        admitted = self.child_profile in self.admitted_profiles
        self.stopped_by, self.restored = "", False
        if self.ledger:
            slug = self.child_profile
            self.ledger_id = record.asked(self, slug, self.profile_backends.get(slug, ""), self.user_options or {})
        if admitted:
            await ADMISSION.enter(self)
        self.last_end = {}
        try:
            if admitted:
                check_memory(self.reserve_memory)
            ip, port = await self._start_child()
            if self.listened:
                record.ready(self, self.ledger_id)
            return ip, port
        except BaseException as e:  # a timeout cancels the start: recorded as a failed start too
            self.last_end = {"words": "Your server did not start.", "advice": str(getattr(e, "message", e))[:500]}
            if isinstance(e, Exception):
                self.last_end.update(await self._end_reason(failed_start=True))
            record.ended(self, self.ledger_id, "failed", f"{self.last_end['words']} {self.last_end['advice']}")
            raise
        finally:
            if admitted:
                ADMISSION.leave()

    async def _start_child(self) -> tuple[str, int]:
        """The child's start, until its server listens; started again on another port (twice at most) when another
        process holds the one it was given (a kernel's, or another user's code, took it first)."""
        problem = ""
        for _attempt in range(PORT_TRIES):
            self.saved_at = None
            ip, port = await super().start()
            child = self.child_spawner
            assert child is not None  # wrapspawner's start made it
            if self.saved_at != (ip, port):  # first: a hub killed now must find the process or container it made
                self.keep_state(ip, port)  # (local and Slurm children saved theirs already)
            record.started(self, self.ledger_id, child)
            self.listened = await listening(ip, port, child.http_timeout, child)
            check = getattr(child, "listener_problem", None)
            problem = check(port) if self.listened and check is not None else ""
            if not problem:
                return ip, port
            self.listened = False
            self.log.warning("%s: %s Starting it again on another port.", self.user.name, problem)
            await child.stop(now=True)
            child.port = 0
        raise SpawnException(f"{problem} Start your server again.", reason="port-taken", status_code=500)

    async def poll(self):
        """The child's status; a server that ended by itself (a job's time limit, its memory) is remembered."""
        status = await super().poll()
        restored, self.restored = self.restored, False
        if status is None:
            if restored:
                record.noted(self, self.ledger_id, record.FOUND_RUNNING)
            return status
        if self.child_spawner is not None:
            ended = await self._end_reason()
            if ended:  # a backend that knows only the log (local) adds it: a failed start's words stay
                self.last_end = ended if ended.get("words") else {**ENDED_BY_ITSELF, **self.last_end, **ended}
            if self.pending in (None, "check"):  # noticed here, not polled again by the stop that follows
                metrics.session_ended(self, ended)
                self._record_end(*self._poll_outcome(ended, restored))
        return status

    async def get_url(self):
        """The child's answer: wrapspawner does not pass JupyterHub's question on (a restarted hub asks it of a
        server whose start it did not see finish)."""
        if self.child_spawner is None:
            return await super().get_url()
        return await self.child_spawner.get_url()

    def _poll_outcome(self, ended: dict, restored: bool) -> tuple[str, str, float | None]:
        """How a server found ended by a poll ended: in its backend's words, else (found so at the hub's start; a
        local server leaves only its log) gone since its last activity."""
        if ended.get("words"):
            return record.outcome_of(ended), str(ended.get("words", "")), None
        if restored:
            last = self.orm_spawner.last_activity if self.orm_spawner is not None else None
            return "gone", "", last.replace(tzinfo=datetime.UTC).timestamp() if last else None
        return "ended", "", None

    async def stop(self, now=False):
        """Stop the server; the ledger says who asked (the user, an admin, the culler) or that the hub stopped it."""
        try:
            await super().stop(now=now)
        finally:
            outcome = self.stopped_by or ("hub-stopped" if self.listened else "failed")
            self._record_end(outcome, "", None)

    def _record_end(self, outcome: str, words: str, when: float | None):
        """The ledger's row ends; a Slurm job's accounting follows once sacct has it."""
        if self.ledger_id is None:
            return
        record.ended(self, self.ledger_id, outcome, words, when)
        account = getattr(self.child_spawner, "accounting", None)
        if account is not None and self.reconciled != self.ledger_id:  # a poll's end, then the stop that follows
            self.reconciled = self.ledger_id
            task = asyncio.ensure_future(self._reconcile(self.ledger_id, account))
            RECONCILING.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(RECONCILING.discard)

    async def _reconcile(self, session_id: int, account):
        try:
            record.accounted(self, session_id, await account())
        except Exception as e:  # noqa: BLE001 (the row keeps the hub's own times; the log says why)
            self.log.warning("Could not read Slurm's accounting of %s's session: %s", self.user.name, e)

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
        offer = self.offer(slug)
        child = self.child_spawner
        info: dict = child.session_info() if child is not None and hasattr(child, "session_info") else {}
        started = self.orm_spawner.started if self.orm_spawner is not None else None
        gets = self.profile_cards.get(slug, {}).get("gets", "")
        return {
            "profile": offer.display if offer else "",
            # what was chosen, in words (the card's "as you choose below" means nothing here)
            "gets": ", ".join(words(name, value) for name, value in self.chosen.items()) or gets,
            "since": started.strftime("%Y-%m-%d %H:%M UTC") if started else "",
            **info,
            "last_end": self.last_end,
        }

    async def progress(self):
        """The place in line while waiting for a turn, then the backend's own progress."""
        async for event in ADMISSION.progress(self):
            yield event
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
        self.saved_at = (ip, port)
        if self.server is not None and port:
            self.server.port = port
            if ip:
                self.server.ip = ip
        self.orm_spawner.state = self.get_state()
        session = object_session(self.orm_spawner)  # the hub's own session (Spawner.db is deprecated)
        if session is not None:
            session.commit()

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
        if self.ledger_id is not None:
            state["ledger_id"] = self.ledger_id
        if self.child_spawner:
            self.child_state = state["child_state"] = self.child_spawner.get_state()
        return state

    def load_state(self, state):
        Spawner.load_state(self, state)
        self.last_choices = state.get("last_choices", {})
        self.last_end = state.get("last_end", {}) if isinstance(state.get("last_end"), dict) else {}
        self.child_profile = state.get("profile", "")
        found = state.get("ledger_id")
        self.ledger_id = found if isinstance(found, int) and not isinstance(found, bool) else None
        # a hub reads a running session's state only at its start: the server had answered (or answers now)
        self.restored = self.listened = self.ledger_id is not None
        chosen = state.get("chosen", {})
        if self.offer(self.child_profile) is None:
            if self.child_profile:
                self.log.warning(
                    "%s's server ran on profile %r, which the site file no longer has; using %r",
                    self.user.name,
                    self.child_profile,
                    self.default_profile,
                )
            self.child_profile, chosen = self.default_profile, {}  # that profile's choices are not this one's
        self.chosen = self.saved_choices(self.child_profile, chosen)
        self.child_state = state.get("child_state", {})
        self.construct_child()

    def clear_state(self):
        """What a stopped server leaves: its last choices (for the next form) and how it ended (for the home page)."""
        last, end = self.last_choices, self.last_end
        super().clear_state()
        self.chosen, self.ledger_id, self.restored = {}, None, False
        self.last_choices, self.last_end = last, end

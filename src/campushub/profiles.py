"""wrapspawner's ProfilesSpawner, with a default profile and per-group access enforced by the hub."""

from __future__ import annotations

import html

from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import Dict, List, Unicode, default
from wrapspawner import ProfilesSpawner


class CampusProfilesSpawner(ProfilesSpawner):
    """Offers each user the profiles their groups allow, and refuses the others (403).

    The check runs in ``apply_user_options``, which JupyterHub calls before every
    start, from the API and from the form alike.
    """

    default_profile = Unicode(config=True, help="Slug of the profile used when a request names none.")
    profile_groups = Dict(
        value_trait=List(Unicode()),
        config=True,
        help="Slug -> groups allowed to use it; a slug not listed is open to all.",
    )

    def allowed(self, slug: str) -> bool:
        groups = self.profile_groups.get(slug)
        if not groups:
            return True
        return bool({g.name for g in self.user.groups} & set(groups))

    def offered(self):
        return [p for p in self.profiles if self.allowed(p[1])]

    def options_form(self, spawner=None):
        """The profile picker, or no form at all when only one profile is on offer."""
        offered = self.offered()
        if len(offered) < 2:
            return ""
        options = "".join(
            f'<option value="{html.escape(key)}"{" selected" if key == self.default_profile else ""}>'
            f"{html.escape(display)}</option>"
            for display, key, _cls, _conf in offered
        )
        return (
            '<label for="profile">Select a profile:</label>'
            f'<select class="form-control" id="profile" name="profile" required autofocus>{options}</select>'
        )

    def options_from_form(self, formdata):
        return {"profile": formdata.get("profile", [""])[0]}

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return type(self).choose_profile

    def choose_profile(self, user_options: dict):
        """Pick the requested profile (or the default), refusing unknown and forbidden ones."""
        slug = user_options.get("profile") or self.default_profile
        if not isinstance(slug, str) or slug not in {p[1] for p in self.profiles}:
            raise web.HTTPError(400, f"There is no profile {slug!r}.")
        if not self.allowed(slug):
            raise web.HTTPError(403, f"You may not use the profile {slug!r}.")
        self.user_options = {**user_options, "profile": slug}
        self.child_profile = slug
        self.select_profile(slug)
        # a server started before keeps its old child: start afresh with this profile
        self.child_spawner = None

    def construct_child(self):
        # the profile was chosen in choose_profile (start) or load_state (restore)
        self.select_profile(self.child_profile or self.default_profile)
        return super(ProfilesSpawner, self).construct_child()

    def get_state(self):
        """The profile's slug and the child's own state, never the profile's settings.

        wrapspawner saves the child's whole config (``child_conf``) and restores it over the
        site's at the next start; anything that could set an attribute of a spawner could then
        make the hub run commands of its choosing. Settings always come from the site file.
        """
        state = Spawner.get_state(self)
        state["profile"] = self.child_profile
        if self.child_spawner:
            self.child_state = state["child_state"] = self.child_spawner.get_state()
        return state

    def load_state(self, state):
        Spawner.load_state(self, state)
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
        self.child_state = state.get("child_state", {})
        self.construct_child()

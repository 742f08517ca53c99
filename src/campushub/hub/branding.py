"""The pages users see: the site's name, logo, colours, help and access links, and its announcement.

The hub's pages are JupyterHub's own templates, extended by campushub's (``templates/hub``),
which read one template variable, ``campushub``: :class:`PageVars` makes it for every page.
The announcement is the site file's, unless an admin has set one through
:class:`AnnouncementHandler`; both are plain text, shown escaped.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

from jupyterhub.apihandlers import APIHandler
from jupyterhub.scopes import Scope
from tornado import web

from ..ops import state
from ..sitefile.sections import ANNOUNCEMENT_MAX, BrandingSettings

#: the announcement set through the API, in the hub's state directory
ANNOUNCEMENT_FILE = "announcement.json"
API_PATH = r"/api/campushub/announcement"


LOGO_TYPES = (".png", ".jpg", ".jpeg", ".svg")


def problems(settings: BrandingSettings) -> list[str]:
    """A logo that cannot be read or is not an image type browsers show."""
    logo = settings.logo
    if logo is None:
        return []
    if logo.suffix.lower() not in LOGO_TYPES:
        return [f"branding.logo: {logo} is not one of {', '.join(LOGO_TYPES)}"]
    if not logo.is_file():
        return [f"branding.logo: no such file: {logo}"]
    return []


class Announcement:
    """The announcement on show: one set through the API (kept in ``state_dir``), else the site file's."""

    def __init__(self, state_dir: Path, default: str):
        self.path = state_dir / ANNOUNCEMENT_FILE
        self.default = default
        self._cached: tuple[float, dict] = (-1.0, {})

    def __repr__(self):
        return f"Announcement({str(self.path)!r}, default={self.default!r})"

    def current(self) -> dict:
        """``{"text", "by", "at"}``: ``by`` is the admin who set it, empty for the site file's."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return {"text": self.default, "by": "", "at": None}
        if self._cached[0] != mtime:
            self._cached = (mtime, json.loads(self.path.read_text()))
        return self._cached[1]

    def set(self, text: str, by: str) -> dict:
        value = {"text": text, "by": by, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        state.write_private(self.path, json.dumps(value))
        return value

    def clear(self) -> dict:
        self.path.unlink(missing_ok=True)
        return self.current()


class AnnouncementHandler(APIHandler):
    """``/hub/api/campushub/announcement``: anyone signed in reads it; only admins change it.

    ``PUT {"text": "..."}`` sets it (plain text, at most 500 characters; empty hides it),
    ``DELETE`` goes back to the site file's.
    """

    def initialize(self):
        self.announcement = self.settings["campushub_announcement"]

    def _admin_only(self):
        if self.parsed_scopes.get("admin:users") is not Scope.ALL:
            raise web.HTTPError(403, "Only hub admins can change the announcement.")

    @web.authenticated
    def get(self):
        self.finish(self.announcement.current())

    @web.authenticated
    def put(self):
        self._admin_only()
        body = self.get_json_body()
        if not isinstance(body, dict) or set(body) != {"text"} or not isinstance(body["text"], str):
            raise web.HTTPError(400, 'Send exactly {"text": "..."}: the announcement as plain text.')
        text = body["text"].strip()
        if len(text) > ANNOUNCEMENT_MAX:
            raise web.HTTPError(400, f"text: at most {ANNOUNCEMENT_MAX} characters (this has {len(text)}).")
        user = self.current_user
        self.finish(self.announcement.set(text, getattr(user, "name", "")))

    @web.authenticated
    def delete(self):
        self._admin_only()
        self.finish(self.announcement.clear())


#: WCAG 2's contrast for text (AA): every text campushub colours is at least this far from its background
AA = 4.5
WHITE, BLACK = "#ffffff", "#000000"
#: Bootstrap's dark theme's page background (JupyterHub's theme toggle)
DARK_PAGE = "#212529"


def luminance(color: str) -> float:
    """WCAG 2's relative luminance of ``#rrggbb``."""
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG 2's contrast ratio of two colours, from 1 to 21."""
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def text_color(background: str) -> str:
    """Black or white, whichever reads better on ``background``: always at least 4.58:1."""
    return BLACK if contrast(BLACK, background) >= contrast(WHITE, background) else WHITE


def readable(color: str, background: str) -> str:
    """``color``, darkened or lightened (towards black or white, away from ``background``) just enough to be read
    on ``background`` as text (:data:`AA`): a gold brand colour becomes a dark gold for links on white."""
    toward = BLACK if luminance(background) > 0.179 else WHITE
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    end = [int(toward[i : i + 2], 16) for i in (1, 3, 5)]
    for step in range(21):
        mixed = "#" + "".join(f"{round(c + (e - c) * step / 20):02x}" for c, e in zip(rgb, end, strict=True))
        if contrast(mixed, background) >= AA:
            return mixed
    return toward


def colors(settings: BrandingSettings) -> dict:
    """Every text colour the pages draw from the site's two colours, each readable (4.5:1) on its background:
    the top bar's text, buttons' text on the primary colour, and links and headings in the primary colour on the
    light and the dark theme's pages."""
    primary, header = settings.primary_color, settings.header_color
    return {
        "header_text": text_color(header) if header else "",
        "header_dark": header is not None and text_color(header) == WHITE,
        "button_text": text_color(primary),
        "link": readable(primary, WHITE),
        "link_dark": readable(primary, DARK_PAGE),
    }


class PageVars:
    """The ``campushub`` template variable: JupyterHub calls it for every page it renders."""

    def __init__(self, settings: BrandingSettings, announcement: Announcement, password_file: str = ""):
        self.fixed = settings.model_dump(exclude={"logo", "announcement"}) | colors(settings)
        self.fixed["default_logo"] = settings.logo is None
        self.fixed["password_file"] = password_file  # the embedded default: where its login's password is
        self.announcement = announcement

    def __call__(self, _user) -> dict:
        return {**self.fixed, "announcement": self.announcement.current()["text"]}

    def __repr__(self):
        return f"PageVars({self.fixed!r}, {self.announcement!r})"


def template_path() -> str:
    """The folder of campushub's hub templates (they extend JupyterHub's own)."""
    return str(resources.files("campushub").joinpath("templates", "hub"))

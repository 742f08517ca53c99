"""Debian's Chromium, as the tests drive it."""

from __future__ import annotations

from .env import REPO
from .network import RESOLVE_TEST_DOMAIN

#: Debian's Chromium, headless, kept off this machine's closed network
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Chromium's flags for the front door's tests
DOOR_CHROMIUM_FLAGS = [*CHROMIUM_FLAGS, RESOLVE_TEST_DOMAIN]
#: screenshots the tests keep
ARTIFACTS = REPO / "test-artifacts"

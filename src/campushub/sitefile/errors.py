"""Why campushub will not start: the site file, or the machine it runs on.

Both carry one line per problem; the command line prints them and exits with 2.
"""

from __future__ import annotations


class Problems(Exception):
    """One or more problems, each a line the admin can act on."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class SiteError(Problems):
    """The site file cannot be used: each line is ``field.path: reason``."""


class StartError(Problems):
    """The site file is fine, but this machine cannot run it as asked (an account, a program, root)."""


def raise_problems(problems: list[str]):
    """Raise :class:`SiteError` when there are any ``problems``."""
    if problems:
        raise SiteError(problems)

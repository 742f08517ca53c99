"""CSV cells that a spreadsheet shows as text, never runs.

Group names come from the campus sign-on, and some campuses let users make their own groups: a group named
``=HYPERLINK(...)`` or ``@SUM(...)`` would be a formula in the spreadsheet an admin opens a report in. A cell that
starts as a formula can start gets a leading ``'`` (OWASP's advice for CSV injection); numbers are left as they are.
"""

from __future__ import annotations

#: what a spreadsheet takes as the start of a formula (or, for tab and carriage return, of another cell)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value):
    """``value``, with a leading ``'`` if it is text that a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value

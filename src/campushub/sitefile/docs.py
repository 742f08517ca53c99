"""The site file's reference tables, generated from the models' field descriptions.

Markdown files mark each table with ``<!-- fields: NAME -->`` ... ``<!-- /fields -->``;
``python -m campushub.sitefile.docs docs/*.md`` rewrites what is between the markers, and
``--check`` only says which files differ (a test runs it, so the docs cannot drift).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ..auth import LOGINS
from ..auth.remote_user import IdTokenSettings
from ..backends import BACKENDS
from ..backends.base import ProfileBase
from .choices import AssociationChoice, CountChoice, DurationChoice, ListChoice, NumberChoice, SizeChoice
from .model import Site
from .sections import Certificate, FrontDoorSettings, OidcSettings, SamlSettings

TAGS = {"type", "backend"}
MARKER = re.compile(r"(<!-- fields: (?P<name>[\w.]+) -->\n)(.*?)(<!-- /fields -->)", re.S)


def models() -> dict[str, tuple[type[BaseModel], set[str]]]:
    """Each table's model, and the fields to leave out (those another table shows)."""
    tables: dict[str, tuple[type[BaseModel], set[str]]] = {
        name: (field.annotation, set())
        for name, field in Site.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }
    door = FrontDoorSettings
    tables.update(
        {
            "front_door": (door, {"certificate", "oidc", "saml"}),
            "front_door.certificate": (Certificate, set()),
            "front_door.oidc": (OidcSettings, set()),
            "front_door.saml": (SamlSettings, set()),
            "profiles": (ProfileBase, set()),
        }
    )
    for name, login in LOGINS.items():
        tables[f"auth.{name}"] = (login.settings, set())
    tables["auth.remote_user.id_token"] = (IdTokenSettings, set())
    for name, backend in BACKENDS.items():
        tables[f"profiles.{name}"] = (backend.profile, set(ProfileBase.model_fields))
        tables[f"profiles.{name}.choices"] = (backend.choices, set())
    for kind in (NumberChoice, CountChoice, SizeChoice, DurationChoice, ListChoice, AssociationChoice):
        tables[f"choices.{kind.__name__}"] = (kind, set())
    return tables


def default_text(field) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if value == "":
        return "empty"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | dict) and not value:
        return f"`{value}`"
    if isinstance(value, list):
        return "`[" + ", ".join(str(v) for v in value) + "]`"
    return f"`{value}`"


def table(model: type[BaseModel], leave_out: set[str]) -> str:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in TAGS or name in leave_out:
            continue
        description = (field.description or "").replace("|", "\\|")
        kind = next(
            (
                a.__name__
                for a in (field.annotation, *getattr(field.annotation, "__args__", ()))
                if isinstance(a, type) and a.__name__.endswith("Choice")
            ),
            None,
        )
        if kind:
            description += f" ({kind_names[kind]})"
        rows.append(f"| `{name}` | {default_text(field)} | {description} |")
    return "\n".join(rows) + "\n"


#: what the choice kinds are called in the docs
kind_names = {
    "NumberChoice": "a number",
    "CountChoice": "a whole number",
    "SizeChoice": "a size",
    "DurationChoice": "a time",
    "ListChoice": "a list",
    "AssociationChoice": "a list, or `user`",
}


def render(text: str) -> str:
    tables = models()

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in tables:
            raise SystemExit(f"sitedoc: no model for the table {name!r}")
        return match[1] + table(*tables[name]) + match[4]

    return MARKER.sub(fill, text)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path in (Path(p) for p in argv if p != "--check"):
        text = path.read_text()
        new = render(text)
        if new != text:
            stale.append(str(path))
            if not check:
                path.write_text(new)
    if check and stale:
        print(f"sitedoc: out of date (run scripts/site-doc): {' '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

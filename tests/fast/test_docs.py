"""Docs that are generated or listed from the code stay in step with it."""

import re

from campushub import cli
from campushub.sitefile import docs as sitedoc
from harness import REPO


def test_site_file_tables_are_generated_from_the_models():
    docs = sorted(str(p) for p in (REPO / "docs").glob("*.md"))
    assert sitedoc.main(["--check", *docs]) == 0, "run scripts/site-doc"


def test_every_command_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for command in cli.COMMANDS:
        assert f"| `campushub {command}" in readme, command


def test_the_architecture_table_names_every_module_once():
    """docs/architecture.md's module table: every module of the package, once, and no module that is gone."""
    package = REPO / "src" / "campushub"
    modules = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if "labextensions" not in p.parts)
    text = (REPO / "docs" / "architecture.md").read_text()
    table = text.split("\n## Modules\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([\w/]+\.py)` \|", table, re.M)
    assert sorted(listed) == modules, {"missing": set(modules) - set(listed), "gone": set(listed) - set(modules)}

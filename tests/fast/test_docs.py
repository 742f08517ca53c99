"""Docs that are generated or listed from the code stay in step with it."""

from campushub import cli, sitedoc
from harness import REPO


def test_site_file_tables_are_generated_from_the_models():
    docs = sorted(str(p) for p in (REPO / "docs").glob("*.md"))
    assert sitedoc.main(["--check", *docs]) == 0, "run scripts/site-doc"


def test_every_command_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for command in cli.HELP:
        assert f"| `campushub {command}" in readme, command

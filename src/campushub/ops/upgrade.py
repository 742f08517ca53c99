"""``campushub upgrade``: back the state up, then migrate the database with JupyterHub's own ``upgrade-db`` and the
sessions ledger with its own migrations (:mod:`campushub.ledger.store`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jupyterhub

from ..hub import CONFIG_FILE
from ..ledger import store
from ..sitefile.errors import StartError
from ..sitefile.model import Site
from . import backup, database, state


def upgrade(site: Site, path: Path, saved: Path | None = None, as_user: str | None = None) -> list[str]:
    """Migrate the site's database to this JupyterHub's schema; return what to tell the admin.

    The state is backed up first (into ``saved``, else ``state_dir/backups/before-upgrade-TIME``).
    ``as_user``: as root, do it as the account the hub runs as (``campushub up --as-user``).
    """
    if as_user:
        state.become(as_user, site.hub.state_dir)
    before, needed = database.revision(site), database.head()
    if before is None:
        return [f"the database {database.shown(site)} is new: nothing to upgrade (`campushub up` creates it)"]
    ledger_due = site.ledger.enabled and store.current(site) != store.head()
    if before == needed and not ledger_due:
        return [f"the database is at JupyterHub {jupyterhub.__version__}'s schema ({needed}): nothing to upgrade"]
    backup.refuse_live(site, "upgrading")
    saved = saved or site.hub.state_dir / "backups" / f"before-upgrade-{backup.stamp()}"
    backup.backup(site, saved)
    said = [f"backed up the state to {saved}"]
    if before != needed:
        said += _upgrade_jupyterhub(site, path, saved, before, needed)
    if ledger_due:
        ledger_before, ledger_after = store.migrate(site)
        said.append(f"migrated the sessions ledger from revision {ledger_before or '(none)'} to {ledger_after}")
    return said


def _upgrade_jupyterhub(site: Site, path: Path, saved: Path, before: str, needed: str) -> list[str]:
    """JupyterHub's own ``upgrade-db``."""
    result = subprocess.run(
        [sys.executable, "-m", "jupyterhub", "upgrade-db", "-f", str(CONFIG_FILE)],
        env={**os.environ, "CAMPUSHUB_CONFIG": str(path.absolute()), "PATH": _path_with_venv()},
        cwd=site.hub.state_dir,
        capture_output=True,
        text=True,
    )
    after = database.revision(site)
    if result.returncode or after != needed:
        raise StartError(
            [
                f"hub.db_url: jupyterhub upgrade-db did not finish (schema {after}, needed {needed}); the state"
                f" before it is in {saved} (`campushub restore --force {saved}`). Its output:",
                *result.stderr.strip().splitlines()[-15:],
            ]
        )
    return [
        f"upgraded the database {database.shown(site)} from schema {before} to {after}"
        f" (JupyterHub {jupyterhub.__version__}):",
        *(f"  {step}" for step in database.migrations(before, after)),
    ]


def _path_with_venv() -> str:
    """PATH with this Python's ``bin`` first: ``upgrade-db`` runs the ``alembic`` command found on PATH, which
    must be the one installed beside this JupyterHub (the venv's bin is often not on PATH, or unreadable folders
    such as root's are on it after ``--as-user``)."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])

"""``campushub backup DIR`` and ``campushub restore DIR``: the hub's database and the state's secrets.

The copy is consistent while the hub runs: SQLite's online backup API, or ``pg_dump``'s snapshot.
A manifest records what was copied (with checksums), by which versions, and when.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import jupyterhub

from .. import __version__
from ..sitefile.errors import StartError
from ..sitefile.model import Site
from . import database, health, state

MANIFEST = "manifest.json"
#: the state directory's own files that a backup carries (those that exist)
STATE_FILES = ("jupyterhub_cookie_secret", "proxy_auth_token", "shared_password", "admin_password", "announcement.json")
DUMPS = {"sqlite": database.SQLITE_FILE, "postgresql": "jupyterhub.pgdump"}


def backup(site: Site, dest: Path) -> dict:
    """Copy the database and the state's secrets into the new (or empty) folder ``dest``; return the manifest."""
    kind = _kind(site)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise StartError([f"{dest}: not an empty folder; back up into a new one"])
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.chmod(0o700)
    revision = database.revision(site)
    if kind == "sqlite":
        _sqlite_copy(Path(str(database.sqlite_file(site))), dest / DUMPS[kind])
    else:
        dump = state.private_file(dest / DUMPS[kind])  # pg_dump keeps the mode of a file that exists
        _run("pg_dump", ["--format=custom", "--no-owner", "--no-privileges", "--file", str(dump)], site)
        dump.chmod(0o600)
    names = [DUMPS[kind]]
    for name in STATE_FILES:
        if (site.hub.state_dir / name).exists():
            state.write_private(dest / name, (site.hub.state_dir / name).read_bytes())
            names.append(name)
    manifest = {
        "campushub": __version__,
        "jupyterhub": jupyterhub.__version__,
        "database": kind,
        "revision": revision,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {name: _sha256(dest / name) for name in names},
    }
    state.write_private(dest / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def restore(site: Site, source: Path, force: bool = False) -> tuple[dict, Path | None]:
    """Put the backup in ``source`` into the site's state (and database).

    Refuses while the site's hub runs, and over existing state unless ``force``; then that state is
    backed up first. Returns the manifest and where the earlier state was saved, if any.
    """
    kind = _kind(site)
    manifest = read_manifest(source)
    if manifest["database"] != kind:
        raise StartError(
            [f"hub.db_url: the backup in {source} holds a {manifest['database']} database; this site uses {kind}"]
        )
    if manifest["revision"]:
        try:
            database.alembic_script().get_revision(manifest["revision"])
        except Exception:  # noqa: BLE001 (alembic raises several kinds for a revision it does not know)
            raise StartError(
                [
                    f"{source}: made by JupyterHub {manifest['jupyterhub']}, whose database schema"
                    f" ({manifest['revision']}) this JupyterHub {jupyterhub.__version__} does not know; install that"
                    " version or a newer one"
                ]
            ) from None
    refuse_live(site, "restoring")
    state_dir = state.prepare(site.hub.state_dir)
    saved = None
    if holds_state(site):
        if not force:
            raise StartError(
                [
                    f"hub.state_dir: {state_dir} (or its database {database.shown(site)}) already holds a hub's state;"
                    " restore into a new state_dir, or give --force (the current state is backed up first)"
                ]
            )
        saved = state_dir / "backups" / f"before-restore-{stamp()}"
        backup(site, saved)
    dump = source / DUMPS[kind]
    if kind == "sqlite":
        target = Path(str(database.sqlite_file(site)))
        _sqlite_copy(dump, target)
        for leftover in (target.with_name(target.name + end) for end in ("-journal", "-wal", "-shm")):
            leftover.unlink(missing_ok=True)  # the replaced database's, never this one's
    else:
        restore_args = ["--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction"]
        _run("pg_restore", [*restore_args, "--exit-on-error", str(dump)], site)
    for name in manifest["files"]:
        if name in STATE_FILES:
            state.write_private(state_dir / name, (source / name).read_bytes())
    return manifest, saved


def read_manifest(source: Path) -> dict:
    """The backup's manifest, after checking every file it lists against its checksum."""
    try:
        manifest = json.loads((source / MANIFEST).read_text())
        files = manifest["files"]
        kind = manifest["database"]
    except (OSError, ValueError, KeyError, TypeError):
        raise StartError([f"{source}: not a campushub backup (no readable {MANIFEST})"]) from None
    if DUMPS.get(kind) not in files:
        raise StartError([f"{source}: the manifest lists no {kind} database"])
    for name, digest in files.items():
        if Path(name).name != name or not (source / name).is_file() or _sha256(source / name) != digest:
            raise StartError([f"{source}/{name}: missing or changed since the backup was made; not restoring it"])
    return manifest


def holds_state(site: Site) -> bool:
    """Whether the site's state directory, or its database, already holds a hub's state."""
    state_dir = site.hub.state_dir
    if any((state_dir / name).exists() for name in STATE_FILES):
        return True
    return database.revision(site) is not None


def refuse_live(site: Site, doing: str):
    """Raise when this site's hub runs: its state must not change under it."""
    pid = state.running_hub(site.hub.state_dir)
    url = health.health_url(site.hub.bind_url)
    if pid or health.answers(url, timeout=3):
        who = f"pid {pid}" if pid else f"it answers at {url}"
        raise StartError([f"hub.state_dir: the hub for this site is running ({who}); stop it before {doing}"])


def stamp() -> str:
    """A UTC time for folder names: 20261126T201500Z."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _kind(site: Site) -> str:
    kind = database.kind(site)
    if kind not in DUMPS:
        raise StartError([f"hub.db_url: campushub backs up SQLite and PostgreSQL databases, not {kind}"])
    return kind


def _sqlite_copy(source: Path, target: Path):
    """A consistent copy of a SQLite database, even while the hub writes to it (SQLite's online backup API)."""
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    state.private_file(partial)
    try:
        reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as e:
        raise StartError([f"{source}: cannot open the database: {e}"]) from None
    writer = sqlite3.connect(partial)
    try:
        with writer:
            reader.backup(writer)
    except sqlite3.Error as e:
        partial.unlink(missing_ok=True)
        raise StartError([f"{source}: cannot copy the database: {e}"]) from None
    finally:
        reader.close()
        writer.close()
    os.replace(partial, target)


def _run(program: str, args: list[str], site: Site):
    """PostgreSQL's ``pg_dump`` or ``pg_restore`` on the site's database, the password in its environment."""
    found = shutil.which(program)
    if not found:
        raise StartError([f"hub.db_url: {program} is not installed (Debian: apt-get install postgresql-client)"])
    dbname, env = database.libpq(site)
    result = subprocess.run([found, *dbname, *args], env=env, capture_output=True, text=True)
    if result.returncode:
        raise StartError([f"hub.db_url: {program} failed on {database.shown(site)}: {result.stderr.strip()}"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

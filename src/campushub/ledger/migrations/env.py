"""alembic's environment for the ledger: the connection comes from :func:`campushub.ledger.store.migrate`, and the
revisions are kept in a version table of the ledger's own (JupyterHub's ``alembic_version`` is JupyterHub's)."""

from alembic import context

from campushub.ledger.tables import METADATA

VERSION_TABLE = "campushub_ledger_version"

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=METADATA,
    version_table=VERSION_TABLE,
)
with context.begin_transaction():
    context.run_migrations()

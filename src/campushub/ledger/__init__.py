"""The sessions ledger: one row per server session in the hub's database, kept for as long as the site says.

:mod:`.tables` holds its schema (migrated by :mod:`.store` with alembic, beside JupyterHub's own), :mod:`.record`
writes it from the hub as sessions happen, :mod:`.report` reads it for ``campushub report`` and the admin page
(:mod:`.page`), :mod:`.totals` gives Prometheus its totals.
"""

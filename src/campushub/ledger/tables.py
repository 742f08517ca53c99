"""The ledger's tables (SQLAlchemy Core, in the hub's database beside JupyterHub's own).

Times are seconds since the epoch (UTC) as floats: the same in SQLite and PostgreSQL, and cheap to subtract in
a report. A session is one start of one user's server: asked for, started, ready, ended, with what it had and
where it ran; a start that failed is a session too (``outcome`` ``failed``).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text

METADATA = MetaData()

SESSIONS = Table(
    "campushub_sessions",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user", String(255), nullable=False),
    Column("server", String(255), nullable=False, default=""),
    Column("profile", String(255), nullable=False, default=""),
    Column("backend", String(32), nullable=False, default=""),
    # what it had: from the profile and the user's choices
    Column("cpus", Float),
    Column("memory_bytes", Float),
    Column("gpus", Integer, nullable=False, default=0),
    Column("time_limit_minutes", Integer),
    Column("choices", Text, nullable=False, default="{}"),  # the chosen values as JSON, as the user's card shows them
    # where it ran
    Column("host", String(255), nullable=False, default=""),
    Column("container", String(255), nullable=False, default=""),
    Column("job_id", String(32), nullable=False, default=""),
    Column("cluster", String(255), nullable=False, default=""),
    Column("account", String(255), nullable=False, default=""),
    Column("partition", String(255), nullable=False, default=""),
    # when
    Column("asked", Float, nullable=False),
    Column("started", Float),
    Column("ready", Float),
    Column("ended", Float),
    # how it ended: a short code (:data:`campushub.ledger.record.OUTCOMES`) and the words the user was told
    Column("outcome", String(32)),
    Column("words", Text, nullable=False, default=""),
    Column("notes", Text, nullable=False, default=""),
    # Slurm's accounting of the job, once it ended (sacct)
    Column("slurm_state", String(32)),
    Column("slurm_elapsed", Float),
    Column("slurm_cpu_seconds", Float),
    Index("campushub_sessions_asked", "asked"),
    Index("campushub_sessions_open", "ended"),
)

SESSION_GROUPS = Table(
    "campushub_session_groups",
    METADATA,
    Column("session_id", Integer, ForeignKey("campushub_sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Index("campushub_session_groups_name", "name"),
)

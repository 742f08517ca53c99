"""the sessions ledger: campushub_sessions and campushub_session_groups

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "campushub_sessions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("server", sa.String(255), nullable=False),
        sa.Column("profile", sa.String(255), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("cpus", sa.Float),
        sa.Column("memory_bytes", sa.Float),
        sa.Column("gpus", sa.Integer, nullable=False),
        sa.Column("time_limit_minutes", sa.Integer),
        sa.Column("choices", sa.Text, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("container", sa.String(255), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("cluster", sa.String(255), nullable=False),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("partition", sa.String(255), nullable=False),
        sa.Column("asked", sa.Float, nullable=False),
        sa.Column("started", sa.Float),
        sa.Column("ready", sa.Float),
        sa.Column("ended", sa.Float),
        sa.Column("outcome", sa.String(32)),
        sa.Column("words", sa.Text, nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("slurm_state", sa.String(32)),
        sa.Column("slurm_elapsed", sa.Float),
        sa.Column("slurm_cpu_seconds", sa.Float),
    )
    op.create_index("campushub_sessions_asked", "campushub_sessions", ["asked"])
    op.create_index("campushub_sessions_open", "campushub_sessions", ["ended"])
    op.create_table(
        "campushub_session_groups",
        sa.Column(
            "session_id",
            sa.Integer,
            sa.ForeignKey("campushub_sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(255), primary_key=True),
    )
    op.create_index("campushub_session_groups_name", "campushub_session_groups", ["name"])


def downgrade():
    op.drop_table("campushub_session_groups")
    op.drop_table("campushub_sessions")

"""The session event log, and per session: the log's end, the lease of the instance driving its turn, the tool
deadline and a cancel request.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent_sessions") as table:
        table.add_column(sa.Column("last_seq", sa.Integer, nullable=False, server_default="0"))
        table.add_column(sa.Column("state_seq", sa.Integer, nullable=False, server_default="0"))
        table.add_column(sa.Column("lease_owner", sa.String(200), nullable=True))
        table.add_column(sa.Column("lease_token", sa.Integer, nullable=False, server_default="0"))
        table.add_column(sa.Column("lease_until", sa.Float, nullable=True))
        table.add_column(sa.Column("deadline", sa.Float, nullable=True))
        table.add_column(sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_agent_sessions_deadline", "agent_sessions", ["deadline"])
    op.create_index("ix_agent_sessions_lease_until", "agent_sessions", ["lease_until"])
    op.create_table(
        "agent_session_events",
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("frame", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "seq"),
    )


def downgrade() -> None:
    op.drop_table("agent_session_events")
    op.drop_index("ix_agent_sessions_lease_until", "agent_sessions")
    op.drop_index("ix_agent_sessions_deadline", "agent_sessions")
    with op.batch_alter_table("agent_sessions") as table:
        for column in ("cancel_requested", "deadline", "lease_until", "lease_token", "lease_owner", "state_seq"):
            table.drop_column(column)
        table.drop_column("last_seq")

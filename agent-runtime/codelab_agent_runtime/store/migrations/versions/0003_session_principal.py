"""Each session's principal: the authenticated client whose call created it (null: created without one).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent_sessions") as table:
        table.add_column(sa.Column("principal", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agent_sessions") as table:
        table.drop_column("principal")

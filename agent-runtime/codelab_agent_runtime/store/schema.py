"""The two tables: one row per session (its state, its lease, its log's end) and the session's event log.

Alembic's migrations (`store/migrations/`) create and change them; these definitions are what the code queries.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData()

sessions_table = Table(
    "agent_sessions",
    metadata,
    Column("session_id", String(128), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_seq", Integer, nullable=False, server_default="0"),
    # The seq of the log's last event when `state` was written: events after it are not reflected in `state` yet.
    Column("state_seq", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_token", Integer, nullable=False, server_default="0"),
    Column("lease_until", Float, nullable=True),
    # When the earliest unanswered tool call of the turn times out (null: none waits).
    Column("deadline", Float, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, server_default=false()),
    # The authenticated client that owns the session (null: made by a call that named none).
    Column("principal", String(200), nullable=True),
    Index("ix_agent_sessions_deadline", "deadline"),
    Index("ix_agent_sessions_lease_until", "lease_until"),
)

events_table = Table(
    "agent_session_events",
    metadata,
    Column("session_id", String(128), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("frame", Text, nullable=False),
    PrimaryKeyConstraint("session_id", "seq"),
)

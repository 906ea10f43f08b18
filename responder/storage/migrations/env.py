"""Alembic environment: runs against the engine handed over in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import responder.assets.blast_store
import responder.assets.store
import responder.audit.store
import responder.commands
import responder.incidents.store
import responder.playbooks.runs
import responder.service.slack.seen
import responder.service.tokens  # noqa: F401  (register the tables)

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()

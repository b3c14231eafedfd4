"""Alembic's entry point: migrations run on the connection wulian hands over (planning/db.py)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

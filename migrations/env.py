"""Alembic environment: runs against the portal's configured database.

Called either from the `flask db ...` commands (which pass the engine in
`config.attributes["connection"]`) or from the plain `alembic` command line, in which
case the portal app is built from the environment to find the database.
"""

from __future__ import annotations

from alembic import context

from portal.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    from portal import create_app
    from portal.extensions import db

    app = create_app()
    with app.app_context(), db.engine.begin() as connection:
        run_migrations(connection)


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported; run them online.")
run_online()

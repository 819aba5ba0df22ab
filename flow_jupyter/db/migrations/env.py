"""Alembic environment: runs on the connection the caller provides (Database.migrate) or on the URL."""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.exc import ArgumentError

from flow_jupyter.db.models import Base

config = context.config
target_metadata = Base.metadata


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:  # the error create_engine(None) raises, with what is missing
        raise ArgumentError("no connection given (Database.migrate) and no sqlalchemy.url configured")
    with create_engine(url).connect() as conn:
        run(conn)
        conn.commit()

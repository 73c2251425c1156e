"""Alembic environment: run on the connection automed hands over, never on a config file URL."""

from __future__ import annotations

from alembic import context

from automed.storage.migrate import VERSION_TABLE
from automed.storage.schema import Base


def _only_automed(obj, name, type_, reflected, compare_to) -> bool:
    # Optuna's tables share the database; autogenerate must neither drop nor alter them.
    if type_ == "table":
        return bool(name) and name.startswith("automed_") and name != VERSION_TABLE
    return True


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    include_object=_only_automed,
)
with context.begin_transaction():
    context.run_migrations()

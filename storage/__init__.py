"""automed's SQL layer, installed as ``automed.storage``.

One database URL holds Optuna's tables and automed's own (prefixed ``automed_``), so a single
SQLite file or PostgreSQL database is a whole project, readable by ``optuna`` and
``optuna-dashboard`` as well as by ``automed leaderboard``.
"""

from automed.storage.store import (
    DEFAULT_URL,
    Store,
    redact_url,
    resolve_url,
    schema_revision,
    upgrade_database,
)

__all__ = ["DEFAULT_URL", "Store", "redact_url", "resolve_url", "schema_revision",
           "upgrade_database"]

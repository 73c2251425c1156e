"""Alembic migrations for automed's own tables (``automed_*``), never Optuna's.

The version is kept in ``automed_alembic_version`` because Optuna's migrations own
``alembic_version`` in the same database.
"""

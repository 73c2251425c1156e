"""Out-of-fold class probabilities of complete candidates, for ensemble selection.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "automed_oof",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("search_id", sa.Integer(), sa.ForeignKey("automed_searches.id"),
                  nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("n_classes", sa.Integer(), nullable=False),
        sa.Column("proba", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("search_id", "trial_number", name="uq_automed_oof_trial"),
    )
    op.create_index("ix_automed_oof_search_id", "automed_oof", ["search_id"])


def downgrade() -> None:
    op.drop_index("ix_automed_oof_search_id", "automed_oof")
    op.drop_table("automed_oof")

"""Leaderboard across studies: indexes for the cross-study ranking, and the refit best's test
predictions (labels and probabilities) for the report's confusion matrix, ROC and PR curves.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("automed_searches") as batch:
        batch.add_column(sa.Column("test_predictions", sa.JSON(), nullable=True))
    op.create_index("ix_automed_searches_dataset_id", "automed_searches", ["dataset_id"])
    # Ranking across every study filters on state (and often on the family) and orders by
    # the mean score: these keep a top-N query an index walk plus a small sort.
    op.create_index("ix_automed_candidates_state_score", "automed_candidates",
                    ["state", "score_mean"])
    op.create_index("ix_automed_candidates_family_score", "automed_candidates",
                    ["architecture", "state", "score_mean"])


def downgrade() -> None:
    op.drop_index("ix_automed_candidates_family_score", "automed_candidates")
    op.drop_index("ix_automed_candidates_state_score", "automed_candidates")
    op.drop_index("ix_automed_searches_dataset_id", "automed_searches")
    with op.batch_alter_table("automed_searches") as batch:
        batch.drop_column("test_predictions")

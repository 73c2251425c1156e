"""The first schema: datasets, searches and candidates, as the foundation created them.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "automed_datasets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("modality", sa.String(32), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("n_classes", sa.Integer(), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("class_counts", sa.JSON(), nullable=False),
        sa.Column("input_shape", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "automed_searches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_name", sa.String(255), nullable=False, unique=True),
        sa.Column("dataset_id", sa.Integer(), sa.ForeignKey("automed_datasets.id"),
                  nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("best_trial", sa.Integer(), nullable=True),
        sa.Column("test_scores", sa.JSON(), nullable=True),
        sa.Column("test_size", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "automed_candidates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("search_id", sa.Integer(), sa.ForeignKey("automed_searches.id"),
                  nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=False),
        sa.Column("architecture", sa.String(128), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("fold_scores", sa.JSON(), nullable=False),
        sa.Column("score_mean", sa.Float(), nullable=True),
        sa.Column("score_std", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("device", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("search_id", "trial_number", name="uq_automed_candidate_trial"),
    )
    op.create_index("ix_automed_candidates_rank", "automed_candidates",
                    ["search_id", "state", "score_mean"])
    op.create_index("ix_automed_candidates_search_id", "automed_candidates", ["search_id"])
    op.create_index("ix_automed_candidates_architecture", "automed_candidates",
                    ["architecture"])


def downgrade() -> None:
    op.drop_table("automed_candidates")
    op.drop_table("automed_searches")
    op.drop_table("automed_datasets")

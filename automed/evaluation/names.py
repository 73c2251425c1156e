"""Metric and averaging names: what the CLI and a plan validate, without importing sklearn."""

from __future__ import annotations

from automed.errors import ConfigError

AVERAGES = ("macro", "weighted", "micro", "binary")
# The metrics that threshold the probabilities per class, so --average applies to them.
AVERAGED = ("recall", "precision", "f1", "specificity")
METRIC_NAMES = ("accuracy", "balanced_accuracy", "recall", "precision", "f1", "specificity",
                "auroc", "auprc")
ALIASES = {"acc": "accuracy", "sensitivity": "recall", "auc": "auroc", "roc_auc": "auroc",
           "average_precision": "auprc", "bacc": "balanced_accuracy"}


def resolve_metric(name: str) -> str:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in METRIC_NAMES:
        raise ConfigError(
            f"unknown metric {name!r}; choose from {', '.join(METRIC_NAMES)} "
            f"(aliases: {', '.join(ALIASES)})"
        )
    return key

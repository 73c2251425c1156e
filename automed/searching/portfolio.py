"""A portfolio of known-good starts per modality and family, shipped as data.

``portfolio.json`` (beside this module) lists, for each modality and family, an ordered list of
configurations. Each entry is a set of overrides on the family's own ``default_params(spec)``
(``{}`` is the default itself), so entries keep the family's data-size scaling (batch size,
epochs) unless they override it. ``benchmarks/portfolio.py`` regenerates the file from an
offline meta-search on the shared datasets; ``$AUTOMED_PORTFOLIO`` names another file.

A search queues the portfolio first, round-robin: every family's first entry (strong and
cheap families first), then every family's second entry, and so on. With ``--trials`` at most
half the budget (and at least one entry per family) goes to the portfolio; TPE continues
from there, knowing the portfolio's results.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

PACKAGED = Path(__file__).with_name("portfolio.json")


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw.get("portfolios", {}) if isinstance(raw, dict) else {}


def entries(modality: str, family: str) -> list[dict[str, Any]]:
    """The ordered overrides for ``family`` on ``modality``; ``[{}]`` when none are listed."""
    path = os.environ.get("AUTOMED_PORTFOLIO") or str(PACKAGED)
    listed = _load(path).get(modality, {}).get(family)
    out = [e.get("params", e) for e in listed or [] if isinstance(e, dict)]
    return out or [{}]


def interleave(per_family: list[tuple[str, list[dict]]], limit: int | None) -> list[tuple]:
    """Round-robin over families, best family first, cut at ``limit`` (None: all)."""
    out: list[tuple[str, dict]] = []
    depth = max((len(c) for _, c in per_family), default=0)
    for r in range(depth):
        out += [(name, configs[r]) for name, configs in per_family if r < len(configs)]
    return out if limit is None else out[:max(limit, len(per_family))]

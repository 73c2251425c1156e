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

from automed.errors import ConfigError

PACKAGED = Path(__file__).with_name("portfolio.json")


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    """The portfolios of a portfolio file; a file that cannot serve is one line naming it
    (QA: a missing or broken $AUTOMED_PORTFOLIO searched with no portfolio at all, unsaid)."""
    where = f"$AUTOMED_PORTFOLIO={path}" if path != str(PACKAGED) else path
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{where}: not a readable portfolio file ({reason}); fix it, or "
                          "unset AUTOMED_PORTFOLIO for the packaged portfolio") from None
    portfolios = raw.get("portfolios") if isinstance(raw, dict) else None
    if not isinstance(portfolios, dict):
        raise ConfigError(f"{where}: has no \"portfolios\" object (see "
                          "benchmarks/portfolio.py, which writes one); fix it, or unset "
                          "AUTOMED_PORTFOLIO for the packaged portfolio")
    return portfolios


def _path() -> str:
    return os.environ.get("AUTOMED_PORTFOLIO") or str(PACKAGED)


def check() -> None:
    """Refuse an unusable portfolio file before a search writes anything."""
    _load(_path())


def entries(modality: str, family: str) -> list[dict[str, Any]]:
    """The ordered overrides for ``family`` on ``modality``; ``[{}]`` when none are listed."""
    listed = _load(_path()).get(modality, {}).get(family)
    out = [e.get("params", e) for e in listed or [] if isinstance(e, dict)]
    return out or [{}]


def interleave(per_family: list[tuple[str, list[dict]]], limit: int | None) -> list[tuple]:
    """Round-robin over families, best family first, cut at ``limit`` (None: all)."""
    out: list[tuple[str, dict]] = []
    depth = max((len(c) for _, c in per_family), default=0)
    for r in range(depth):
        out += [(name, configs[r]) for name, configs in per_family if r < len(configs)]
    return out if limit is None else out[:max(limit, len(per_family))]

"""Render leaderboard rows (from :meth:`automed.storage.Store.leaderboard`) for people."""

from __future__ import annotations

import json

SHOWN_METRICS = ("accuracy", "f1", "auroc")


def _fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_table(rows: list[dict], *, show_state: bool = False) -> str:
    if not rows:
        return "(no candidates)"
    metric = rows[0]["metric"]
    extra = [m for m in SHOWN_METRICS if m != metric]
    header = ["rank", "trial", "architecture", f"{metric} (mean ± std)", *extra, "folds",
              "time"]
    per_family = "gap_to_best" in rows[0]
    if per_family:
        header.insert(4, "behind best")
    if show_state:
        header.append("state")
    lines = []
    for r in rows:
        score = "-" if r["score_mean"] is None else \
            f"{r['score_mean']:.4f} ± {r['score_std']:.4f}"
        cells = [str(r["rank"]), str(r["trial"]), r["architecture"], score,
                 *[_fmt((r["metrics"] or {}).get(m)) for m in extra],
                 str(len(r["fold_scores"] or [])), f"{r['duration_s']:.1f}s"]
        if per_family:
            cells.insert(4, _fmt(r["gap_to_best"]))
        if show_state:
            state = r["state"]
            if r.get("error"):
                state += ": " + r["error"].splitlines()[0][:80]
            cells.append(state)
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)) for cells in lines]
    return "\n".join(out)


def format_test_scores(scores: dict | None, size: int | None) -> str:
    if not scores:
        return ""
    parts = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if v is not None)
    return f"test ({size} samples): {parts}"


def to_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2, default=str)

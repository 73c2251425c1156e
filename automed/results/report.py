"""``automed report``: one self-contained HTML page about a study.

Everything is inline (CSS and SVG, no scripts, no links), so the file can be mailed, archived
or opened offline and still shows its plots. Sections: summary, leaderboard, optimisation
history, parameter importances, per-family comparison, and the answer on the test set
(scores, confusion matrix, ROC and precision-recall curves).
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import numpy as np

from automed.errors import AutomedError, StorageError
from automed.results import svgplot
from automed.results.describe import (
    ACTIVE,
    answer_label,
    choice_words,
    effective_status,
    ensemble_verdict,
    metric_labels,
    next_step,
    objective_words,
    sample_counts,
    study_summary,
)
from automed.results.leaderboard import SHOWN_METRICS, intervals_words
from automed.storage import Store

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 8px;border-bottom:1px solid #eee;
text-align:left}th{background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#666;font-style:italic}.warning{color:#b00;font-weight:bold}.plots{display:flex;flex-wrap:wrap;gap:12px}
svg text{font:11px system-ui,sans-serif}svg .t{font-size:13px;text-anchor:middle}
svg .l{text-anchor:middle}svg .xt{text-anchor:middle}svg .yt{text-anchor:end}
svg .ax{stroke:#444}svg .g{stroke:#eee}
"""
MIN_TRIALS_FOR_IMPORTANCE = 3


def _num(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{escape(c)}</td>' if i in numeric else f"<td>{escape(c)}</td>"
        for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def leaderboard_section(rows: list[dict], metric: str) -> str:
    # The objective has its own mean ± std column: not repeated among the other metrics.
    extra = [m for m in SHOWN_METRICS if m != metric]
    body = [[str(r["rank"]), str(r["trial"]), r["architecture"],
             f"{_num(r['score_mean'])} ± {_num(r['score_std'])}",
             *[_num((r["metrics"] or {}).get(m)) for m in extra],
             str(len(r["fold_scores"] or [])), f"{r['duration_s']:.1f}s"] for r in rows]
    header = ["rank", "trial", "architecture", f"{metric} (mean ± std)", *extra, "folds",
              "time"]
    return _table(header, body, numeric={0, 1, *range(3, len(header))}) if rows else \
        _note("no completed candidates")


def history_section(candidates: list[dict], metric: str) -> str:
    done = [c for c in candidates if c["state"] == "complete"]
    pruned = [c for c in candidates if c["state"] == "pruned" and c["score_mean"] is not None]
    if not done:
        return _note("no completed candidates yet")
    best, steps = -np.inf, []
    for c in sorted(done, key=lambda c: c["trial"]):
        best = max(best, c["score_mean"])
        steps.append((c["trial"], best))
    series = [{"name": "complete", "points": [(c["trial"], c["score_mean"]) for c in done]},
              {"name": "best so far", "points": steps, "kind": "step", "color": "#222"}]
    if pruned:
        series.insert(1, {"name": "pruned (partial mean)", "color": "#aaa",
                          "points": [(c["trial"], c["score_mean"]) for c in pruned]})
    return svgplot.xy_chart(series, title="Optimisation history", xlabel="trial",
                            ylabel=f"CV {metric}")


def anytime_section(candidates: list[dict], metric: str, config: dict) -> str:
    """Best CV score so far against wall time, per family and overall (an anytime curve)."""
    done = [c for c in candidates if c["state"] == "complete" and c.get("created_at")
            and c["trial"] >= 0]
    if not done:
        return _note("no completed candidates yet")

    def finished(c: dict) -> float:
        return datetime.fromisoformat(c["created_at"]).timestamp()

    t0 = min(finished(c) - (c["duration_s"] or 0.0) for c in done)
    # Each curve runs on to the last candidate that finished, of any state: the plateau is
    # what an anytime curve shows (QA: a best never beaten was one invisible point, and the
    # axis ended at the last improvement of a search that ran on three times as long).
    end = max(finished(c) for c in candidates if c.get("created_at") and c["trial"] >= 0)
    series = []
    families = sorted({c["architecture"] for c in done})
    for name in [None, *families] if len(families) > 1 else families:
        best, points = -np.inf, []
        for c in sorted((c for c in done if name is None or c["architecture"] == name),
                        key=finished):
            if c["score_mean"] is not None and c["score_mean"] > best:
                best = c["score_mean"]
                points.append(((finished(c) - t0) / 60, best))
        item = {"name": name or "all families", "points": points, "kind": "step",
                "until": (end - t0) / 60}
        if name is None:
            item["color"] = "#222"
        series.append(item)
    chart = svgplot.xy_chart(series, title="Best so far against wall time",
                             xlabel="minutes since the first candidate started",
                             ylabel=f"best CV {metric}",
                             xlim=(0.0, max((end - t0) / 60, 1e-3)))
    t = config.get("timing") or {}
    phases = [f"{k} {t[f'{k}_s']:.0f} s" for k in ("search", "answer", "refit", "ensemble")
              if t.get(f"{k}_s") is not None]
    text = ""
    if phases:
        text = f"Last run's wall time: {' + '.join(phases)} = {t.get('total_s', 0):.0f} s"
        if t.get("timeout"):
            over = t.get("total_s", 0) - t["timeout"]
            text += (f" against --timeout {t['timeout']:g} s ({over:.0f} s over it, spent "
                     "on the answer)" if over > 0 else
                     f", within --timeout {t['timeout']:g} s")
        text = _note(text + ".")
    return chart + text


def stopped_section(candidates: list[dict]) -> str:
    """Candidates stopped early (pruned, collapsed) or failed, with the stored reason."""
    rows = [[str(c["trial"]), c["architecture"], c["state"],
             (c["error"] or "").splitlines()[0][:120] if c["error"] else "-",
             str(len(c["fold_scores"] or [])), f"{c['duration_s']:.1f}s"]
            # interrupted: cut short by a stop or a lost worker (QA: left out, and the
            # section said none was stopped)
            for c in candidates if c["state"] in ("pruned", "collapsed", "failed", "interrupted")]
    if not rows:
        return _note("no candidate was stopped early, failed or was interrupted")
    n_col = sum(r[2] == "collapsed" for r in rows)
    cut = sum(r[2] == "interrupted" for r in rows)
    return (_note(f"{len(rows)} candidate(s) stopped early, failed or interrupted, {n_col} of "
                  "them collapsed (predicting one class, or a training loss that did not fall)"
                  + (f", {cut} interrupted (a resume runs them again)" if cut else ""))
            + _table(["trial", "architecture", "state", "reason", "folds", "time"], rows,
                     numeric={0, 4, 5}))


def _capped(trials: list, max_epochs: int | None) -> list[str]:
    """Epoch parameters that --max-epochs capped in every trial: drawn, never trained (QA:
    `mlp.epochs` ranked 0.10-0.26 where every trial trained 2 epochs)."""
    if not max_epochs or not trials:
        return []
    names = set.intersection(*(set(t.params) for t in trials))
    return sorted(p for p in names if p.split(".")[-1] == "epochs"
                  and all(isinstance(t.params[p], (int, float))
                          and t.params[p] >= max_epochs for t in trials))


def _importances(trials: list, leave_out: tuple = ()) -> tuple[dict[str, float], list[str]]:
    """fANOVA importances over the parameters every trial has with the same distribution,
    and the names of those left out because their range differed between trials (Optuna
    refuses such a "dynamic search space": e.g. ``cnn.lr``, whose range depends on the
    optimizer the trial drew)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" lines
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    common = set.intersection(*(set(t.params) for t in trials))
    dynamic = sorted(p for p in common
                     if any(t.distributions[p] != trials[0].distributions[p] for t in trials))
    # A parameter with one value in every trial explains nothing; fANOVA rejects it anyway.
    params = sorted(p for p in common - set(dynamic) - set(leave_out)
                    if len({repr(t.params[p]) for t in trials}) > 1)
    if not params:
        return {}, dynamic
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return (optuna.importance.get_param_importances(study, evaluator=evaluator, params=params),
            dynamic)


def importance_section(store: Store, study: str) -> str:
    import optuna

    try:
        ostudy = optuna.load_study(study_name=study, storage=store.optuna_storage())
    except (KeyError, StorageError) as exc:
        return _note(f"no Optuna study {study!r} in the database ({exc})")
    complete = ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:  # QA: an empty section, without a word
        return _note("no completed candidates: importances need at least "
                     f"{MIN_TRIALS_FOR_IMPORTANCE}")
    groups = {"all families": complete}
    for c in complete:
        groups.setdefault(f"family {c.params.get('architecture')}", []).append(c)
    if len({c.params.get("architecture") for c in complete}) <= 1:
        groups.pop("all families")  # one family: its own chart says it all
    charts, notes = [], []
    try:
        max_epochs = (store.search(study)["config"] or {}).get("max_epochs")
    except AutomedError:
        max_epochs = None
    for name, trials in groups.items():
        capped = _capped(trials, max_epochs)
        if capped:
            notes.append(f"{name}: left out {', '.join(capped)}: --max-epochs {max_epochs} "
                         "capped every trial's draw, so none trained the epochs it drew")
        if len(trials) < MIN_TRIALS_FOR_IMPORTANCE:
            notes.append(f"{name}: {len(trials)} completed trial(s), importances need at "
                         f"least {MIN_TRIALS_FOR_IMPORTANCE}")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values, dynamic = _importances(trials, tuple(capped))
        except (ValueError, RuntimeError) as exc:  # too little variation for fANOVA
            notes.append(f"{name}: importances unavailable ({str(exc).splitlines()[0]})")
            continue
        if dynamic:
            notes.append(f"{name}: left out {', '.join(dynamic)}, whose range differs between "
                         "its trials (it depends on another parameter, e.g. the optimizer)")
        if values:
            charts.append(svgplot.bar_chart(values, title=f"Parameter importance: {name}",
                                            xlabel="fANOVA importance (sums to 1)"))
        else:
            notes.append(f"{name}: no parameter varied across its trials")
    return f'<div class="plots">{"".join(charts)}</div>' + "".join(map(_note, notes))


def family_section(summary: dict, candidates: list[dict], metric: str) -> str:
    groups: dict[str, list[float]] = {}
    for c in candidates:
        if c["state"] == "complete":
            groups.setdefault(c["architecture"], []).append(c["score_mean"])
    rows = []
    for name, fam in sorted(summary["families"].items()):
        own = [c for c in candidates if c["architecture"] == name]
        states = {s: sum(c["state"] == s for c in own)
                  for s in ("complete", "pruned", "collapsed", "failed")}
        scores = groups.get(name, [])
        rows.append([name, str(len(own)), str(states["complete"]), str(states["pruned"]),
                     str(states["collapsed"]), str(states["failed"]),
                     str(len(own) - sum(states.values())), _num(fam["best"]),
                     _num(float(np.median(scores)) if scores else None),
                     f"{np.mean([c['duration_s'] for c in own]):.1f}s"])
    header = ["family", "candidates", "complete", "pruned", "collapsed", "failed",
              "interrupted or running", "best", "median", "mean time"]
    if all(r[6] == "0" for r in rows):  # the column only when a candidate is counted in it
        header, rows = header[:6] + header[7:], [r[:6] + r[7:] for r in rows]
    table = _table(header, rows, numeric=set(range(1, len(header))))
    chart = svgplot.strip_chart(dict(sorted(groups.items())), title="Per-family comparison",
                                ylabel=f"CV {metric}") if groups else ""
    return table + chart


def answer_title(info: dict) -> str:
    """The test section's heading, naming what answered (as ``automed show`` does)."""
    label = answer_label(info)
    if label is None:
        return "The answer on the test set"
    config = info.get("config") or {}
    how = {"folds": "its fold models, not refit",
           "refit": "refit on all training data"}.get(config.get("answer_from"))
    return f"The answer on the test set: {label}" + (f" ({how})" if how else "")


def _test_scores_table(info: dict) -> str:
    """The answer's test scores with their 95 % bootstrap intervals when stored, and beside
    an ensemble that answers, the best single candidate's own scores."""
    config = info.get("config") or {}
    how = config.get("test_intervals") or {}
    # too few patients to resample: no interval column (QA: one of "-" in every row)
    ci = {} if how.get("resampled") == "too few groups" else config.get("test_ci") or {}
    alone = ((config.get("single") or {}).get("test_scores")
             if config.get("answer") == "ensemble" else None)
    header = ["metric", "test score"]
    if ci:
        header.append(f"95 % CI ({config.get('bootstrap')} bootstrap resamples)")
    if alone:
        header.append(f"best single #{info['best_trial']} alone")
    rows = []
    labels = metric_labels(config, info.get("classes") or [])
    for k, v in info["test_scores"].items():
        row = [labels.get(k, k), _num(v)]
        if ci:
            c = ci.get(k) or {}
            row.append("-" if c.get("low") is None else
                       f"{_num(c['low'])} – {_num(c['high'])}")
        if alone:
            row.append(_num(alone.get(k)))
        rows.append(row)
    table = _table(header, rows, numeric=set(range(1, len(header))))
    skipped = (config.get("single") or {}).get("skipped")
    if config.get("answer") == "ensemble" and not alone:
        table += _note(f"best single #{info['best_trial']} alone: not scored on the test set"
                       + (f" ({skipped})" if skipped else ""))
    if how and (ci or how.get("resampled") == "too few groups"):
        # how a grouped search drew them (QA: the report never said)
        table += _note("95 % intervals" + intervals_words(how))
    elif not ci:
        table += _note("no 95 % intervals: the search ran with --bootstrap 0"
                       if config.get("bootstrap") == 0 else "no 95 % intervals stored")
    return table


def test_section(info: dict, predictions: dict | None) -> str:
    if not info["test_scores"] or not predictions:
        config = info.get("config") or {}
        if config.get("n_test") and info["status"] != "complete":
            # QA: an interrupted or failed search's report said it "had no test set"
            status = effective_status(info)
            why = ("the search is still running" if status in ACTIVE else
                   f"the search stopped before its answer ({status}); "
                   + next_step(info, status))
            return _note(f"no test scores yet for its test set of {config['n_test']} samples: "
                         f"{why}")
        return _note("no test predictions stored: the search had no test set (give --test, "
                     "or a .npz with test_* arrays), or it ran before automed stored them")
    from sklearn import metrics as skm

    from automed.evaluation import metrics as M

    y = np.asarray(predictions["y_true"], dtype=int)
    proba = np.asarray(predictions["proba"], dtype=float)
    classes = [str(c) for c in predictions["classes"]]
    scores = _test_scores_table(info)
    cm = skm.confusion_matrix(y, proba.argmax(1), labels=list(range(len(classes))))
    charts = [svgplot.heatmap(cm.tolist(), classes, title="Confusion matrix (test set)")]
    # Binary: the positive class only; more classes: one-vs-rest per class.
    # (class 0 is a positive class too: "or 1" took it for none; QA)
    pos = info["config"].get("pos_label")
    pos = 1 if pos is None else int(pos)
    shown = [pos] if len(classes) == 2 else list(range(len(classes)))
    roc, pr = [], []
    for k in shown:
        truth = y == k
        if truth.all() or not truth.any():
            continue  # a curve needs both outcomes
        # Binary: ranked as the test score was (log-odds, robust to saturated probabilities).
        rank = M.binary_score(proba, k) if len(classes) == 2 else proba[:, k]
        fpr, tpr, _ = skm.roc_curve(truth, rank)
        prec, rec, _ = skm.precision_recall_curve(truth, rank)
        auc = skm.roc_auc_score(truth, rank)
        ap = skm.average_precision_score(truth, rank)
        roc.append({"name": f"{classes[k]} (AUC {auc:.3f})", "kind": "line",
                    "points": list(zip(fpr.tolist(), tpr.tolist()))})
        pr.append({"name": f"{classes[k]} (AP {ap:.3f})", "kind": "line",
                   "points": list(zip(rec.tolist(), prec.tolist()))})
    if roc:
        roc.append({"name": "chance", "kind": "line", "points": [(0, 0), (1, 1)],
                    "color": "#999", "dash": True})
        charts.append(svgplot.xy_chart(roc, title="ROC curve (test set)",
                                       xlabel="false positive rate",
                                       ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1)))
        charts.append(svgplot.xy_chart(pr, title="Precision-recall curve (test set)",
                                       xlabel="recall", ylabel="precision", xlim=(0, 1),
                                       ylim=(0, 1)))
    config = info["config"] or {}
    folds = config.get("answer_from") == "folds"
    how = ("each member the k models of its cross-validation, not refit" if folds else
           "members refit on all training data")
    what = (f"{config['ensemble']['label']} (greedy ensemble selection on out-of-fold "
            f"predictions; {how})" if config.get("answer") == "ensemble" else
            f"candidate #{info['best_trial']}"
            + (" (the k models of its cross-validation, not refit)" if folds else ""))
    chosen = choice_words(config.get("choice")) if config.get("answer") != "ensemble" else ""
    if chosen:
        what += f"; {chosen}"
    ens = config.get("ensemble") or {}
    if config.get("answer") != "ensemble" and ens.get("label") and "better" in ens:
        single = f"#{ens['against']}" if ens.get("against") is not None else "the best single"
        # the search's own words (its progress line), from the stored selection
        what += f"; {ens['label']}: {ensemble_verdict(ens, single)}"
    return (f"<p>The answer: {escape(what)}, scored once on "
            f"{info['test_size']} test samples.</p>" + scores
            + f'<div class="plots">{"".join(charts)}</div>')


def build_report(store: Store, study: str, *, top: int = 20) -> str:
    """The report as one HTML string."""
    info = store.search(study)
    candidates = store.candidates(study)
    summary = study_summary(info, candidates)
    metric = info["metric"]
    states = ", ".join(f"{n} {s}" for s, n in sorted(summary["states"].items())) or "none"
    facts = _table(["", ""], [
        ["dataset", f"{info['dataset']} ({info['modality']}, {sample_counts(info)}, "
                    f"{len(info['classes'])} classes)"],
        ["objective", objective_words(info["config"] or {}, metric, info["classes"])],
        ["status", summary["status"]],
        ["candidates", f"{summary['n_candidates']} ({states})"],
        ["compute", f"{summary['total_duration_s']:.1f}s on "
                    f"{', '.join(summary['devices']) or '-'}"],
        ["created", info["created_at"]],
    ])
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sections = [
        ("Leaderboard", leaderboard_section(
            store.leaderboard(study, top=top, states=("complete", "ensemble")), metric)),
        ("Optimisation history", history_section(candidates, metric)),
        ("Best so far against wall time", anytime_section(candidates, metric,
                                                          info["config"] or {})),
        ("Stopped early", stopped_section(candidates)),
        ("Parameter importances", importance_section(store, study)),
        ("Architecture families", family_section(summary, candidates, metric)),
        (answer_title(info), test_section(info, store.test_predictions(study))),
    ]
    said = (info["config"] or {}).get("leakage_warnings") or []
    if said:  # QA: the search printed them, the report left them out
        sections.insert(0, ("Warnings", "".join(
            f'<p class="warning">{escape(w)}</p>' for w in said)))
    body = "".join(f"<h2>{escape(title)}</h2>{html}" for title, html in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>automed report: {escape(study)}</title><style>{CSS}</style></head><body>"
            f"<h1>automed report: {escape(study)}</h1>{facts}{body}"
            f'<p class="note">generated by automed {generated}</p></body></html>')


def write_report(store: Store, study: str, path: str | Path, *, top: int = 20) -> Path:
    """Write :func:`build_report` to ``path``; return the path."""
    html = build_report(store, study, top=top)
    out = Path(path)
    out.write_text(html, encoding="utf-8")
    return out

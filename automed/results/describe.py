"""``automed show``: one study or one candidate in words (settings, scores, timing, errors)."""

from __future__ import annotations

import json
import shlex
from collections import Counter

from automed.evaluation.names import AVERAGED, METRIC_NAMES
from automed.results.leaderboard import format_test_scores


def _score(mean: float | None, std: float | None, folds: int = 2) -> str:
    """``mean ± std``; one fold has no spread: "± -", as the leaderboard says it (QA: show
    said "± 0.0000" of a candidate stopped after one fold)."""
    if mean is None:
        return "-"
    return f"{mean:.4f} ± " + (f"{std or 0:.4f}" if folds > 1 else "-")


# What a search record says while its process works on it: searching, then making the answer.
ACTIVE = ("running", "answering", "refitting")


def effective_status(info: dict, n_candidates: int | None = None) -> str:
    """The stored status, unless it says running but the process that wrote it is gone.

    A SIGKILL leaves no chance to write "interrupted"; the search records its host and process
    id, so on that host a dead owner is told apart from a live one (another host's process
    cannot be checked from here and keeps the stored word). A study made by ``search
    --workers 0`` says how far its workers got (QA: "created" after workers ran candidates
    and were stopped); ``n_candidates`` defaults to the row's own count (``Store.studies``).
    """
    import os
    import socket

    status = info["status"]
    n = info.get("n_candidates") if n_candidates is None else n_candidates
    if status == "created" and n:
        trials = (info.get("config") or {}).get("trials")
        return f"created; workers ran {n}{f' of {trials}' if trials else ''} candidates"
    owner = (info.get("config") or {}).get("owner") or {}
    if status in ACTIVE and owner.get("host") == socket.gethostname():
        try:
            os.kill(int(owner["pid"]), 0)
        except ProcessLookupError:
            return (f"stopped while {status} (process {owner['pid']} is gone); run the same "
                    "command again to resume")
        except (PermissionError, KeyError, TypeError, ValueError):
            pass
    failure = (info.get("config") or {}).get("failure")
    if status == "failed" and failure:
        return f"failed ({failure})"
    return status


def scoring_words(config: dict, metric: str, classes: list) -> str:
    """How the metric is averaged and which class is positive, where that matters: "" for
    accuracy on any data, " (binary, positive class 'healthy')", " (macro)". QA: the
    positive class was named nowhere a user reads."""
    average = config.get("average")
    pos = config.get("pos_label")
    # Only where the metric uses them (QA: "accuracy (binary, positive class 'sick')"):
    # averaging for the thresholded metrics, the positive class for those and auprc.
    given = ((config.get("plan") or {}).get("pos_label") is not None) or average == "binary"
    # a macro recall has no positive class (review: "recall (macro, positive class 'sick')"
    # read as the class's sensitivity again)
    uses = (metric in AVERAGED and average == "binary") or metric == "auprc"
    positive = (f"positive class {str(classes[int(pos)])!r}" if given and uses
                and pos is not None and len(classes) == 2 and 0 <= int(pos) < 2 else "")
    # ... and how a ranking metric averages its classes, where there are more than two (QA:
    # "3-fold CV by auprc" of a micro-averaged search)
    # Averaged metrics say how on two classes too (QA: a two-class card's macro "recall" and
    # "specificity", both the balanced accuracy, read as sensitivity and specificity).
    parts = [average] if average and (metric in AVERAGED
                                      or (metric in ("auroc", "auprc") and len(classes) > 2)) \
        else []
    parts += [positive] if positive else []
    return f" ({', '.join(parts)})" if parts else ""


def metric_labels(config: dict, classes: list) -> dict[str, str]:
    """Each stored metric's name as printed beside its test score: averaged metrics say how
    ("recall (macro)", "f1 (binary, positive class 'sick')"). QA: a two-class model card's
    "recall" and "specificity" were macro averages (both the balanced accuracy) and read as
    the positive class's sensitivity and specificity."""
    return {m: m + scoring_words(config, m, classes) for m in METRIC_NAMES}


def averaging_note(searches: list[dict], metrics: list[str]) -> str | None:
    """A note where searches shown side by side average a shown metric differently, else
    None. ``searches``: :meth:`Store.search` dicts; ``metrics``: the table's metric names.
    QA: across studies, a binary f1 (one class's) and a macro f1 shared one column and were
    ranked against each other by ``--sort f1`` without a word."""
    differ = []
    # the averaged metrics only: a two-class auroc beside a three-class one's macro is no
    # choice a user made (review)
    for m in dict.fromkeys(x for x in metrics if x in AVERAGED):
        ways = {s["study"]: scoring_words(s["config"] or {}, m, s["classes"] or []).strip(" ()")
                for s in searches}
        if len(set(ways.values())) > 1:
            differ.append((m, ways))
    if not differ:
        return None
    m, ways = differ[0]
    by_way: dict[str, list[str]] = {}
    for study, way in ways.items():
        by_way.setdefault(way or "no averaging", []).append(repr(study))
    said = "; ".join(f"{way} in {', '.join(sorted(names))}" for way, names in by_way.items())
    names = ", ".join(x for x, _ in differ)
    return (f"note: these searches score {names} differently ("
            f"{f'{m}: ' if len(differ) > 1 else ''}{said}); those columns compare only "
            "within one search, not across them")


def grouping_words(config: dict) -> str:
    """How the folds keep patients together: "" when they do not group. QA: grouped CV was
    said nowhere but the model card, and without its column."""
    if not config.get("grouped"):
        return ""
    by, n = config.get("group_by"), config.get("n_groups")
    return ("; folds grouped" + (f" by {by}" if by else "") + (f" ({n} groups)" if n else ""))


def objective_words(config: dict, metric: str, classes: list) -> str:
    """'3-fold CV by f1 (binary, positive class 'sick'); folds grouped by 'patient' (45
    groups)': the search's objective, as the search, show and the report say it."""
    return (f"{config.get('folds')}-fold CV by {metric}{scoring_words(config, metric, classes)}"
            f"{grouping_words(config)}")


def ensemble_verdict(e: dict, single: str) -> str:
    """What the search does with a selected ensemble, and why (the first rule it fails): ``e``
    its progress event, or its stored record (``oof_score``/``single_oof_score``), so the
    search's line and the report say one thing."""
    if e["better"]:
        if e.get("late"):
            return ("better, but refitting its members would end past --timeout; "
                    f"keeping {single}")
        return "better: answering with it" if e.get("from_folds") else \
            "better: refitting its members"
    if e.get("keeps_metric") is False:
        return f"worse at the search's metric than {single}; keeping that one"
    score = e.get("score", e.get("oof_score"))
    lead = e.get("single", e.get("single_oof_score"))
    if e.get("p_better") is None or (score is not None and lead is not None
                                     and score <= lead + e.get("margin", 0.0)):
        return f"not better than {single} by more than its fold noise; keeping that one"
    if e.get("lead_note"):
        return f"ahead of {single}, but {e['lead_note']}; keeping that one"
    confidence = e.get("confidence")
    under = f"under {confidence:.0%}: " if confidence is not None else ""
    return (f"ahead of {single} at the search's metric in only {e['p_better']:.0%} of paired "
            f"resamples ({under}within chance); keeping that one")


def choice_words(choice: dict | None) -> str:
    """Why the first portfolio start answers rather than the leader, as the search said it
    ("" when the leader answers). QA: the report's "in only 99 %" left out the 99.7 % asked,
    and show said just "answer: #0"."""
    if not choice or choice.get("answer") == choice.get("leader"):
        return ""
    if choice["diff"] <= 0:
        return ("the first portfolio start, "
                + (f"ahead of the leader #{choice['leader']} (first by its mean fold score) on "
                   f"their pooled out-of-fold predictions by {-choice['diff']:.4f}"
                   if choice["diff"] < 0 else
                   f"level with the leader #{choice['leader']} (first by its mean fold score) "
                   "on their pooled out-of-fold predictions"))
    if choice.get("note"):
        return (f"the first portfolio start, since the leader #{choice['leader']} was ahead of "
                f"it out-of-fold by {choice['diff']:+.4f}, but {choice['note']}")
    asked = (f", under the {choice['confidence']:.1%} asked of the best of "
             f"{choice.get('challengers', 1)} challengers" if choice.get("confidence") else "")
    return (f"the first portfolio start, since the leader #{choice['leader']} was ahead of it "
            f"out-of-fold by {choice['diff']:+.4f} in only {choice['p_better']:.1%} of paired "
            f"bootstrap resamples{asked}")


def next_step(info: dict, status: str) -> str:
    """What finishes a search that stopped before its answer."""
    study = info.get("study") or "STUDY"
    if status == "created":  # QA: "run the same command again" only created it again
        return (f"it was created with --workers 0: join it with `automed worker --study "
                f"{study}`, then run the search command without --workers 0 to answer")
    if status == "searched":
        return ("its workers used the budget: run the search command without --workers 0 to "
                "answer")
    failure = (info.get("config") or {}).get("failure") or ""
    if status.startswith("failed") and "completed" in failure:
        # QA: "run the same command again" of a study whose candidates all failed: a resume
        # counts them as done and fails the same way
        return (f"none of its candidates completed: see `automed leaderboard --study "
                f"{shlex.quote(study)} --all` for why, fix it, and search again under a new "
                "--study name")
    return "run the same command again to finish it"


def answer_label(info: dict) -> str | None:
    """What answers a study (a study record, see ``Store.search``): ``"ensemble of #0, #4"``
    when an ensemble does, else its single candidate ``"#3"``; None before it answers.

    The record's ``best_trial`` is the best single candidate even when an ensemble answers,
    and its ``test_scores`` are the answer's: never name one with the other's scores.
    """
    cfg = info.get("config") or {}
    label = (cfg.get("ensemble") or {}).get("label")
    if cfg.get("answer") == "ensemble" and label:
        return label
    return None if info.get("best_trial") is None else f"#{info['best_trial']}"


def sample_counts(info: dict) -> str:
    """A study's sample count in words: the dataset's (the whole file, whose fingerprint it
    is), and with --test-fraction how many of them the search used and held out as test."""
    cfg = info.get("config") or {}
    text = f"{info['n_samples']} samples"
    if cfg.get("test_fraction") and cfg.get("n_train") is not None:
        text += (f" in the file: {cfg['n_train']} for the search, {cfg['n_test']} held out "
                 "as test")
    return text


def study_summary(info: dict, candidates: list[dict]) -> dict:
    """The study record plus what its candidates add up to (counts, time, per family)."""
    families: dict[str, dict] = {}
    for c in candidates:
        if c["state"] == "ensemble":
            continue  # a blend of candidates, not a family
        fam = families.setdefault(c["architecture"], {"candidates": 0, "complete": 0,
                                                      "best": None, "best_trial": None})
        fam["candidates"] += 1
        if c["state"] == "complete":
            fam["complete"] += 1
            if fam["best"] is None or c["score_mean"] > fam["best"]:
                fam["best"], fam["best_trial"] = c["score_mean"], c["trial"]
    return dict(info, status=effective_status(info, len(candidates)), answer=answer_label(info),
                states=dict(Counter(c["state"] for c in candidates)),
                n_candidates=len(candidates),
                total_duration_s=sum(c["duration_s"] or 0 for c in candidates),
                devices=sorted({c["device"] for c in candidates if c["device"]}),
                families=families)


def format_study(summary: dict) -> str:
    cfg = summary["config"]
    objective = objective_words(cfg, summary["metric"], summary["classes"])
    lines = [
        f"study {summary['study']!r}: {summary['status']}, created {summary['created_at']}",
        f"  dataset: {summary['dataset']} ({summary['modality']}, {sample_counts(summary)}, "
        f"classes {', '.join(map(str, summary['classes']))}; "
        f"fingerprint {summary['dataset_fingerprint'][:12]})",
        # the averaging once, where the metric uses it (QA: "by f1 (macro) (average macro,
        # seed 1)", and "by auroc (average macro, ...)" on two classes)
        f"  objective: {objective} (seed {cfg.get('cv_seed')})",
        f"  candidate{'' if summary['n_candidates'] == 1 else 's'}: {summary['n_candidates']} "
        f"({', '.join(f'{n} {s}' for s, n in sorted(summary['states'].items())) or 'none'}), "
        f"{summary['total_duration_s']:.1f}s in total on {', '.join(summary['devices']) or '-'}",
    ]
    for name, fam in sorted(summary["families"].items()):
        best = "-" if fam["best"] is None else f"{fam['best']:.4f} (#{fam['best_trial']})"
        lines.append(f"  family {name}: {fam['candidates']} "
                     f"candidate{'' if fam['candidates'] == 1 else 's'}, "
                     f"{fam['complete']} complete, best {best}")
    for warning in cfg.get("leakage_warnings") or []:  # QA: printed by the search only
        lines.append(f"  WARNING: {warning}")
    if summary["best_trial"] is not None:
        size, labels = summary["test_size"], metric_labels(cfg, summary["classes"])
        chosen = choice_words(cfg.get("choice")) if cfg.get("answer") != "ensemble" else ""
        lines.append(f"  answer: {answer_label(summary)}"
                     + (f" ({chosen})" if chosen else "")
                     + (f"; {format_test_scores(summary['test_scores'], size, labels)}"
                        if summary["test_scores"] else " (no test set)"))
        if cfg.get("answer") == "ensemble":
            # The test scores above are the ensemble's; the best single's own, when measured.
            alone = (cfg.get("single") or {}).get("test_scores")
            # why it is not the leaderboard's leader, when it is not (QA: said nowhere)
            why = choice_words(cfg.get("choice"))
            lines.append(f"  best single candidate: #{summary['best_trial']}"
                         + (f" ({why})" if why else "")
                         + (f"; on its own, {format_test_scores(alone, size, labels)}"
                            if alone else ""))
    return "\n".join(lines)


def format_candidate(c: dict) -> str:
    lines = [
        f"candidate #{c['trial']} of study {c['study']!r}: {c['architecture']}, {c['state']}",
        f"  {c['metric']}: "
        f"{_score(c['score_mean'], c['score_std'], len(c['fold_scores'] or []))} over "
        f"{len(c['fold_scores'] or [])} fold(s)",
        "  per fold: " + (", ".join(f"{v:.4f}" for v in c["fold_scores"]) or "-"),
        "  metrics (fold mean): " + (", ".join(
            f"{k} {v:.4f}" for k, v in (c["metrics"] or {}).items() if v is not None) or "-"),
        f"  time: {c['duration_s']:.2f}s on {c['device'] or '-'} (recorded {c['created_at']})",
        "  params: " + json.dumps(c["params"], sort_keys=True),
    ]
    if c.get("retry_of") is not None:
        lines.append(f"  re-runs #{c['retry_of']} (cut short), with its seeds and place in "
                     "the budget")
    if c.get("retried_as"):
        lines.append("  re-run as " + ", ".join(f"#{n}" for n in c["retried_as"]))
    if c["error"]:  # a failed candidate's error; a stopped one's reason (QA: "error:")
        lines.append("  error:" if c["state"] == "failed" else "  reason:")
        lines += [f"    {line}" for line in c["error"].rstrip().splitlines()]
    return "\n".join(lines)

#!/usr/bin/env python
"""How each way of choosing the answer from one search's candidates scores on its test set.

    python benchmarks/search_vs_peer.py --data ../shared/data/breastmnist/breastmnist_28.npz \
        --timeout 300 --first --keep /tmp/r/breast
    python benchmarks/selection_rules.py /tmp/r/breast [/tmp/r/ecg200 ...]

Reads a search kept by ``search_vs_peer.py --first --keep`` (its study database and every
complete candidate's fold models) and scores, once each on the locked test set, the answer
each selection rule would have given, all from the same candidates, out-of-fold
predictions and fold models, so that the rules differ in nothing but the choice:

- ``first``: the first portfolio candidate (trial 0);
- ``best``: the leaderboard's best single (highest CV mean);
- ``paired 95 %``: the best single only when a paired bootstrap of the out-of-fold
  predictions has it ahead of the first candidate in 95 % of resamples, else the first;
- ``paired 1-0.05/m``: the same at automed's confidence, corrected for the best of m
  challengers (automed.searching.selection.choose_single);
- ``answer``: what the search answered (recorded in its database);
- ``caruana``: greedy ensemble selection (log-loss, or the ranking metric) with no gate, and
  the same by the metric first with log-loss breaking its ties;
- ``top3``: the equal-weight mean of the three best singles' probabilities;
- ``nested``: the ensemble when greedy selection run on the other folds' rows, scored on each
  fold's (an honest out-of-fold estimate of the procedure), beats the paired rule's single
  in 95 % of paired resamples, else that single.

Also ``oracle``, the best single on the test set, which no rule can know.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def analyse(keep: Path) -> dict:
    import optuna

    from automed.evaluation import metrics as M
    from automed.searching import ensemble as E
    from automed.searching import foldbag
    from automed.searching.plan import SearchPlan
    from automed.searching.prepare import prepare
    from automed.searching.selection import choose_single, paired_lead
    from automed.storage import Store

    url = f"sqlite:///{keep}/automed.db"
    store = Store(url, create=False)
    study = store.latest_study()
    info = store.search(study)
    cfg = info["config"]
    p = prepare(SearchPlan.from_dict(cfg["plan"]))
    root = foldbag.candidates_dir(cfg["artifact"])
    ranked = [r["trial"] for r in store.leaderboard(study) if r["state"] == "complete"]
    oof = {t: E.unit_rows(a) for t, a in store.oof(info["id"], ranked).items()
           if np.isfinite(a).all()}
    ranked = [t for t in ranked if t in oof and foldbag.trial_dir(root, t).is_dir()]
    y, yt = np.asarray(p.train.y), np.asarray(p.test.y)
    test = {t: foldbag.load_bag(root, t).predict_proba(p.test.x) for t in ranked}

    def score(proba, metric=p.metric):
        return round(float(M.score(metric, yt, proba, p.average, p.pos_label)), 4)

    def row(label, proba):
        return {"rule": label, p.metric: score(proba), "auroc": score(proba, "auroc")}

    best = ranked[0]
    first = 0 if 0 in oof else best
    lead = paired_lead(y, oof[best], oof[first], p.metric, p.average, p.pos_label,
                       confidence=0.95)
    # automed's own rule (corrected for the best of m challengers), as the search applies it
    trials = {t.number: t for t in optuna.load_study(study_name=study, storage=url)
              .get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
    chosen, choice = choose_single(p, store, info["id"], trials, trials[best])
    single, m = chosen.number, (choice or {}).get("challengers", 0)
    objective = (lambda yy, pp: M.score(p.metric, yy, pp, p.average, p.pos_label)) \
        if p.metric in E.RANKING_METRICS else E.neg_log_loss
    sel = E.greedy_select(oof, y, objective, ranked[:E.POOL], max_members=E.MAX_MEMBERS)
    top3 = ranked[:3]

    def lexicographic(yy, pp):  # the metric first, log-loss to break its ties
        return M.score(p.metric, yy, pp, p.average, p.pos_label) + 1e-3 * E.neg_log_loss(yy, pp)

    lex = E.greedy_select(oof, y, lexicographic, ranked[:E.POOL], max_members=E.MAX_MEMBERS)
    rows = [row(f"first #{first}", test[first]), row(f"best #{best}", test[best]),
            row(f"paired 95 % #{best if lead.beats else first} (P={lead.p_better:.4f})",
                test[best if lead.beats else first]),
            row(f"paired 1-0.05/{m} #{single}" if choice else f"paired: #{single} leads",
                test[single]),
            {"rule": f"answer ({cfg.get('answer')})",
             p.metric: round(info["test_scores"][p.metric], 4),
             "auroc": round(info["test_scores"]["auroc"], 4)},
            row(sel.label() + " (caruana)", E.blend(test, sel.weights)),
            row(lex.label() + " (caruana, metric then log-loss)", E.blend(test, lex.weights)),
            row("top3 " + ", ".join(f"#{t}" for t in top3),
                E.blend(test, {t: 1 / 3 for t in top3}))]
    ens = cfg.get("ensemble") or {}
    if cfg.get("answer") == "ensemble":
        weights = {int(t): w for t, w in ens["weights"].items()}
        ens_lead = paired_lead(y, E.blend(oof, weights), oof[single], p.metric, p.average,
                               p.pos_label)
        kept = "ensemble" if ens_lead.beats else f"#{single}"
        proba = E.blend(test, weights) if ens_lead.beats else test[single]
        rows.append(row(f"paired+ensemble: {kept} (P={ens_lead.p_better:.3f})", proba))
    # The ensemble procedure scored honestly: select on the other folds' out-of-fold rows,
    # blend on this fold's, so no row scores a selection it took part in.
    nested = np.zeros_like(oof[ranked[0]])
    for _, va in p.splits:
        rest = np.setdiff1d(np.arange(len(y)), va)
        s = E.greedy_select({t: oof[t][rest] for t in ranked[:E.POOL]}, y[rest], objective,
                            ranked[:E.POOL], max_members=E.MAX_MEMBERS)
        nested[va] = E.blend({t: oof[t][va] for t in s.weights}, s.weights)
    nest = paired_lead(y, nested, oof[single], p.metric, p.average, p.pos_label)
    full = E.blend(test, sel.weights) if nest.beats else test[single]
    rows.append(row(f"nested: {'ensemble' if nest.beats else f'#{single}'} "
                    f"(diff {nest.diff:+.4f}, P={nest.p_better:.3f})", full))
    oracle = max(ranked, key=lambda t: score(test[t]))
    rows.append(row(f"oracle #{oracle}", test[oracle]))
    return {"keep": str(keep), "study": study, "metric": p.metric, "complete": len(ranked),
            "cv": {t: round(float(np.mean(store.candidate(study, t)["fold_scores"])), 4)
                   for t in ranked[:5]}, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("keep", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = []
    for keep in args.keep:
        res = analyse(keep)
        out.append(res)
        print(f"{keep.name}: {res['complete']} complete, metric {res['metric']}, "
              f"top CV {res['cv']}", file=sys.stderr)
        for r in res["rows"]:
            print(f"  {r['rule']:<48} {r[res['metric']]:.4f}  auroc {r['auroc']:.4f}",
                  file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

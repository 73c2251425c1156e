#!/usr/bin/env python
"""automed's search and the plain Optuna peer, started together, at the same wall time.

    python benchmarks/search_vs_peer.py --data ../shared/data/breastmnist/breastmnist_28.npz \
        --timeout 300 --json /tmp/breast.json
    python benchmarks/search_vs_peer.py --data ../shared/data/ucr_ecg200/ECG200_TRAIN.txt \
        --timeout 180 --json /tmp/ecg200.json
    python benchmarks/search_vs_peer.py --data ../shared/data/uci_splice_junction/splice.data \
        --timeout 300 --first
    python benchmarks/search_vs_peer.py --data \
        ../shared/data/ohsumed_textgcn/ohsumed_23_textgcn.jsonl --timeout 900 --first

Both processes start at the same moment with one torch thread each and the same --timeout
(the peer, benchmarks/baseline_plain_optuna.py, applies it to its study.optimize and then
refits; automed's --timeout also covers its refit and ensemble, and reports its phases).
Test sets: the data's own split (MedMNIST test_*, UCR _TEST file, Ohsumed's TextGCN split),
scored once by each; splice has none, so a fixed stratified 20 % (seed 0) is written to a test
file that both sides read. For text the peer is scikit-learn's TF-IDF + LinearSVC
(benchmarks/text_baseline.py), which needs about a second: it is not given the wall time.
The automed side also reports candidates per state, how many collapsed candidates reached
a full fold, the first portfolio candidate's refit test score, and the ensemble chosen.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def automed_side(args) -> dict:
    import torch

    torch.set_num_threads(1)
    import automed
    from automed.searching.refit import refit_best
    from automed.storage import Store

    data = Path(args.data)
    test = data.with_name(data.name.replace("_TRAIN", "_TEST")) if data.suffix == ".txt" \
        else Path(args.test) if args.test else None
    storage = f"sqlite:///{args.workdir}/automed.db"
    events = []
    if args.first:
        from automed.searching import foldbag

        foldbag.KEEP = 10**6  # keep the first candidate's fold models, however it ranks
    started = time.perf_counter()
    result = automed.search(data, test=test, folds=args.folds, timeout=args.timeout,
                            storage=storage, seed=args.seed, artifacts=args.workdir,
                            refit_full=args.refit_full,
                            progress=lambda e: events.append((time.perf_counter(), e)))
    total = time.perf_counter() - started
    rows = Store(storage).candidates(result.study)
    rows = [r for r in rows if r["trial"] >= 0]
    states = {s: sum(r["state"] == s for r in rows) for s in
              ("complete", "pruned", "collapsed", "failed")}
    info = Store(storage).search(result.study)
    cfg = info["config"]
    out = {
        "data": data.name, "timeout": args.timeout, "folds": args.folds, "seed": args.seed,
        "candidates": len(rows), **states,
        "collapsed_after_a_full_fold": sum(r["state"] == "collapsed" and
                                           len(r["fold_scores"] or []) >= 1 for r in rows),
        "best_single": {"trial": result.best["trial"], "cv": result.best["score_mean"],
                        "architecture": result.best["architecture"],
                        "test": (cfg.get("single") or {}).get("test_scores")},
        "choice": cfg.get("choice"),  # leader vs first start (automed.searching.selection)
        "answer": cfg.get("answer"), "answer_from": cfg.get("answer_from"),
        "ensemble": (cfg.get("ensemble") or {}).get("label"),
        "ensemble_oof": (cfg.get("ensemble") or {}).get("oof_score"),
        "test_acc": result.test_scores["accuracy"], "test_auc": result.test_scores["auroc"],
        "test_ci": {k: result.test_ci[k] for k in ("accuracy", "auroc")}
        if result.test_ci else None,
        "timing": result.timing, "total_seconds": round(total, 1),
        # where the search's time went: candidate seconds per state, and the pruned ones
        # that trained at least one whole fold first (stopped at a fold step, not an epoch)
        "seconds_by_state": {s: round(sum(r["duration_s"] or 0.0 for r in rows
                                          if r["state"] == s), 1) for s in states},
        "pruned_after_a_full_fold": sum(r["state"] == "pruned" and
                                        len(r["fold_scores"] or []) >= 1 for r in rows),
    }
    after = _AfterTheRace(cfg, result.artifact)
    if out["best_single"]["test"] is None and result.artifact and result.test_scores:
        # skipped inside the race when it would end past --timeout: scored here, after it
        scores = after.bag_scores(result.best["trial"])
        if scores is not None:
            out["best_single"].update(test=scores, scored_after_the_race=True)
    first = next((r for r in rows if r["trial"] == 0), None)
    if args.first and first is not None and first["state"] == "complete":
        # The first portfolio candidate, answered the way the search answers (its fold
        # models; refit with --refit-full) and scored on the same test set, after the race.
        import optuna

        scores = None if args.refit_full else after.bag_scores(0)
        from_folds = scores is not None
        if scores is None:
            study = optuna.load_study(study_name=result.study, storage=storage)
            scores = refit_best(after.prepared, study.trials[0],
                                torch.device("cpu")).test_scores
        out["first_candidate"] = {"cv": first["score_mean"], "from_folds": from_folds,
                                  "test_acc": scores["accuracy"],
                                  "test_auc": scores["auroc"]}
    return out



class _AfterTheRace:
    """Test scores computed after the race from a search's kept fold bags, on its data
    prepared once (PneumoniaMNIST's loading is paid one time, not per score)."""

    def __init__(self, cfg: dict, artifact: str | None) -> None:
        self.cfg, self.artifact = cfg, artifact
        self._prepared = None
        self._scores: dict[int, dict | None] = {}

    @property
    def prepared(self):
        if self._prepared is None:
            from automed.searching.plan import SearchPlan
            from automed.searching.prepare import prepare

            self._prepared = prepare(SearchPlan.from_dict(self.cfg["plan"]))
        return self._prepared

    def bag_scores(self, trial: int) -> dict | None:
        """Every test metric of ``trial``'s fold bag; None without one."""
        if trial not in self._scores:
            from automed.evaluation import metrics as M
            from automed.searching import foldbag

            bag = (None if self.artifact is None else
                   foldbag.load_bag(foldbag.candidates_dir(self.artifact), trial))
            p = self.prepared if bag is not None else None
            self._scores[trial] = (None if bag is None else M.all_scores(
                p.test.y, bag.predict_proba(p.test.x), p.average, p.pos_label))
        return self._scores[trial]

def split_lines(path: Path, tmp: Path, fraction: float = 0.2, seed: int = 0):
    """A stratified test split of a one-record-per-line file (class first), as two files."""
    import numpy as np

    lines = [line for line in path.read_text().splitlines() if line.strip()]
    labels = np.array([line.split(",")[0].strip() for line in lines])
    rng = np.random.default_rng(seed)
    test = set()
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.update(idx[:round(fraction * len(idx))].tolist())
    train_file, test_file = tmp / f"{path.stem}_train.data", tmp / f"{path.stem}_test.data"
    train_file.write_text("\n".join(x for i, x in enumerate(lines) if i not in test) + "\n")
    test_file.write_text("\n".join(x for i, x in enumerate(lines) if i in test) + "\n")
    return str(train_file), test_file


def text_baseline(path: Path) -> dict:
    """scikit-learn TF-IDF + LinearSVC on the data's own split (the text peer)."""
    sys.path.insert(0, str(HERE))
    from text_baseline import baseline

    from automed.data.loaders import load_data

    d = load_data(path)
    out = baseline(d.train, d.test)
    return {"peer": "TF-IDF (1-2-grams, sublinear tf, min_df 2) + LinearSVC(C=0.5)",
            "test_acc": round(out["test_accuracy"], 4), "fit_predict_s": out["fit_predict_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--timeout", type=float, required=True)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--first", action="store_true",
                    help="also test the first portfolio candidate (after the race)")
    ap.add_argument("--refit-full", action="store_true",
                    help="automed refits its answer instead of answering with fold models")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", type=Path,
                    help="keep automed's study database and models in this folder")
    ap.add_argument("--automed-only", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--test", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.automed_only:
        args.automed_only.write_text(json.dumps(automed_side(args), indent=2, default=str))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = str(args.keep.resolve())
        env_cmd = [sys.executable]
        data, test = args.data, []
        if data.endswith(".data"):  # DNA lines: a fixed stratified test split, as files
            data, test_file = split_lines(Path(data), Path(tmp))
            test = ["--test", str(test_file)]
        ours = subprocess.Popen(
            [*env_cmd, __file__, "--data", data, "--timeout", str(args.timeout),
             "--folds", str(args.folds), "--seed", str(args.seed), "--workdir", tmp,
             "--automed-only", f"{tmp}/ours.json", *test,
             *(["--first"] if args.first else []),
             *(["--refit-full"] if args.refit_full else [])])
        if data.endswith(".jsonl"):
            peer = None
            text_peer = text_baseline(Path(data))
        else:
            peer = subprocess.Popen(
                [*env_cmd, str(HERE / "baseline_plain_optuna.py"), "--data", data, *test,
                 "--trials", "100000", "--timeout", str(args.timeout), "--folds",
                 str(args.folds), "--seed", str(args.seed), "--threads", "1", "--json",
                 f"{tmp}/peer.json"], stdout=subprocess.DEVNULL)
        for proc in (ours, peer):
            if proc is not None and proc.wait() != 0:
                raise SystemExit(f"{proc.args[1]} exited with {proc.returncode}")
        result = {"data": Path(args.data).name, "timeout_s": args.timeout,
                  "machine": f"{platform.machine()}, 1 torch thread per side",
                  "date": time.strftime("%Y-%m-%d"),
                  "automed": json.loads(Path(f"{tmp}/ours.json").read_text()),
                  "peer": json.loads(Path(f"{tmp}/peer.json").read_text()) if peer
                  else text_peer}
    print(json.dumps(result, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""How fast the leaderboard answers with 100,000 stored candidates, on SQLite and PostgreSQL.

Fills a fresh database (a temporary SQLite file; a new PostgreSQL database that is dropped
afterwards) with N candidates spread over studies, datasets, families and states, written in
bulk (no training), then times the queries behind `automed leaderboard`, `--per-family`,
`--sort`, and `automed studies` through the public Store API: median of --repeat runs after
one warm-up, in milliseconds.

    python benchmarks/leaderboard_scale.py                       # both backends, 100k
    python benchmarks/leaderboard_scale.py --backend sqlite --candidates 20000
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, insert

from automed.storage import Store
from automed.storage.schema import CandidateRecord

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
FAMILIES = ("cnn", "resnet", "mlp", "rnn", "lstm", "attention")
METRICS = ("accuracy", "balanced_accuracy", "recall", "precision", "f1", "specificity",
           "auroc", "auprc")


def fill(store: Store, n: int, n_studies: int, n_datasets: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    studies, per_study = [], n // n_studies
    for d in range(n_datasets):
        store.upsert_dataset(fingerprint=f"{d:064d}", name=f"data{d}", source=f"data{d}.npz",
                             modality="image", n_samples=1000, classes=["a", "b"],
                             class_counts={"a": 500, "b": 500}, input_shape=[1, 28, 28])
    for s in range(n_studies):
        name = f"study{s:03d}"
        metric = ("accuracy", "f1", "auroc")[s % 3]
        sid, _ = store.open_search(name, 1 + s % n_datasets, metric,
                                   {"metric": metric, "folds": 5, "cv_seed": 0})
        studies.append(name)
        rows = []
        for t in range(per_study):
            state = rng.choices(("complete", "pruned", "failed"), (80, 15, 5))[0]
            base = rng.random()
            folds = [] if state == "failed" else \
                [base + rng.gauss(0, 0.02) for _ in range(5 if state == "complete" else 2)]
            mean = sum(folds) / len(folds) if folds else None
            rows.append({
                "search_id": sid, "trial_number": t, "architecture": rng.choice(FAMILIES),
                "params": {"width": rng.choice([16, 32, 64]), "lr": rng.random() / 100,
                           "blocks": rng.randint(1, 4)},
                "state": state, "fold_scores": folds, "score_mean": mean,
                "score_std": 0.02 if folds else None,
                "metrics": {m: base + rng.gauss(0, 0.05) for m in METRICS} if folds else {},
                "duration_s": rng.uniform(1, 300), "device": "cuda:0",
                "error": "RuntimeError: out of memory" if state == "failed" else None})
        with store.engine.begin() as conn:
            conn.execute(insert(CandidateRecord), rows)
    return studies


def timed(fn, repeat: int) -> tuple[float, int]:
    rows = fn()  # warm-up: caches, first-use planning
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        rows = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), len(rows)


def run(url: str, args: argparse.Namespace) -> list[tuple[str, float, int]]:
    store = Store(url)
    start = time.perf_counter()
    studies = fill(store, args.candidates, args.studies, args.datasets)
    fill_s = time.perf_counter() - start
    if store.engine.dialect.name == "postgresql":
        # Autovacuum analyses a freshly loaded table within a minute; do it now, not later.
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    last = studies[-1]
    queries = {
        "one study, top 10 (`automed leaderboard`)": lambda: store.leaderboard(last, top=10),
        "one study, every complete candidate": lambda: store.leaderboard(last),
        "all studies, top 10": lambda: store.leaderboard(top=10),
        "all studies, dataset + family filter, top 10":
            lambda: store.leaderboard(dataset="data1", architecture="cnn", top=10),
        "all studies, --sort auroc (JSON metric), top 10":
            lambda: store.leaderboard(sort="auroc", top=10),
        "all studies, best per family": lambda: store.leaderboard(best_per_family=True),
        "one study, best per family": lambda: store.leaderboard(last, best_per_family=True),
        "all states, failed only, top 10": lambda: store.leaderboard(states=["failed"], top=10),
        "`automed studies` (counts per state)": store.studies,
        "all studies, every complete candidate (~80k rows)": lambda: store.leaderboard(),
    }
    results = [("fill (bulk insert)", fill_s * 1000, args.candidates)]
    for label, fn in queries.items():
        ms, n = timed(fn, args.repeat)
        results.append((label, ms, n))
        print(f"  {ms:9.1f} ms  {n:6d} rows  {label}", flush=True)
    store.engine.dispose()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--candidates", type=int, default=100_000)
    ap.add_argument("--studies", type=int, default=50)
    ap.add_argument("--datasets", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"{args.candidates} candidates, {args.studies} studies, {args.datasets} datasets, "
          f"{len(FAMILIES)} families; {platform.platform()}, Python "
          f"{platform.python_version()}")
    report: dict[str, list] = {}
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            print("SQLite:")
            report["sqlite"] = run(f"sqlite:///{Path(tmp) / 'scale.db'}", args)
    if args.backend in ("postgres", "both"):
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"automed_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
            version = conn.exec_driver_sql("SHOW server_version").scalar()
        try:
            print(f"PostgreSQL {version}:")
            report["postgres"] = run(f"postgresql://postgres@127.0.0.1:5432/{name}", args)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.dispose()
    print("\n| query | " + " | ".join(f"{b} ms (rows)" for b in report) + " |")
    print("|---|" + "---|" * len(report))
    for i, (label, _, _) in enumerate(next(iter(report.values()))):
        cells = [f"{r[i][1]:.1f} ({r[i][2]})" for r in report.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

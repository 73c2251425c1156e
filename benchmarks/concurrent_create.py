"""How often do processes creating one new study database at the same moment fail?

Each round makes a new database (a SQLite file, or a fresh PostgreSQL database with --pg),
releases N processes at once through a barrier, and has each open the store, record a
dataset and a search, and create the Optuna study, as ``automed search`` does before its
first candidate. A round fails when any process raises.

    python benchmarks/concurrent_create.py --processes 2 --rounds 10
    python benchmarks/concurrent_create.py --processes 3 --rounds 10 --same-study
    python benchmarks/concurrent_create.py --processes 3 --rounds 5 --pg
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import tempfile
import time
import uuid
from pathlib import Path

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def _open(url: str, study: str, barrier) -> str:
    from automed.searching.study import open_study
    from automed.storage import Store

    barrier.wait()
    try:
        store = Store(url)
        dataset = store.upsert_dataset(fingerprint="f" * 16, name="d", source="d",
                                       modality="signal", n_samples=2, classes=["a", "b"],
                                       class_counts={"a": 1, "b": 1}, input_shape=[1, 4])
        search_id, _ = store.open_search(study, dataset, "accuracy", {"folds": 2})
        open_study(store, study, seed=0, prune=True, search_id=search_id, create=True)
        return "ok"
    except BaseException as exc:  # noqa: BLE001 - counted and shown
        text = re.sub(r"(sqlite|postgresql)://\S*", "<db>", str(exc).splitlines()[0])
        return f"{type(exc).__name__}: {text[:140]}"


def _new_url(pg: bool, folder: Path) -> tuple[str, str | None]:
    if not pg:
        return f"sqlite:///{folder / f'race_{uuid.uuid4().hex[:8]}.db'}", None
    import psycopg

    name = f"automed_race_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://postgres@127.0.0.1:5432/{name}", name


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--same-study", action="store_true", help="every process opens one study")
    ap.add_argument("--pg", action="store_true", help="PostgreSQL at 127.0.0.1:5432")
    args = ap.parse_args()
    ctx = multiprocessing.get_context("spawn")
    failed, errors = 0, {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, ctx.Manager() as manager, \
            ctx.Pool(args.processes) as pool:
        for _ in range(args.rounds):
            url, pg_name = _new_url(args.pg, Path(tmp))
            barrier = manager.Barrier(args.processes)
            names = ["s" if args.same_study else f"s{i}" for i in range(args.processes)]
            out = pool.starmap(_open, [(url, n, barrier) for n in names])
            bad = [o for o in out if o != "ok"]
            failed += bool(bad)
            for b in bad:
                errors[b] = errors.get(b, 0) + 1
            if pg_name:
                _drop(pg_name)
    backend = "PostgreSQL" if args.pg else "SQLite"
    print(f"{backend}, {args.processes} processes, "
          f"{'one study' if args.same_study else 'one study each'}: {failed} of {args.rounds} "
          f"rounds failed ({time.perf_counter() - started:.0f} s)")
    for message, n in sorted(errors.items(), key=lambda kv: -kv[1]):
        print(f"  {n} x {message}")


if __name__ == "__main__":
    main()

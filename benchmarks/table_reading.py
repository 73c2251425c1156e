#!/usr/bin/env python
"""How long a big table takes from its file to the first candidate: reading, the column
checks, the exact and near-duplicate leakage checks and the data warnings (``prepare``).

    python benchmarks/table_reading.py --rows 50000 --columns 40

Writes a CSV of ``--rows`` x ``--columns`` (three quarters numeric with 4 decimals, a quarter
categorical of 5 levels, a pos/neg label) to a temporary folder, then times
``automed.searching.prepare`` on it (best of ``--repeats``), one thread.
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_table(path: Path, rows: int, columns: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    numeric = max(1, columns * 3 // 4)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"n{j}" for j in range(numeric)]
                   + [f"c{j}" for j in range(columns - numeric)] + ["label"])
        x = rng.normal(size=(rows, numeric))
        cats = rng.integers(0, 5, size=(rows, columns - numeric))
        y = np.where(x[:, 0] + rng.normal(size=rows) > 0, "pos", "neg")
        for i in range(rows):
            w.writerow([*(f"{v:.4f}" for v in x[i]), *("abcde"[c] for c in cats[i]), y[i]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50000)
    parser.add_argument("--columns", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from automed.searching.plan import DataPlan, SearchPlan
    from automed.searching.prepare import prepare

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.csv"
        write_table(path, args.rows, args.columns)
        size = path.stat().st_size / 1e6
        plan = SearchPlan(data=DataPlan(path=str(path), options={}), metric="accuracy",
                          folds=3, trials=1)
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            prepare(plan)
            times.append(time.perf_counter() - started)
    cpu = platform.processor() or platform.machine()
    print(f"{args.rows} rows x {args.columns} columns ({size:.0f} MB): read and checked in "
          f"{min(times):.1f} s (best of {args.repeats}); {cpu}")


if __name__ == "__main__":
    main()

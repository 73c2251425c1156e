"""automed's default search against the plain Optuna script, at the same wall time.

    python benchmarks/vs_baseline.py --data ../shared/data/pneumoniamnist/pneumoniamnist_28.npz

Runs benchmarks/baseline_plain_optuna.py (2-conv CNN, 3-fold CV, 10 trials) first, then
benchmarks/medmnist.py with --timeout equal to the baseline's search time, each in its own
process on an otherwise idle machine, and prints one JSON object with both results.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        subprocess.run([sys.executable, str(HERE / script), *args, "--json", str(out)],
                       check=True)
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/pneumoniamnist/pneumoniamnist_28.npz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, help="give both the same --timeout in seconds "
                    "(default: the baseline's time for its 10 trials)")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    limit = ["--trials", "10"] if args.budget is None else \
        ["--trials", "100000", "--timeout", f"{args.budget:.0f}"]
    base = run("baseline_plain_optuna.py", "--data", args.data, *limit, "--folds", "3",
               "--seed", str(args.seed), "--threads", str(args.threads))
    budget = args.budget or base["search_seconds"]
    ours = run("medmnist.py", "--data", args.data, "--folds", "3", "--timeout", f"{budget:.0f}",
               "--seed", str(args.seed), "--threads", str(args.threads))
    result = {"data": Path(args.data).name, "budget_seconds": round(budget, 1),
              "baseline": base, "automed": ours}
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

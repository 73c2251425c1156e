"""How fast the CLI answers: wall time of reading commands on a 100-candidate database.

    python benchmarks/cli_startup.py [--runs 7]

Prints the median wall time of each command (a fresh interpreter per run, as a user types it),
with `optuna --help` as the reference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from automed.storage import Store
    from tests.store_rows import add_search

    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp / 'bench.db'}"
    add_search(Store(url), "s", candidates=[
        ("cnn", "complete", 0.5 + i / 1000, {"accuracy": 0.5 + i / 1000}, None)
        for i in range(100)])
    env = {**os.environ, "AUTOMED_STORAGE": url}
    bindir = Path(sys.executable).parent
    automed = str(bindir / "automed") if (bindir / "automed").exists() else "automed"
    commands = {
        "automed --help": [automed, "--help"],
        "automed leaderboard": [automed, "leaderboard"],
        "automed studies": [automed, "studies"],
        "automed show s": [automed, "show", "s"],
        "optuna --help (reference)": [shutil.which("optuna") or "optuna", "--help"],
    }
    print(f"{'command':30s} median s  (min s)  over {args.runs} runs, 100 candidates")
    for name, cmd in commands.items():
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        print(f"{name:30s} {statistics.median(times):7.3f}  ({min(times):.3f})")


if __name__ == "__main__":
    main()

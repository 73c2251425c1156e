"""Load test: N worker processes on one study, straight to PostgreSQL and through automed proxy.

    python benchmarks/fleet.py --workers 8 32 128 256 --modes direct proxy --start-postgres

Every worker runs automed's real study protocol (``automed.searching.study.open_study`` with its
heartbeat and stale-trial retry, ``run_trials`` with its trial budget, a candidate row in
automed's tables per trial) around a trivially cheap "model": the objective suggests two
parameters, reports ``--epochs`` intermediate values (one per epoch) and returns. So what is
measured is the storage path, not training.

Modes: ``direct`` (every worker connects to PostgreSQL), ``proxy`` (``automed proxy``: Optuna's
and automed's tables through it), ``proxy-results-db`` (Optuna's through it, automed's rows
written by each worker with ``--results-db``, one short connection per write).

Per run: trials/s (complete trials over the span from the first start to the last finish),
database connections (``pg_stat_activity`` for the study database, sampled every 0.1 s: peak
and mean), p50/p99 latency of ``Study.ask`` and of the tell, and the integrity counts: lost
trials (asked by a worker but not COMPLETE at the end, or complete without automed's row) and
duplicated ones (a trial number twice, a trial told by two workers, two rows for one trial).

Workers are forked from this process after the imports (``fork``), so each starts in
milliseconds and shares the imported code; none of them touches torch. ``--start-postgres``
runs a private PostgreSQL (initdb in a temporary folder, loopback, ``max_connections`` 700) so
that hundreds of direct connections do not exhaust a shared server; ``--pg-url`` uses an
existing one instead (its ``max_connections`` then bounds the direct runs).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import psycopg
from optuna.trial import TrialState

from automed.searching.study import open_study, run_trials
from automed.storage import Store
from automed.storage.fleet import RESULTS_ENV_VAR

STUDY = "fleet"


# -- the worker ---------------------------------------------------------------------------------
class CheapSearcher:
    """The Searcher's protocol with no model: params, per-epoch reports, automed's row."""

    def __init__(self, store: Store, search_id: int, epochs: int, log: dict) -> None:
        self.store, self.search_id, self.epochs, self.log = store, search_id, epochs, log
        self.deadline = None

    def __call__(self, trial: optuna.Trial) -> float:
        start = time.perf_counter()
        self.log["asked"].append(trial.number)
        arch = trial.suggest_categorical("architecture", ["none"])
        x = trial.suggest_float("none.x", 0.0, 1.0)
        for epoch in range(self.epochs):
            trial.report(x * (epoch + 1) / self.epochs, epoch)
        trial.set_user_attr("fold_scores", [x])
        trial.set_user_attr("automed_state", "complete")
        self.store.record_candidate(
            self.search_id, trial.number, architecture=arch, params={"x": x}, state="complete",
            fold_scores=[x], score_mean=x, score_std=0.0, metrics={"accuracy": x},
            duration_s=time.perf_counter() - start, device="cpu", error=None)
        return x


def _timed(log: list, fn):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            log.append(time.perf_counter() - t)
    return wrapper


def worker(index: int, storage: str, search_id: int, trials: int, epochs: int,
           heartbeat: float, start_at: float, timeout: float, out_dir: str) -> None:
    import optuna.study._optimize as opt

    log: dict = {"asked": [], "ask_s": [], "tell_s": [], "told": [], "error": None}
    optuna.study.Study.ask = _timed(log["ask_s"], optuna.study.Study.ask)
    tell = opt._tell_with_warning

    def timed_tell(*args, **kwargs):
        t = time.perf_counter()
        result = tell(*args, **kwargs)
        log["tell_s"].append(time.perf_counter() - t)
        log["told"].append(kwargs["trial"].number)
        return result

    opt._tell_with_warning = timed_tell
    try:
        time.sleep(max(0.0, start_at - time.time()))
        store = Store(storage, create=False)
        study = open_study(store, STUDY, seed=index, prune=False, search_id=search_id,
                           heartbeat=heartbeat)
        run_trials(CheapSearcher(store, search_id, epochs, log), study, trials=trials,
                   timeout=timeout, heartbeat=heartbeat)
    except BaseException as exc:  # noqa: BLE001 - reported in the results
        log["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    Path(out_dir, f"{index}.json").write_text(json.dumps(log))
    os._exit(0)  # skip atexit: nothing shared with the parent is closed twice


def sampler(admin_url: str, db: str, stop_file: str, out: str) -> None:
    """Count the study database's connections in pg_stat_activity until told to stop."""
    counts = []
    with psycopg.connect(admin_url, autocommit=True) as conn:
        while not os.path.exists(stop_file):
            n = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                             (db,)).fetchone()[0]
            counts.append(n)
            time.sleep(0.1)
    Path(out).write_text(json.dumps(counts))
    os._exit(0)


# -- one run ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _in_child(ctx, fn, *args) -> None:
    p = ctx.Process(target=fn, args=args)
    p.start()
    p.join()
    if p.exitcode != 0:
        raise SystemExit(f"{fn.__name__} failed with exit code {p.exitcode}")


def _create(db_url: str, out: str) -> None:
    """Created once: schema, dataset, search, Optuna study (in a child: no connection leaks
    into the forked workers)."""
    store = Store(db_url)
    dataset = store.upsert_dataset(fingerprint="f" * 64, name="fleet", source="fleet.npz",
                                   modality="tabular", n_samples=1, classes=["a", "b"],
                                   class_counts={"a": 1, "b": 1}, input_shape=[1])
    search_id, _ = store.open_search(STUDY, dataset, "accuracy", {"cv_seed": 0})
    open_study(store, STUDY, seed=0, prune=False, search_id=search_id, create=True)
    Path(out).write_text(str(search_id))
    os._exit(0)


def run_once(args, pg: str, mode: str, n: int, tmp: Path) -> dict:
    ctx = multiprocessing.get_context("fork")
    db = f"fleet_{mode}_{n}_{os.getpid()}"
    admin = f"{pg}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db}")
        conn.execute(f"CREATE DATABASE {db}")
    db_url = f"{pg.replace('postgresql://', 'postgresql+psycopg://')}/{db}"
    run_dir = tmp / f"{mode}-{n}"
    run_dir.mkdir()
    _in_child(ctx, _create, db_url, str(run_dir / "search_id"))
    search_id = int((run_dir / "search_id").read_text())
    trials = n * args.trials_per_worker
    proxy = None
    storage = db_url
    os.environ.pop(RESULTS_ENV_VAR, None)
    if mode.startswith("proxy"):
        port = _free_port()
        proxy = subprocess.Popen(
            [sys.executable, "-m", "automed.cli", "proxy", "--storage", db_url, "--port",
             str(port), "--threads", str(args.proxy_threads)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(300):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        storage = f"grpc://127.0.0.1:{port}"
        if mode == "proxy-results-db":  # automed's rows written directly, not via the proxy
            os.environ[RESULTS_ENV_VAR] = db_url  # what --results-db sets
    stop = run_dir / "stop"
    sample = ctx.Process(target=sampler, args=(admin, db, str(stop), str(run_dir / "conns")))
    sample.start()
    start_at = time.time() + 1.0 + n * 0.01
    procs = [ctx.Process(target=worker, args=(i, storage, search_id, trials, args.epochs,
                                              args.heartbeat, start_at, args.timeout,
                                              str(run_dir)))
             for i in range(n)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + args.timeout + 60
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    killed = [p for p in procs if p.is_alive()]
    for p in killed:
        p.kill()
        p.join()
    stop.touch()
    sample.join(30)
    proxy_cpu = None
    if proxy is not None:
        # CPU seconds the proxy process used (user + system): its cost per trial, for the
        # extrapolation (one Python process: about one core at most, the GIL).
        fields = Path(f"/proc/{proxy.pid}/stat").read_text().rsplit(")", 1)[1].split()
        proxy_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        proxy.send_signal(signal.SIGINT)
        try:
            proxy.wait(30)
        except subprocess.TimeoutExpired:
            proxy.kill()
    os.environ.pop(RESULTS_ENV_VAR, None)
    result = _account(db_url, run_dir, n, trials)
    result.update(proxy_cpu_s=proxy_cpu, proxy_cpu_ms_per_trial=round(
        1000 * proxy_cpu / result["complete"], 1) if proxy_cpu and result["complete"] else None)
    result.update(mode=mode, workers=n, budget=trials, killed_workers=len(killed),
                  proxy_threads=args.proxy_threads if mode != "direct" else None)
    counts = json.loads((run_dir / "conns").read_text()) if (run_dir / "conns").exists() \
        else []
    # The sampler's own connection is not the fleet's.
    result["db_connections_peak"] = max(counts) - 1 if counts else None
    result["db_connections_mean"] = round(statistics.mean(counts) - 1, 1) if counts else None
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    return result


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 1)


def _account(db_url: str, run_dir: Path, n: int, budget: int) -> dict:
    logs = [json.loads(p.read_text()) for p in run_dir.glob("[0-9]*.json")]
    study = optuna.load_study(study_name=STUDY, storage=db_url.replace("+psycopg", ""))
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    by_number: dict[int, int] = {}
    for t in trials:
        by_number[t.number] = by_number.get(t.number, 0) + 1
    told: dict[int, int] = {}
    for log in logs:
        for number in log["told"]:
            told[number] = told.get(number, 0) + 1
    asked = {number for log in logs for number in log["asked"]}
    rows = Store(db_url, create=False).candidates(STUDY)
    row_count: dict[int, int] = {}
    for r in rows:
        row_count[r["trial"]] = row_count.get(r["trial"], 0) + 1
    complete_numbers = {t.number for t in complete}
    # A trial failed as stale (its worker beat too late) and queued again is not lost when
    # its retry completed; it is counted apart, as work done twice.
    retried = {t.system_attrs["failed_trial"] for t in complete
               if "failed_trial" in t.system_attrs}
    lost = (len(asked - complete_numbers - retried)  # started by a worker, never completed
            + len(complete_numbers - set(row_count)))  # completed without automed's row
    duplicated = (sum(c - 1 for c in by_number.values() if c > 1)
                  + sum(c - 1 for c in told.values() if c > 1)
                  + sum(c - 1 for c in row_count.values() if c > 1))
    span = None
    if complete:
        first = min(t.datetime_start for t in complete)
        last = max(t.datetime_complete for t in complete)
        span = (last - first).total_seconds()
    ask = [s for log in logs for s in log["ask_s"]]
    tell = [s for log in logs for s in log["tell_s"]]
    errors = sorted({log["error"] for log in logs if log["error"]})
    return {"complete": len(complete), "states": {s.name: sum(t.state == s for t in trials)
                                                  for s in TrialState if any(
                                                      t.state == s for t in trials)},
            "span_s": round(span, 2) if span else None,
            "trials_per_s": round(len(complete) / span, 1) if span else None,
            "ask_p50_ms": _pct(ask, 0.5), "ask_p99_ms": _pct(ask, 0.99),
            "tell_p50_ms": _pct(tell, 0.5), "tell_p99_ms": _pct(tell, 0.99),
            "lost": lost, "duplicated": duplicated, "stale_retried": len(retried),
            "reported_workers": len(logs),
            "worker_errors": len([log for log in logs if log["error"]]),
            "errors": errors[:3]}


# -- a private PostgreSQL -----------------------------------------------------------------------
def start_postgres(tmp: Path, max_connections: int) -> tuple[str, callable]:
    data = tmp / "pgdata"
    port = _free_port()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data.mkdir(parents=True)
    if as_pg:
        tmp.parent.chmod(0o755)  # mkdtemp's 0700 would keep the postgres user out
        shutil.chown(tmp, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run([*as_pg, "initdb", "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*as_pg, "pg_ctl", "-D", str(data), "-l", str(tmp / "pg.log"), "-w", "-o",
                    f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
                    f"{tmp} -c max_connections={max_connections} -c shared_buffers=64MB",
                    "start"], check=True, stdout=subprocess.DEVNULL)

    def stop() -> None:
        subprocess.run([*as_pg, "pg_ctl", "-D", str(data), "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return f"postgresql://postgres@127.0.0.1:{port}", stop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[8, 32, 128, 256])
    ap.add_argument("--modes", nargs="+", default=["direct", "proxy"],
                    choices=["direct", "proxy", "proxy-results-db"])
    ap.add_argument("--trials-per-worker", type=int, default=4,
                    help="The study's trial budget is N times this.")
    ap.add_argument("--epochs", type=int, default=5, help="Intermediate reports per trial.")
    ap.add_argument("--proxy-threads", type=int, default=10)
    ap.add_argument("--heartbeat", type=float, default=10.0,
                    help="automed's default; 1 s starves on an overloaded machine")
    ap.add_argument("--timeout", type=float, default=240.0, help="Per run, seconds.")
    ap.add_argument("--start-postgres", action="store_true")
    ap.add_argument("--max-connections", type=int, default=700)
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432",
                    help="Server URL without database (ignored with --start-postgres).")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="automed-fleet-"))
    stop = None
    try:
        pg = args.pg_url
        if args.start_postgres:
            pg, stop = start_postgres(tmp / "pg", args.max_connections)
        with psycopg.connect(f"{pg}/postgres") as conn:
            limit = int(conn.execute("SHOW max_connections").fetchone()[0])
        rows = []
        for n in args.workers:
            for mode in args.modes:
                started = time.perf_counter()
                row = run_once(args, pg, mode, n, tmp)
                row["wall_s"] = round(time.perf_counter() - started, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        if stop:
            stop()
        shutil.rmtree(tmp, ignore_errors=True)
    info = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
            "heartbeat": args.heartbeat,
            "python": platform.python_version(), "optuna": optuna.__version__,
            "max_connections": limit, "epochs": args.epochs,
            "trials_per_worker": args.trials_per_worker, "runs": rows}
    print()
    print("| mode | N | trials/s | complete/budget | DB conns peak (mean) | ask p50/p99 ms "
          "| tell p50/p99 ms | lost | dup | stale-retried | worker errors | proxy CPU ms/trial "
          "| wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['workers']} | {r['trials_per_s']} | {r['complete']}/"
              f"{r['budget']} | {r['db_connections_peak']} ({r['db_connections_mean']}) | "
              f"{r['ask_p50_ms']}/{r['ask_p99_ms']} | {r['tell_p50_ms']}/{r['tell_p99_ms']} | "
              f"{r['lost']} | {r['duplicated']} | {r['stale_retried']} | {r['worker_errors']} | "
              f"{r['proxy_cpu_ms_per_trial'] or '-'} | {r['wall_s']} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
